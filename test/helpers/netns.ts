/**
 * A private test LAN made of network namespaces: one namespace holds a bridge (and the
 * QEMU taps), every other member namespace gets a veth into it with an address on the
 * test subnet. Both veth ends are created inside the LAN namespace and one is moved, so no
 * device ever appears in the host namespace. Processes started with `spawn` are tracked and
 * killed by `down()`, which also deletes the namespaces (call it in afterAll, it is
 * idempotent). Needs root; `netnsUnavailable()` says why not.
 *
 *   const lan = await createLan({ prefix: "lbt7-a", subnet: "10.231.7", members: { srv: 1, dhcp: 2 } });
 *   lan.spawn("srv", ["node", ...]);  await lan.exec("srv", ["ip", "addr"]);  lan.addTap("tap0");
 */
import { execa, type ResultPromise } from "execa";

export interface LanOptions {
  /** Namespace name prefix, unique to the test file (e.g. "lbt7-full"); names are `<prefix>-<member>`. */
  prefix: string;
  /** First three octets of a private /24 used nowhere else (e.g. "10.231.7"). */
  subnet: string;
  /** Member namespaces and the last octet of their address on eth0 (0: no address; null: not on the LAN at all). */
  members: Record<string, number | null>;
}

export interface Lan {
  readonly lanNs: string;
  readonly bridge: string;
  ns(member: string): string;
  ip(member: string): string;
  /** Runs a command inside a member namespace (or the LAN one with member "lan") and waits. */
  exec(member: string, cmd: string[], opts?: { reject?: boolean; input?: string; timeout?: number }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** Starts a long-running process inside a namespace; killed by down(). `ip netns exec` execs, so the pid is the process's. */
  spawn(member: string, cmd: string[], opts?: { env?: Record<string, string>; stdout?: string; stderr?: string }): ResultPromise;
  /** Adds a tap device on the bridge (for QEMU's `-netdev tap,ifname=`). */
  addTap(name: string): Promise<void>;
  /** Adds another interface to a member, bridged to a second, separate bridge (for two-NIC tests). */
  addSecondLink(member: string, ifname: string, address: string, peerMember: string, peerIfname: string, peerAddress: string): Promise<void>;
  down(): Promise<void>;
}

const run = (args: string[]) => execa(args[0]!, args.slice(1), { reject: false, stdin: "ignore" });

async function must(args: string[]): Promise<void> {
  const r = await run(args);
  if (r.exitCode !== 0) throw new Error(`${args.join(" ")}: ${r.stderr || r.stdout}`);
}

/** Why network namespaces cannot be made here, or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  const r = await run(["ip", "netns", "list"]);
  if (r.exitCode !== 0) return `ip netns does not work here: ${r.stderr}`;
  return undefined;
}

export async function deleteNamespaces(prefix: string): Promise<void> {
  const list = await run(["ip", "netns", "list"]);
  for (const line of list.stdout.split("\n")) {
    const name = line.split(" ")[0];
    if (name && (name === prefix || name.startsWith(`${prefix}-`))) await run(["ip", "netns", "del", name]);
  }
}

export async function createLan(o: LanOptions): Promise<Lan> {
  const lanNs = `${o.prefix}-lan`;
  const bridge = "br0";
  const procs: ResultPromise[] = [];
  const nsOf = (m: string) => (m === "lan" ? lanNs : `${o.prefix}-${m}`);
  await deleteNamespaces(o.prefix);
  const inNs = (ns: string, cmd: string[]) => ["ip", "netns", "exec", ns, ...cmd];
  const lan: Lan = {
    lanNs,
    bridge,
    ns: nsOf,
    ip: (m) => `${o.subnet}.${o.members[m]}`,
    exec: async (m, cmd, opts = {}) => {
      const r = await execa("ip", ["netns", "exec", nsOf(m), ...cmd], {
        reject: opts.reject ?? false,
        ...(opts.input === undefined ? { stdin: "ignore" as const } : { input: opts.input }),
        timeout: opts.timeout,
      });
      return { exitCode: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr) };
    },
    spawn: (m, cmd, opts = {}) => {
      const p = execa("ip", ["netns", "exec", nsOf(m), ...cmd], {
        reject: false,
        stdin: "ignore",
        env: opts.env,
        ...(opts.stdout ? { stdout: { file: opts.stdout } } : {}),
        ...(opts.stderr ? { stderr: { file: opts.stderr } } : {}),
      });
      procs.push(p);
      return p;
    },
    addTap: async (name) => {
      await must(inNs(lanNs, ["ip", "tuntap", "add", "dev", name, "mode", "tap"]));
      await must(inNs(lanNs, ["ip", "link", "set", name, "master", bridge, "up"]));
    },
    addSecondLink: async (m, ifname, address, peer, peerIfname, peerAddress) => {
      await must(inNs(nsOf(m), ["ip", "link", "add", ifname, "type", "veth", "peer", "name", peerIfname, "netns", nsOf(peer)]));
      await must(inNs(nsOf(m), ["ip", "addr", "add", address, "dev", ifname]));
      await must(inNs(nsOf(m), ["ip", "link", "set", ifname, "up"]));
      await must(inNs(nsOf(peer), ["ip", "addr", "add", peerAddress, "dev", peerIfname]));
      await must(inNs(nsOf(peer), ["ip", "link", "set", peerIfname, "up"]));
    },
    down: async () => {
      for (const p of procs.splice(0)) {
        if (p.pid !== undefined && p.exitCode === null) p.kill("SIGTERM");
      }
      await Promise.race([Promise.allSettled(procs), new Promise((r) => setTimeout(r, 3000))]);
      await deleteNamespaces(o.prefix);
    },
  };
  try {
    for (const ns of [lanNs, ...Object.keys(o.members).map(nsOf)]) {
      await must(["ip", "netns", "add", ns]);
      await must(inNs(ns, ["ip", "link", "set", "lo", "up"]));
    }
    await must(inNs(lanNs, ["ip", "link", "add", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"]));
    await must(inNs(lanNs, ["sysctl", "-qw", `net.ipv6.conf.${bridge}.disable_ipv6=1`]));
    await must(inNs(lanNs, ["ip", "link", "set", bridge, "up"]));
    for (const [m, octet] of Object.entries(o.members)) {
      if (octet === null) continue;
      const peer = `v-${m}`.slice(0, 15);
      await must(inNs(lanNs, ["ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", nsOf(m)]));
      await must(inNs(lanNs, ["ip", "link", "set", peer, "master", bridge, "up"]));
      if (octet) await must(inNs(nsOf(m), ["ip", "addr", "add", `${o.subnet}.${octet}/24`, "dev", "eth0"]));
      await must(inNs(nsOf(m), ["ip", "link", "set", "eth0", "up"]));
    }
  } catch (err) {
    await lan.down();
    throw err;
  }
  return lan;
}
