import { type Step, CONTRACT_VERSION, step } from "../../../server/plan/steps.ts";
import { GPT_TYPES } from "../../../server/layout/layout.ts";
import type { LabDump } from "./lab-dumps.ts";


/** An sfdisk script (dump format) for a GPT disk with these partition lines (512-byte sectors from 2048). */
export function gptScript(labelId: string, partitions: string[]): string {
  return ["label: gpt", `label-id: ${labelId}`, "unit: sectors", "first-lba: 2048", "sector-size: 512", "", ...partitions].join("\n");
}

/** An sfdisk script for a GPT disk of SIZE bytes with one partition from sector 2048. */
export function gptOnePartition(part: string, size: number, type: string, labelId: string): string {
  return gptScript(labelId, [`${part} : start=2048, size=${size / 512 - 2048 - 2048}, type=${type}, uuid=${labelId.replace(/^./, "6")}`]);
}

/** The plan the tests serve: partition one disk, ext4, mount, restore the chain, done. */
export function restorePlan(o: {
  disk: string;
  part: string;
  size: number;
  serial?: string;
  chain: LabDump[];
  streamUrl: string;
  mkfsOptions?: string[];
  program?: "gtar" | "dump";
}): Step[] {
  const core: Step[] = [
    step("check_disk", { dev: o.disk, serial: o.serial ?? "", wwn: "", size_bytes: o.size }),
    step("wipe_disk", { dev: o.disk, label_id: "5A1D2C3B-4A5E-4F60-8A7B-9C0D1E2F3A4B" }),
    step("partition", { dev: o.disk, sfdisk_script: gptOnePartition(o.part, o.size, GPT_TYPES.linux, "5A1D2C3B-4A5E-4F60-8A7B-9C0D1E2F3A4B") }),
    step("make_fs", { fstype: "ext4", dev: o.part, uuid: "7c1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", label: "restored" }, o.mkfsOptions ?? []),
    step("mount_fs", { dev: o.part, mountpoint: "/", fstype: "ext4", options: "" }),
    ...restoreSteps(o.chain, o.streamUrl, "/", o.program),
    step("unmount_all", {}),
    step("plan_done", { end_state: "reboot" }),
  ];
  return [step("plan_begin", { contract: CONTRACT_VERSION, host: "web1", steps: core.length + 1 }), ...core];
}

/** One restore_dump call per dump of the chain, level 0 first. */
export function restoreSteps(chain: LabDump[], streamUrl: string, mountpoint = "/", program: "gtar" | "dump" = "gtar"): Step[] {
  return chain.map((d) =>
    step("restore_dump", {
      mountpoint,
      program,
      level: d.level,
      compression: d.compression,
      size_bytes: d.bytes.length,
      url: `${streamUrl}/api/v1/dumps/${d.id}/stream`,
    }),
  );
}

/** The dump ids a plan's restore_dump steps stream (what the plan builder returns as `dumps`), read back from their URLs. */
export function dumpsOf(steps: Step[]): string[] {
  return steps.filter((s) => s.fn === "restore_dump").map((s) => /\/dumps\/([^/]+)\/stream$/.exec(s.args.at(-1) ?? "")?.[1] ?? "");
}

/** The LUKS container of the storage-stack plan; its passphrase is supplied to the job, never put in the plan. */
export const LAB_LUKS = { uuid: "3f2e1d0c-b9a8-4765-8432-10fedcba9876", name: "cryptlab", passphrase: "lab passphrase, not in the plan" };

/** Two disks → RAID1 (MD) → LUKS → LVM PV/VG/LV → ext4 → restore: the storage stack the host kernel lacks. */
export function mdLvmPlan(o: { disks: Array<{ dev: string; part: string; serial: string }>; size: number; chain: LabDump[]; streamUrl: string }): Step[] {
  const core: Step[] = [
    ...o.disks.map((d) => step("check_disk", { dev: d.dev, serial: d.serial, wwn: "", size_bytes: o.size })),
    ...o.disks.flatMap((d, i) => {
      const labelId = `5A1D2C3B-4A5E-4F60-8A7B-9C0D1E2F3A4${i}`;
      return [step("wipe_disk", { dev: d.dev, label_id: labelId }), step("partition", { dev: d.dev, sfdisk_script: gptOnePartition(d.part, o.size, GPT_TYPES.raid, labelId) })];
    }),
    step("create_md", { dev: "/dev/md0", name: "lab:0", level: "raid1", metadata: "1.2", uuid: "0a1b2c3d:4e5f6071:8293a4b5:c6d7e8f9", size_kib: "" }, o.disks.map((d) => d.part)),
    step("create_luks", { dev: "/dev/md0", uuid: LAB_LUKS.uuid, name: LAB_LUKS.name, key_id: LAB_LUKS.uuid, type: "", cipher: "", key_size: "", hash: "" }),
    step("create_pv", { dev: `/dev/mapper/${LAB_LUKS.name}`, uuid: "Lb0pv1-AbCd-EfGh-IjKl-MnOp-QrSt-UvWxYz" }),
    step("create_vg", { vg: "vg0", extent_bytes: 4 * 1024 * 1024 }, [`/dev/mapper/${LAB_LUKS.name}`]),
    step("create_lv", { vg: "vg0", lv: "root", size_bytes: 64 * 1024 * 1024 }),
    step("make_fs", { fstype: "ext4", dev: "/dev/vg0/root", uuid: "8d1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", label: "root" }),
    step("mount_fs", { dev: "/dev/vg0/root", mountpoint: "/", fstype: "ext4", options: "" }),
    ...restoreSteps(o.chain, o.streamUrl),
    step("unmount_all", {}),
    step("plan_done", { end_state: "reboot" }),
  ];
  return [step("plan_begin", { contract: CONTRACT_VERSION, host: "md-luks-lvm", steps: core.length + 1 }), ...core];
}

/**
 * A whole system onto one UEFI disk: GPT with an EFI system partition and root, vfat and ext4
 * with the captured UUIDs, the system tree's dumps restored, then FINISH (e.g. map_nic), GRUB
 * installed for UEFI.
 */
export function uefiSystemPlan(o: { disk: string; size: number; serial: string; espUuid: string; rootUuid: string; chain: LabDump[]; streamUrl: string; finish?: Step[] }): Step[] {
  const labelId = "6E2F3A4B-5C6D-4E7F-8091-A2B3C4D5E6F7";
  const espSectors = (64 * 1024 * 1024) / 512;
  const script = gptScript(labelId, [
    `${o.disk}1 : start=2048, size=${espSectors}, type=${GPT_TYPES.esp}, uuid=B1C2D3E4-0001-4000-8000-000000000001`,
    `${o.disk}2 : start=${2048 + espSectors}, size=${o.size / 512 - 2048 - espSectors - 2048}, type=${GPT_TYPES.linux}, uuid=B1C2D3E4-0002-4000-8000-000000000002`,
  ]);
  const core: Step[] = [
    step("check_disk", { dev: o.disk, serial: o.serial, wwn: "", size_bytes: o.size }),
    step("wipe_disk", { dev: o.disk, label_id: labelId }),
    step("partition", { dev: o.disk, sfdisk_script: script }),
    step("make_fs", { fstype: "vfat", dev: `${o.disk}1`, uuid: o.espUuid, label: "EFI" }),
    step("make_fs", { fstype: "ext4", dev: `${o.disk}2`, uuid: o.rootUuid, label: "root" }),
    step("mount_fs", { dev: `${o.disk}2`, mountpoint: "/", fstype: "ext4", options: "" }),
    step("mount_fs", { dev: `${o.disk}1`, mountpoint: "/boot/efi", fstype: "vfat", options: "" }),
    ...restoreSteps(o.chain, o.streamUrl),
    ...(o.finish ?? []),
    step("install_bootloader", { firmware: "uefi", loader: "grub", disk: o.disk, efi_dir: "/boot/efi", bootloader_id: "debian" }),
    step("unmount_all", {}),
    step("plan_done", { end_state: "reboot" }),
  ];
  return [step("plan_begin", { contract: CONTRACT_VERSION, host: "sample", steps: core.length + 1 }), ...core];
}
