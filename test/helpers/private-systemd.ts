/**
 * A real systemd (Debian's /lib/systemd/systemd) as PID 1 of its own PID, mount, network, UTS,
 * IPC and cgroup namespaces, for tests of unit files: this machine's PID 1 is no systemd.
 * /run is a private tmpfs holding the given units in /run/systemd/system; systemd starts only
 * `lifeboat-test.target` (which Wants= the units named), so nothing of the host's own units
 * runs (the boot targets are masked, and units given here must set DefaultDependencies=no, a
 * drop-in for shipped ones), and its network namespace has no interface but lo. Needs root.
 *
 *   const sd = await privateSystemd({ "x.socket": text }, ["x.socket"]);
 *   await sd.exec(["systemctl", "is-active", "x.socket"]);   // a command inside its namespaces
 *   sd.path("/run/x.sock")                                     // that path as seen from outside
 *   await sd.stop();
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { execa, type Result } from "execa";
import { tempDir } from "./tmp.ts";

const SYSTEMD = "/lib/systemd/systemd";
// journald too: it would write into the host's /var/log/journal (a unit's journal output then goes nowhere).
const MASKED = [
  ...["sysinit", "basic", "sockets", "local-fs", "network", "multi-user", "graphical", "shutdown"].map((t) => `${t}.target`),
  ...["systemd-journald.socket", "systemd-journald-dev-log.socket", "systemd-journald-audit.socket", "systemd-journald.service", "systemd-journal-flush.service"],
];

/** Why a private systemd cannot run here, or null. */
export function privateSystemdUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "a private systemd needs root (namespaces, cgroups)";
  for (const t of [SYSTEMD, "/usr/bin/systemd-run", "/usr/bin/systemctl", "/usr/bin/unshare", "/usr/bin/nsenter"])
    if (!existsSync(t)) return `${t} is missing (Debian packages systemd, util-linux)`;
  return null;
}

export interface PrivateSystemd {
  pid: number;
  exec(argv: string[], opts?: { timeout?: number }): Promise<Result>;
  /** A path inside its mount namespace, reachable from outside through /proc/PID/root. */
  path(p: string): string;
  stop(): Promise<void>;
}

/** Every cgroup dir under the hierarchies' roots, deepest first (systemd as PID 1 makes init.scope, system.slice, ...). */
function cgroupDirs(): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: string[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) {
      // depth 0 is a hierarchy (memory, pids, unified, ...): only systemd's units in it.
      if (depth !== 0 || /\.(scope|slice)$/.test(e)) walk(join(dir, e), depth + 1);
    }
    if (depth > 0) out.push(dir);
  };
  walk("/sys/fs/cgroup", -1);
  return out;
}

export async function privateSystemd(units: Record<string, string>, wants: string[]): Promise<PrivateSystemd> {
  const before = new Set(cgroupDirs());
  const dir = tempDir("lifeboat-systemd-");
  for (const [name, text] of Object.entries(units)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  // Masked, so that nothing of the host's boot (udev, sysctl, tmpfiles, mounts...) can be pulled in.
  for (const t of MASKED) symlinkSync("/dev/null", join(dir, t));
  writeFileSync(join(dir, "lifeboat-test.target"), `[Unit]\nDescription=Lifeboat test units\nDefaultDependencies=no\nWants=${wants.join(" ")}\n`);
  const inner = `set -e; mount -t tmpfs -o mode=0755 tmpfs /run; mkdir -p /run/systemd/system; cp -a ${dir}/. /run/systemd/system/;
    exec env container=lifeboat-test ${SYSTEMD} --unit=lifeboat-test.target --log-target=console --show-status=no`;
  const proc = execa("unshare", ["--pid", "--mount", "--net", "--uts", "--ipc", "--cgroup", "--fork", "--mount-proc", "sh", "-c", inner], {
    stdin: "ignore",
    reject: false,
    all: true,
    buffer: true,
  });
  // systemd is the child of unshare: wait for it, then for "running" (or "degraded").
  let pid = 0;
  const deadline = Date.now() + 30_000;
  for (; !pid && Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const r = await execa("pgrep", ["-P", String(proc.pid), "-x", "systemd"], { reject: false });
    pid = Number(r.stdout.trim().split("\n")[0]) || 0;
  }
  if (!pid) throw new Error(`the private systemd did not start: ${String((await Promise.race([proc, new Promise((r) => setTimeout(r, 1000, { all: "" }))]) as { all?: string }).all)}`);
  const exec = (argv: string[], opts: { timeout?: number } = {}) => execa("nsenter", ["-t", String(pid), "-m", "-p", "-n", "-u", "-i", "--", ...argv], { reject: false, stdin: "ignore", timeout: opts.timeout ?? 60_000 });
  let state = "";
  while (Date.now() < deadline && !["running", "degraded"].includes(state)) {
    state = (await exec(["systemctl", "is-system-running"])).stdout.trim();
    if (!["running", "degraded"].includes(state)) await new Promise((r) => setTimeout(r, 200));
  }
  const stop = async () => {
    await exec(["systemctl", "exit"], { timeout: 10_000 });
    const killer = setTimeout(() => process.kill(pid, "SIGKILL"), 10_000);
    await proc;
    clearTimeout(killer);
    // The cgroups it made and left (empty once its processes are gone), deepest first.
    for (const d of cgroupDirs().filter((x) => !before.has(x)))
      try {
        rmdirSync(d);
      } catch {
        /* not empty: still in use */
      }
  };
  if (!["running", "degraded"].includes(state)) {
    await stop();
    throw new Error(`the private systemd is "${state}" after 30 s`);
  }
  return {
    pid,
    exec,
    path: (p) => `/proc/${pid}/root${p}`,
    stop,
  };
}
