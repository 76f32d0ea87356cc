import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type TargetDisk, targetDiskSchema } from "../../../server/plan/agent-api.ts";
import { capturedAsTargets } from "../../../server/jobs/job-plan.ts";
import { layoutFromCapture, parseCapture } from "../../../server/layout/layout-capture.ts";
import type { DiskLayout } from "../../../server/layout/layout.ts";

export const FIXTURE_DIR = fileURLToPath(new URL("../../fixtures/layouts/", import.meta.url));
const dir = FIXTURE_DIR;

export const FIXTURES = ["mbr-ext4", "gpt-uefi", "md-raid1-lvm", "luks-lvm", "btrfs-subvols", "xfs", "multi-disk"] as const;
export type FixtureName = (typeof FIXTURES)[number];

export function fixtureLayout(name: FixtureName): DiskLayout {
  return layoutFromCapture(parseCapture(JSON.parse(readFileSync(`${dir}${name}.capture.json`, "utf8"))));
}

/** The captured disks as the agent would report them on the same machine (identity kept). */
export function sameMachine(l: DiskLayout, over: Partial<TargetDisk> = {}): TargetDisk[] {
  return capturedAsTargets(l).map((t) => ({ ...t, signatures: ["gpt", "ext4"], ...over }));
}

/** A new disk with no identity in common with the captured ones. */
export function newDisk(name: string, sizeBytes: number, over: Partial<TargetDisk> = {}): TargetDisk {
  return targetDiskSchema.parse({ name, path: `/dev/${name}`, sizeBytes, serial: `NEW-${name}`, bus: "sata", ...over });
}
