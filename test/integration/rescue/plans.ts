import { type Step, CONTRACT_VERSION, step } from "../../../server/recovery/steps.ts";
import type { LabDump } from "./lab-dumps.ts";

/** The plan the tests serve: partition one disk, ext4, mount, restore the chain, done. */
export function restorePlan(o: { disk: string; part: string; size: number; serial?: string; chain: LabDump[]; streamUrl: string; mkfsOptions?: string[] }): Step[] {
  const core: Step[] = [
    step("check_disk", { dev: o.disk, serial: o.serial ?? "", wwn: "", size_bytes: o.size }),
    step("wipe_disk", { dev: o.disk, label_id: "5A1D2C3B-4A5E-4F60-8A7B-9C0D1E2F3A4B" }),
    step("partition", {
      dev: o.disk,
      sfdisk_script: [
        "label: gpt",
        "label-id: 5A1D2C3B-4A5E-4F60-8A7B-9C0D1E2F3A4B",
        "unit: sectors",
        "first-lba: 2048",
        "sector-size: 512",
        "",
        `${o.part} : start=2048, size=${o.size / 512 - 2048 - 2048}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=6B1D2C3B-4A5E-4F60-8A7B-9C0D1E2F3A4B`,
      ].join("\n"),
    }),
    step("make_fs", { fstype: "ext4", dev: o.part, uuid: "7c1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", label: "restored" }, o.mkfsOptions ?? []),
    step("mount_fs", { dev: o.part, mountpoint: "/", fstype: "ext4", options: "" }),
    ...o.chain.map((d) =>
      step("restore_dump", {
        mountpoint: "/",
        program: "gtar",
        level: d.level,
        compression: d.compression,
        size_bytes: d.bytes.length,
        url: `${o.streamUrl}/api/v1/dumps/${d.id}/stream`,
      }),
    ),
    step("unmount_all", {}),
    step("plan_done", {}),
  ];
  return [step("plan_begin", { contract: CONTRACT_VERSION, host: "web1", steps: core.length + 1 }), ...core];
}
