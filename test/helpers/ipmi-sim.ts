/**
 * OpenIPMI's BMC simulator (`ipmi_sim`, Debian openipmi) on loopback, as the BMC of a machine
 * that exists only as a chassis control script: it keeps the power state and the boot device
 * in files and appends every call ("0x20 set power 1", "0x20 set boot pxe") to calls.log,
 * which the test reads. ipmitool talks to it over RMCP+ (lanplus, cipher suite 3).
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

/** Starts ipmi_sim on 127.0.0.1 with user `user`/`password` (admin), the machine off. */
export async function startIpmiSim(dir: string, user: string, password: string): Promise<IpmiSim> {
  const port = await freeUdpPort();
  writeFileSync(join(dir, "chassis.sh"), CHASSIS, { mode: 0o755 });
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
  const proc: ResultPromise = execa("ipmi_sim", ["-c", join(dir, "lan.conf"), "-f", join(dir, "sim.emu"), "-s", dir, "-n"], { reject: false, stdin: "ignore" });
  const until = Date.now() + 15_000;
  for (;;) {
    const r = await execa("ipmitool", ["-I", "lanplus", "-H", "127.0.0.1", "-p", String(port), "-U", user, "-E", "-C", "3", "-N", "1", "-R", "1", "chassis", "power", "status"], {
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
    power: () => (readFileSync(join(dir, "power"), "utf8").trim() === "1" ? "on" : "off"),
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
