/**
 * Two `lifeboat serve` processes, A and B, on one store, each in its own namespace LAN as the
 * only DHCP server there (full mode), and what a machine on those LANs does before its agent
 * runs: DHCP with busybox udhcpc (a real DHCP client with a PXE vendor class) and the boot
 * script from the server that answered, as iPXE would. Shared by the several-servers LAN tests.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lan } from "../../helpers/netns.ts";
import { type NsServer, serveInNs } from "../netboot/lifeboat-ns.ts";

export type Side = "a" | "b";

const PXE_CLASS = "PXEClient:Arch:00000:UNDI:002001";

export interface LanServers {
  /** The LAN of each server (its members "srv", the server, and "adm", the admin's desk, at least); set them before start. */
  lans: Partial<Record<Side, Lan>>;
  srv: Partial<Record<Side, NsServer>>;
  url(s: Side): string;
  dataDir(s: Side): string;
  token(s: Side): string;
  /** Starts (or starts again) server `s` on its LAN with the store's key; resolves once its services are up. */
  start(s: Side): Promise<NsServer>;
  /** curl from a namespace; its stdout (throws on failure). */
  curl(lan: Lan, member: string, args: string[]): Promise<string>;
  /** The admin's API call to server `s`, from its LAN's admin namespace. */
  api<T>(s: Side, method: string, path: string, body?: unknown): Promise<T>;
  /** busybox udhcpc with a PXE vendor class on `ifname` of `member` until bound (-q): "bound IP SERVER-ID". */
  dhcp(lan: Lan, member: string, ifname: string): Promise<string>;
  /** What iPXE does after DHCP: the boot script from the server that answered; the token in it, or null. */
  bootScript(lan: Lan, member: string, server: string, mac: string): Promise<{ script: string; token: string | null }>;
  stop(): Promise<void>;
}

/**
 * The servers of `net` (each side's three octets: the server is .1 on it, HTTP on 8080), with
 * their data dirs under `work`; `config` adds to a side's serve config (its Amanda configs).
 */
export function lanServers(o: { work: string; net: Record<Side, string>; key: string; storeUrl: () => string; config?: (s: Side) => Record<string, unknown> }): LanServers {
  const lans: LanServers["lans"] = {};
  const srv: LanServers["srv"] = {};
  const dataDir = (s: Side) => join(o.work, s);
  const url = (s: Side) => `http://${o.net[s]}.1:8080`;
  const token = (s: Side) => readFileSync(join(dataDir(s), "admin-token"), "utf8").trim();

  async function curl(lan: Lan, member: string, args: string[]): Promise<string> {
    const r = await lan.exec(member, ["curl", "-sS", "--max-time", "10", "--fail-with-body", ...args], { timeout: 15_000 });
    if (r.exitCode !== 0) throw new Error(`curl ${args.join(" ")} in ${member}: ${r.exitCode} ${r.stderr} ${r.stdout}`);
    return r.stdout;
  }

  return {
    lans,
    srv,
    url,
    dataDir,
    token,
    start: async (s) => {
      mkdirSync(dataDir(s), { recursive: true, mode: 0o700 });
      writeFileSync(join(dataDir(s), "store-key"), o.key, { mode: 0o600 });
      srv[s] = await serveInNs(
        lans[s]!,
        "srv",
        dataDir(s),
        {
          name: s,
          store: { url: o.storeUrl() },
          listen: { interface: "eth0" },
          http: { port: 8080, publicUrl: url(s) },
          tftp: { enabled: false },
          dhcp: { mode: "full", pool: { start: `${o.net[s]}.100`, end: `${o.net[s]}.120`, router: "", leaseSeconds: 600 } },
          jobs: { heartbeatTimeoutSeconds: 2 },
          catalog: { refreshMinutes: 0 },
          ...o.config?.(s),
        },
        ["http", "dhcp", "servers", "job-watch"],
      );
      return srv[s];
    },
    curl,
    api: async <T>(s: Side, method: string, path: string, body?: unknown) => {
      const data = body === undefined ? [] : ["-H", "content-type: application/json", "--data", JSON.stringify(body)];
      return JSON.parse(await curl(lans[s]!, "adm", ["-X", method, "-H", `authorization: Bearer ${token(s)}`, ...data, `${url(s)}/api/v1${path}`])) as T;
    },
    dhcp: async (lan, member, ifname) => {
      const events = join(o.work, `${member}-${ifname}-${Date.now()}.events`);
      const script = `${events}.sh`;
      writeFileSync(
        script,
        `#!/bin/sh\necho "$1 $ip $serverid" >> ${events}\ncase "$1" in bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/24" dev "$interface" ;; esac\nexit 0\n`,
        { mode: 0o755 },
      );
      const r = await lan.exec(member, ["busybox", "udhcpc", "-f", "-q", "-n", "-i", ifname, "-t", "6", "-T", "1", "-V", PXE_CLASS, "-x", "0x5d:0000", "-s", script], { timeout: 20_000 });
      const bound = (existsSync(events) ? readFileSync(events, "utf8") : "").split("\n").find((l) => l.startsWith("bound "));
      if (!bound) throw new Error(`udhcpc on ${member}/${ifname}: no lease (exit ${r.exitCode}): ${r.stderr}`);
      return bound;
    },
    bootScript: async (lan, member, server, mac) => {
      const script = await curl(lan, member, [`${server}/boot/ipxe?mac=${mac}`]);
      return { script, token: /lifeboat\.token=([A-Za-z0-9_-]+)/.exec(script)?.[1] ?? null };
    },
    stop: async () => {
      for (const s of Object.values(srv)) await s?.stop();
      for (const l of Object.values(lans)) await l?.down();
    },
  };
}
