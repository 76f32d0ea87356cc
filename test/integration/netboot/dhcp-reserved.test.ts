/**
 * dhcp.mode reserved against real DHCP clients, in a namespace LAN (10.231.21.0/24) where
 * Lifeboat must be the only DHCP server for the machines the admin named and silent to every
 * other (issue 21 item 1): busybox udhcpc of an armed MAC gets its lease and PXE boot file; a
 * static-lease MAC (ISC dhclient) gets its static address; a stranger hears nothing, neither
 * with a PXE vendor class (udhcpc) nor plain (dhcpcd), and is counted in /metrics.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { type Lan, createLan, netnsUnavailable } from "../../helpers/netns.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { armForTest } from "./armed.ts";
import { type NsServer, serveInNs } from "./lifeboat-ns.ts";

const TOOLS = ["/usr/sbin/dhclient", "/usr/sbin/dhcpcd", "/bin/busybox"];
const missingTools = TOOLS.filter((t) => !existsSync(t));
const missing = (await netnsUnavailable()) ?? (missingTools.length ? `missing ${missingTools.join(", ")} (scripts/bootstrap installs them)` : undefined);

const NET = "10.231.21";
const SRV = `${NET}.1`;
const MAC = { armed: "52:54:00:21:00:0a", fixed: "52:54:00:21:00:0b", stranger: "52:54:00:21:00:0c" } as const;
const PXE_CLASS = "PXEClient:Arch:00000:UNDI:002001";
const work = tempDir("lbres-");
const read = (f: string) => (existsSync(f) ? readFileSync(f, "utf8") : "");

/** A udhcpc/dhcpcd hook script appending "<event> <ip> <server id> <boot file>" to a file. */
function hook(name: string): { script: string; events: () => string[] } {
  const events = join(work, `${name}.events`);
  const script = join(work, `${name}.sh`);
  writeFileSync(script, `#!/bin/sh\necho "$1 $ip $serverid $boot_file" >> ${events}\nexit 0\n`, { mode: 0o755 });
  return { script, events: () => read(events).split("\n").filter(Boolean) };
}

describeNeeding(missing, `dhcp.mode reserved against real DHCP clients (namespace LAN ${NET}.0/24)`, () => {
  let lan: Lan;
  let srv: NsServer;
  const dataDir = join(work, "srv");
  const dhcpLines = (mac: string) => srv.lines().filter((l) => l.svc === "dhcp" && l.mac === mac).map((l) => l.msg);

  beforeAll(async () => {
    lan = await createLan({ prefix: "lbres", subnet: NET, members: { srv: 1, armed: 0, fixed: 0, stranger: 0 } });
    for (const m of ["armed", "fixed", "stranger"] as const) await lan.exec(m, ["ip", "link", "set", "eth0", "address", MAC[m]]);
    const store = new SqliteStore(join(dataDir, "lifeboat.db"));
    await armForTest(store, { host: "res-a", macs: [MAC.armed] });
    await store.close();
    srv = await serveInNs(lan, "srv", dataDir, {
      listen: { interface: "eth0" },
      http: { port: 8080 },
      dhcp: {
        mode: "reserved",
        pool: { start: `${NET}.100`, end: `${NET}.120`, router: "", leaseSeconds: 120 },
        staticLeases: [{ mac: MAC.fixed, ip: `${NET}.50`, hostname: "fixed" }],
      },
    }, ["http", "tftp", "dhcp"]);
  });
  afterAll(async () => {
    await srv?.stop();
    await lan?.down();
  });

  it("the armed MAC's udhcpc (PXE vendor class) gets a pool address and the boot file", async () => {
    const h = hook("armed");
    const r = await lan.exec("armed", ["busybox", "udhcpc", "-n", "-q", "-f", "-t", "4", "-T", "1", "-i", "eth0", "-V", PXE_CLASS, "-x", "0x5d:0000", "-s", h.script], { timeout: 30_000 });
    expect(h.events().find((e) => e.startsWith("bound ")), r.stderr).toMatch(/^bound 10\.231\.21\.1[0-2]\d 10\.231\.21\.1 undionly\.kpxe$/);
    expect(dhcpLines(MAC.armed)).toEqual(expect.arrayContaining(["offer undionly.kpxe", "ack undionly.kpxe"]));
  });

  it("the static-lease MAC's ISC dhclient gets its static address", async () => {
    const events = join(work, "fixed.events");
    const script = join(work, "fixed-dhclient.sh");
    writeFileSync(script, `#!/bin/sh\necho "$reason $new_ip_address $new_dhcp_server_identifier" >> ${events}\nexit 0\n`, { mode: 0o755 });
    const cf = join(work, "fixed.conf");
    writeFileSync(cf, "timeout 10;\nretry 1;\ninitial-interval 1;\n");
    const log = join(work, "fixed-dhclient.log");
    const p = lan.spawn("fixed", ["dhclient", "-4", "-d", "-v", "-cf", cf, "-lf", join(work, "fixed.leases"), "-pf", join(work, "fixed.pid"), "-sf", script, "eth0"], { stdout: log, stderr: log });
    try {
      const end = Date.now() + 20_000;
      while (!read(events).includes("BOUND ") && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      expect(read(events).split("\n").filter((l) => l.startsWith("BOUND ")), read(log)).toEqual([`BOUND ${NET}.50 ${SRV}`]);
    } finally {
      p.kill("SIGTERM");
      await Promise.race([p, new Promise((r) => setTimeout(r, 3000))]);
    }
  });

  it("a stranger hears nothing: udhcpc with a PXE vendor class and dhcpcd give up, every packet counted as not-reserved", async () => {
    const metric = async () => Number(/lifeboat_dhcp_dropped_total\{reason="not-reserved"\} (\d+)/.exec((await lan.exec("srv", ["curl", "-s", `http://${SRV}:8080/metrics`])).stdout)?.[1] ?? 0);
    const before = await metric();
    const h = hook("stranger");
    const r = await lan.exec("stranger", ["busybox", "udhcpc", "-n", "-q", "-f", "-t", "3", "-T", "1", "-i", "eth0", "-V", PXE_CLASS, "-x", "0x5d:0000", "-s", h.script], { timeout: 30_000 });
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).not.toBe(0);
    expect(r.stderr).toContain("no lease, failing");
    const d = hook("stranger-dhcpcd");
    // dhcpcd keeps soliciting past its -t here: 8 s of asking, then stopped.
    const dc = await lan.exec("stranger", ["unshare", "-m", "sh", "-c",
      `mount -t tmpfs none /var/lib && mkdir -p /var/lib/dhcpcd && mount -t tmpfs none /run && exec timeout 8 dhcpcd -4 -B -1 -A -t 6 --noipv4ll -f /dev/null -c ${d.script} eth0`], { timeout: 30_000 });
    expect(dc.stderr).toContain("eth0: soliciting a DHCP lease");
    expect(dc.stderr).not.toMatch(/leased|offered/);
    expect(h.events().filter((e) => e.startsWith("bound "))).toEqual([]);
    expect(d.events().filter((e) => /^(bound|BOUND)/.test(e))).toEqual([]);
    const lines = dhcpLines(MAC.stranger);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.every((l) => l === `ignored: reserved mode: ${MAC.stranger} has no active job and no static lease`)).toBe(true);
    expect((await metric()) - before).toBe(lines.length);
    const store = new SqliteStore(join(dataDir, "lifeboat.db"));
    try {
      expect((await store.leases.list()).filter((l) => l.mac === MAC.stranger)).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
