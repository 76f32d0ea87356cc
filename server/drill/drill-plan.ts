/**
 * What a drill is made of, as values (pure): the throwaway machine's MAC and disks, the mapping
 * that points each captured disk at its drill disk (by serial, as an admin's mapping would), the
 * QEMU arguments of its two boots (the rescue system, then the restored disk), the kernel command
 * line (the same keys as a network boot: plan/cmdline.ts) and the console's last lines.
 */
import { createHash } from "node:crypto";
import type { DiskLayout } from "../layout/layout.ts";
import { renderKernelArgs } from "../plan/cmdline.ts";
import { RESCUE_CONSOLE } from "../jobs/boot-scripts.ts";
import { type StoredMapping, mappingOf } from "../plan/disks.ts";
import { firmwareArgs } from "./qemu.ts";

/**
 * The drill machine's network: QEMU's user-mode network with `restrict=on` (the guest reaches
 * nothing but the one forward below; no bridge, no tap, nothing on the LAN the real machines
 * live on), where Lifeboat's HTTP port appears at this address. The guest's address and the
 * DHCP server are QEMU's own (10.0.2.0/24).
 */
export const GUEST_SERVER = "10.0.2.100:8080";

/** A locally administered MAC of the host's drill machine (02:…): stable per host, so one active drill per host (one active job per MAC). */
export function drillMac(host: string): string {
  const h = createHash("sha256").update(`lifeboat-drill\0${host}`).digest();
  return ["02", "4c", "42", ...[0, 1, 2].map((i) => h[i]!.toString(16).padStart(2, "0"))].join(":");
}

export interface DrillDisk {
  /** The captured disk it stands in for. */
  captured: string;
  /** The serial QEMU gives it: the mapping names it by this, as an admin names a new disk. */
  serial: string;
  sizeBytes: number;
}

/**
 * One thin disk per captured disk the recovery would write (those the host's profile maps to
 * none are left out, as in a real recovery), at its captured size; refused when they add up to
 * more than `maxBytes`.
 */
export function drillDisks(layout: DiskLayout, profileMapping: StoredMapping | undefined, maxBytes: number): { disks: DrillDisk[]; mapping: Record<string, string> } | { problem: string } {
  const disks: DrillDisk[] = [];
  const mapping: Record<string, string> = {};
  for (const d of layout.disks) {
    if (profileMapping && mappingOf(profileMapping, d) === null) {
      mapping[d.name] = "none";
      continue;
    }
    const serial = `LBDRILL${disks.length}`;
    disks.push({ captured: d.name, serial, sizeBytes: d.sizeBytes });
    mapping[d.name] = `serial:${serial}`;
  }
  if (disks.length === 0) return { problem: "the layout leaves no disk to restore" };
  const total = disks.reduce((n, d) => n + d.sizeBytes, 0);
  if (total > maxBytes)
    return { problem: `its disks add up to ${gib(total)} GiB, more than drill.maxDiskGiB (${gib(maxBytes)} GiB): ${disks.map((d) => `${d.captured} ${gib(d.sizeBytes)} GiB`).join(", ")}` };
  return { disks, mapping };
}

const gib = (n: number) => Number((n / 1024 ** 3).toFixed(1));

/** The rescue kernel's command line for the drill: the network boot's keys and console (pxe/rescue.ipxe). */
export function drillCmdline(job: string, token: string, mac: string): string {
  return `${renderKernelArgs({ server: `http://${GUEST_SERVER}`, job, token, mac })} ${RESCUE_CONSOLE}`;
}

export interface DrillVmSpec {
  accel: string[];
  firmware: "bios" | "uefi";
  /** UEFI: the machine's NVRAM, kept from the rescue boot to the disk boot (grub-install writes its entry there). */
  ovmfVars: string;
  memoryMiB: number;
  cpus: number;
  mac: string;
  disks: Array<DrillDisk & { file: string }>;
}

/**
 * QEMU's arguments for a boot of the drill machine: with `rescue`, the rescue kernel and
 * initramfs with the job's command line and Lifeboat's HTTP port forwarded in (`forward` is the
 * command QEMU runs per connection); without, from its first disk, with no way out at all
 * (`diskNet`: the checks' network, drill/checks.ts, forwards into it from this host's loopback).
 */
export function drillQemuArgs(spec: DrillVmSpec, rescue?: { vmlinuz: string; initramfs: string; cmdline: string; forward: string }, diskNet = "user,id=n0,restrict=on"): string[] {
  const [host, port] = GUEST_SERVER.split(":");
  const net = rescue ? `user,id=n0,restrict=on,guestfwd=tcp:${host}:${port}-cmd:${rescue.forward}` : diskNet;
  if (rescue && /,/.test(rescue.forward)) throw new Error(`drill: forward command ${JSON.stringify(rescue.forward)} has a comma (QEMU would split it)`);
  return [
    ...spec.accel,
    "-m", String(spec.memoryMiB), "-smp", String(spec.cpus),
    ...firmwareArgs(spec.firmware, () => spec.ovmfVars),
    "-nographic", "-vga", "none", "-no-reboot",
    ...(rescue ? ["-kernel", rescue.vmlinuz, "-initrd", rescue.initramfs, "-append", rescue.cmdline] : []),
    "-netdev", net, "-device", `virtio-net-pci,netdev=n0,mac=${spec.mac}${spec.firmware === "uefi" ? ",romfile=" : ""}`,
    ...spec.disks.flatMap((d, i) => ["-drive", `file=${d.file},if=none,id=d${i},format=raw`, "-device", `virtio-blk-pci,drive=d${i},serial=${d.serial}${!rescue && i === 0 ? ",bootindex=1" : ""}`]),
  ];
}

/** The console's last lines, for a failure's reason: escape sequences and carriage returns out, at most `n` non-empty lines. */
export function consoleTail(serial: string, n = 8): string {
  const text = serial
    .replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>c]/g, "")
    .replace(/\r/g, "")
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
  return text
    .split("\n")
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== "")
    .slice(-n)
    .join(" | ")
    .slice(-1500);
}
