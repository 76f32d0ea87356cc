/**
 * A drill's admin checks (issue 24), made once the restored system's console shows it is up:
 * `tcp:PORT` (the port answers: a connection that is not closed at once) and `ssh:COMMAND` (the
 * command run as root over SSH with config drill.sshKey exits 0). They reach the restored system
 * through QEMU's user network, forwarded from this host's loopback; the system answers at
 * `address` (its own static address, as restored; default: the one QEMU's DHCP hands out).
 * Parsing, the network's arguments and the verdict are pure; `runCheck` is the edge.
 */
import { Socket, createServer } from "node:net";
import { execa } from "execa";

export type DrillCheck = { kind: "tcp"; port: number; spec: string } | { kind: "ssh"; command: string; spec: string };

export interface CheckResult {
  check: string;
  passed: boolean;
  /** What was seen: the command's last output line, or why the port did not answer. */
  detail: string;
}

/** QEMU user network's DHCP hands out this address first: the restored system's when it takes one by DHCP. */
export const DHCP_GUEST = "10.0.2.15/24";

/** One check as given (`tcp:22`, `ssh:systemctl is-system-running`), or a one-line problem. */
export function parseCheck(s: string): DrillCheck | { problem: string } {
  const tcp = /^tcp:(\d{1,5})$/.exec(s);
  if (tcp) {
    const port = Number(tcp[1]);
    if (port >= 1 && port <= 65535) return { kind: "tcp", port, spec: s };
  }
  const ssh = /^ssh:(.+)$/s.exec(s);
  if (ssh && ssh[1]!.trim() !== "" && !/[\0\n\r]/.test(ssh[1]!)) return { kind: "ssh", command: ssh[1]!, spec: s };
  return { problem: `check ${JSON.stringify(s)}: expected tcp:PORT (1-65535) or ssh:COMMAND (one line)` };
}

/** The check problem of `s`, or null: for schema refinements. */
export function checkProblem(s: string): string | null {
  const c = parseCheck(s);
  return "problem" in c ? c.problem : null;
}

const ip4 = (s: string) => s.split(".").reduce((n, o) => n * 256 + Number(o), 0);
const dotted = (n: number) => [24, 16, 8, 0].map((b) => Math.floor(n / 2 ** b) % 256).join(".");

/** The restored system's address as given (ADDR/PREFIX, prefix 8-29), or a one-line problem. */
export function parseGuestAddress(s: string): { address: string; prefix: number } | { problem: string } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(s);
  if (!m || m[1]!.split(".").some((o) => Number(o) > 255) || Number(m[2]) < 8 || Number(m[2]) > 29)
    return { problem: `address ${JSON.stringify(s)}: expected the restored system's IPv4 address with its prefix, e.g. 10.0.5.20/24 (prefix 8-29)` };
  return { address: m[1]!, prefix: Number(m[2]) };
}

/** The address problem of `s`, or null: for schema refinements. */
export function guestAddressProblem(s: string): string | null {
  const a = parseGuestAddress(s);
  return "problem" in a ? a.problem : null;
}

/**
 * The QEMU user network of the restored disk's boot (restrict=on: the guest reaches nothing) with
 * each check's port forwarded from this host's loopback (`ports[i]`, the guest's `port`), in the
 * guest's own subnet so that its static address answers (and its DHCP hands out that address to
 * a system that asks): QEMU's side takes .2 and .3 of the subnet, or .1 and .4 for the guest's.
 */
export function checkNetdev(guest: string, forwards: Array<{ hostPort: number; guestPort: number }>): string {
  const g = parseGuestAddress(guest);
  if ("problem" in g) throw new Error(g.problem);
  const size = 2 ** (32 - g.prefix);
  const net = ip4(g.address) - (ip4(g.address) % size);
  // QEMU's own .2 and .3 where the guest is not one of them; its DHCP hands out the guest's address.
  const free = [2, 3, 1, 4].map((i) => net + i).filter((a) => a !== ip4(g.address));
  const parts = ["user", "id=n0", "restrict=on", `net=${dotted(net)}/${g.prefix}`, `host=${dotted(free[0]!)}`, `dns=${dotted(free[1]!)}`, `dhcpstart=${g.address}`];
  for (const f of forwards) parts.push(`hostfwd=tcp:127.0.0.1:${f.hostPort}-${g.address}:${f.guestPort}`);
  return parts.join(",");
}

/** The drill's verdict with its checks: it passes when every check did; the reason names those that failed. */
export function checksVerdict(results: CheckResult[]): { passed: boolean; reason: string | null } {
  const failed = results.filter((r) => !r.passed);
  if (failed.length === 0) return { passed: true, reason: null };
  return { passed: false, reason: `the restored system came up, but ${failed.length === 1 ? "a check" : `${failed.length} checks`} failed: ${failed.map((r) => `${r.check}: ${r.detail}`).join("; ")}` };
}

/** A TCP port on this host's loopback that nothing listens on now: a check's forward (QEMU binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One TCP try: "answered" when the connection stays open (or sends something) for a moment, else why not. */
function tcpTry(port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = new Socket();
    let settled = false;
    const done = (v: string) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(10_000, () => done("no answer within 10 s"));
    sock.on("error", (err) => done(`connection failed: ${err.message}`));
    // QEMU accepts on its side first: a guest port with nothing behind it closes at once.
    sock.on("close", () => done("connection closed at once: nothing listening"));
    sock.on("data", () => done("answered"));
    sock.connect(port, "127.0.0.1", () => setTimeout(() => done("answered"), 2000));
  });
}

/**
 * Makes one check through its forwarded port, trying again until `untilMs` (services start after
 * the login prompt) or until `halted` says why not (the machine stopped, the server is stopping).
 */
export async function runCheck(c: DrillCheck, hostPort: number, untilMs: number, sshKey: string, halted: () => string | null = () => null): Promise<CheckResult> {
  let detail = "not tried";
  do {
    if (c.kind === "tcp") {
      detail = await tcpTry(hostPort);
      if (detail === "answered") return { check: c.spec, passed: true, detail };
    } else {
      const ssh = ["-i", sshKey, "-p", String(hostPort), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@127.0.0.1", c.command];
      const r = await execa("ssh", ssh, { reject: false, stdin: "ignore", timeout: 60_000, all: true });
      const last = String(r.all ?? "").trim().split("\n").at(-1)?.slice(0, 300) ?? "";
      if (r.exitCode === 0) return { check: c.spec, passed: true, detail: last };
      detail = `exit ${r.exitCode ?? "(killed)"}${last ? `: ${last}` : ""}`;
      // 255: ssh itself failed (not up yet); anything else is the command's answer.
      if (r.exitCode !== 255) return { check: c.spec, passed: false, detail };
    }
    const why = halted();
    if (why) return { check: c.spec, passed: false, detail: `${detail}; ${why}` };
    await sleep(3000);
  } while (Date.now() < untilMs);
  return { check: c.spec, passed: false, detail };
}
