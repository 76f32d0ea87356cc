/**
 * OpenIPMI's BMC simulator (`ipmi_sim`, Debian openipmi) on loopback (the host's, or a test
 * namespace's), as the BMC of a machine. The machine is its chassis control script, which
 * appends every call ("0x20 set power 1", "0x20 set boot pxe") to calls.log, which the test
 * reads. Two machines: one that exists only as files (the power state and boot device), and a
 * QEMU machine (`qemuChassis`) that "set power 1" starts and "set power 0" stops, booting the
 * network first when a one-time PXE boot was set. ipmitool talks to it over RMCP+ (lanplus,
 * cipher suite 3).
 */
import { createSocket } from "node:dgram";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";

export interface IpmiSim {
  port: number;
  dir: string;
  /** The chassis control calls so far, one per line. */
  calls(): string[];
  power(): "on" | "off";
  /** The "files" machine only: its power state as if someone pressed its button. */
  setPower(state: "on" | "off"): void;
  stop(): Promise<void>;
}

/** A UDP port nobody listens on right now. */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const { port } = s.address();
  s.close();
  return port;
}

const CHASSIS = `#!/bin/sh
# ipmi_sim chassis control: "$0 0x20 get power boot" prints power:N / boot:DEV; "$0 0x20 set power 1" stores it.
dir=$(dirname "$0")
echo "$*" >> "$dir/calls.log"
shift
op=$1; shift
if [ "$op" = get ]; then
  for k in "$@"; do
    if [ -f "$dir/$k" ]; then v=$(cat "$dir/$k"); elif [ "$k" = boot ]; then v=none; else v=0; fi
    echo "$k:$v"
  done
elif [ "$op" = set ]; then
  while [ $# -ge 2 ]; do printf '%s\\n' "$2" > "$dir/$1"; shift 2; done
fi
exit 0
`;

/**
 * The chassis of a QEMU machine. "set power 1" runs `power-on.sh` (qemuPowerOn) detached and
 * waits for its pid file; power is on while that QEMU runs; "set power 0" is pulling the plug.
 * "set boot pxe" is kept in `boot` until the next power-on takes it (a one-time boot device).
 */
const QEMU_CHASSIS = `#!/bin/sh
dir=$(dirname "$0")
echo "$*" >> "$dir/calls.log"
shift
op=$1; shift
running() { [ -s "$dir/qemu.pid" ] && kill -0 "$(cat "$dir/qemu.pid")" 2>/dev/null; }
if [ "$op" = get ]; then
  for k in "$@"; do
    case $k in
      power) if running; then echo power:1; else echo power:0; fi ;;
      boot) if [ -f "$dir/boot" ]; then echo "boot:$(cat "$dir/boot")"; else echo boot:none; fi ;;
      *) echo "$k:0" ;;
    esac
  done
elif [ "$op" = set ]; then
  while [ $# -ge 2 ]; do
    case $1 in
      power)
        if [ "$2" = 1 ]; then
          if ! running; then
            rm -f "$dir/qemu.pid"
            setsid "$dir/power-on.sh" </dev/null >>"$dir/power-on.log" 2>&1 &
            i=0; while [ ! -s "$dir/qemu.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
          fi
        elif running; then kill "$(cat "$dir/qemu.pid")"; fi ;;
      boot) if [ "$2" = none ]; then rm -f "$dir/boot"; else printf '%s\\n' "$2" > "$dir/boot"; fi ;;
    esac
    shift 2
  done
fi
exit 0
`;

const shellWords = (argv: string[]) => argv.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");

/**
 * The power button of a QEMU machine: `power-on.sh` in DIR starts `netFirst` when a one-time
 * PXE boot is pending (and takes it), else `diskFirst`; each power-on's serial console goes to
 * power-on-N.serial. The argv are whole commands (`ip netns exec NS qemu-system-x86_64 ...`).
 */
export function qemuPowerOn(dir: string, netFirst: string[], diskFirst: string[]): void {
  writeFileSync(
    join(dir, "power-on.sh"),
    [
      "#!/bin/sh",
      `dir=${shellWords([dir])}`,
      'n=$(( $(cat "$dir/power-ons" 2>/dev/null || echo 0) + 1 )); echo $n > "$dir/power-ons"',
      'boot=$(cat "$dir/boot" 2>/dev/null); rm -f "$dir/boot"',
      `if [ "$boot" = pxe ]; then set -- ${shellWords(netFirst)}; else set -- ${shellWords(diskFirst)}; fi`,
      'echo "power-on $n: boot ${boot:-default}" >> "$dir/calls.log"',
      'echo $$ > "$dir/qemu.pid"',
      'exec "$@" > "$dir/power-on-$n.serial" 2> "$dir/power-on-$n.stderr"',
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
}

export interface IpmiSimOptions {
  /** Run ipmi_sim (and the readiness probe) inside this network namespace, on its loopback. */
  netns?: string;
  /** The machine: "files" (power and boot device kept in files; default) or "qemu" (qemuPowerOn must be written). */
  machine?: "files" | "qemu";
}

/** Starts ipmi_sim on 127.0.0.1 with user `user`/`password` (admin), the machine off. */
export async function startIpmiSim(dir: string, user: string, password: string, o: IpmiSimOptions = {}): Promise<IpmiSim> {
  const port = await freeUdpPort();
  const inNs = (argv: string[]) => (o.netns ? ["ip", "netns", "exec", o.netns, ...argv] : argv);
  writeFileSync(join(dir, "chassis.sh"), o.machine === "qemu" ? QEMU_CHASSIS : CHASSIS, { mode: 0o755 });
  writeFileSync(join(dir, "power"), "0\n");
  writeFileSync(
    join(dir, "lan.conf"),
    [
      'name "lifeboat-test"',
      "set_working_mc 0x20",
      "  startlan 1",
      `    addr 127.0.0.1 ${port}`,
      "    priv_limit admin",
      ...["callback", "user", "operator", "admin"].map((p) => `    allowed_auths_${p} md5`),
      "    guid a123456789abcdefa123456789abcdef",
      "  endlan",
      `  chassis_control "${join(dir, "chassis.sh")} 0x20"`,
      `  user 2 true "${user}" "${password}" admin 10 md5`,
      "",
    ].join("\n"),
  );
  writeFileSync(join(dir, "sim.emu"), "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n");
  const [sim, ...simArgs] = inNs(["ipmi_sim", "-c", join(dir, "lan.conf"), "-f", join(dir, "sim.emu"), "-s", dir, "-n"]);
  const proc: ResultPromise = execa(sim!, simArgs, { reject: false, stdin: "ignore" });
  const until = Date.now() + 15_000;
  for (;;) {
    const [tool, ...toolArgs] = inNs(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", String(port), "-U", user, "-E", "-C", "3", "-N", "1", "-R", "1", "chassis", "power", "status"]);
    const r = await execa(tool!, toolArgs, {
      reject: false,
      env: { IPMI_PASSWORD: password },
      stdin: "ignore",
    });
    if (r.exitCode === 0) break;
    if (proc.exitCode !== null || Date.now() > until) throw new Error(`ipmi_sim did not answer on 127.0.0.1:${port}: ${r.stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  writeFileSync(join(dir, "calls.log"), "");
  return {
    port,
    dir,
    calls: () => (existsSync(join(dir, "calls.log")) ? readFileSync(join(dir, "calls.log"), "utf8").split("\n").filter(Boolean) : []),
    power: () => {
      if (o.machine !== "qemu") return readFileSync(join(dir, "power"), "utf8").trim() === "1" ? "on" : "off";
      const pid = existsSync(join(dir, "qemu.pid")) ? Number(readFileSync(join(dir, "qemu.pid"), "utf8")) : 0;
      try {
        return pid > 0 && process.kill(pid, 0) ? "on" : "off";
      } catch {
        return "off";
      }
    },
    setPower: (state) => writeFileSync(join(dir, "power"), state === "on" ? "1\n" : "0\n"),
    stop: async () => {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      await Promise.race([proc, new Promise((r) => setTimeout(r, 3000))]);
    },
  };
}

/** Whether ipmi_sim and ipmitool are installed, or what is missing. */
export async function ipmiSimUnavailable(): Promise<string | undefined> {
  for (const [tool, pkg] of [["ipmi_sim", "openipmi"], ["ipmitool", "ipmitool"]]) {
    const r = await execa("sh", ["-c", `command -v ${tool}`], { reject: false });
    if (r.exitCode !== 0) return `${tool} is not installed (Debian package ${pkg})`;
  }
  return undefined;
}
