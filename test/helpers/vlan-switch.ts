/**
 * A VLAN trunk for QEMU machines on a namespace LAN (issue 21), where the kernel has no 8021q
 * and no bridge VLAN filtering: vlan-switch.mjs, run in the LAN namespace, is the switch. The
 * machine's NIC is its trunk port (`netdev` for bootVm); each access port is a QEMU hub in the
 * machine's own process that joins the switch to a tap on one of the namespace's bridges
 * (`qemuArgs`, for bootVm's extraArgs).
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Lan } from "./netns.ts";

const SCRIPT = fileURLToPath(new URL("./vlan-switch.mjs", import.meta.url));

export interface VlanTrunk {
  /** The machine NIC's backend: the trunk port (id n0). */
  netdev: string;
  /** QEMU arguments for the access ports' hubs and taps. */
  qemuArgs: string[];
  /** The switch's counters per port: frames and bytes in and out per VLAN, and what it dropped and why. */
  stats(): Record<string, { in: Record<string, Counter>; out: Record<string, Counter>; dropped: Record<string, Counter> }>;
}
export interface Counter {
  frames: number;
  bytes: number;
}

/**
 * Starts the switch in the LAN namespace (stopped by lan.down()). The trunk carries NATIVE
 * untagged and TAGGED tagged, refusing TCP on the native VLAN when nativeTcp is false; each
 * access port puts its VLAN untagged on its tap. Ports are UDP on the namespace's own loopback
 * from BASEPORT up.
 */
export function vlanTrunk(lan: Lan, statsFile: string, o: { native: number; tagged: number[]; nativeTcp: boolean; access: Array<{ vlan: number; tap: string }>; basePort?: number }): VlanTrunk {
  const base = o.basePort ?? 41000;
  const dgram = (id: string, qemuPort: number, switchPort: number) =>
    `dgram,id=${id},local.type=inet,local.host=127.0.0.1,local.port=${qemuPort},remote.type=inet,remote.host=127.0.0.1,remote.port=${switchPort}`;
  const ports: unknown[] = [{ name: "trunk", local: base, peer: base + 1, native: o.native, tagged: o.tagged, nativeTcp: o.nativeTcp }];
  const qemuArgs: string[] = [];
  o.access.forEach((a, i) => {
    const [local, peer, hub] = [base + 10 * (i + 1), base + 10 * (i + 1) + 1, 100 + i];
    ports.push({ name: `vlan${a.vlan}`, local, peer, access: a.vlan });
    qemuArgs.push(
      "-netdev", `tap,id=a${i}t,ifname=${a.tap},script=no,downscript=no`, "-netdev", `hubport,id=a${i}th,hubid=${hub},netdev=a${i}t`,
      "-netdev", dgram(`a${i}d`, peer, local), "-netdev", `hubport,id=a${i}dh,hubid=${hub},netdev=a${i}d`,
    );
  });
  lan.spawn("lan", [process.execPath, SCRIPT, JSON.stringify({ stats: statsFile, ports })], { stderr: `${statsFile}.err` });
  return {
    netdev: dgram("n0", base + 1, base),
    qemuArgs,
    stats: () => (existsSync(statsFile) ? JSON.parse(readFileSync(statsFile, "utf8")) : {}),
  };
}
