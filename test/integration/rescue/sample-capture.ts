import { expect } from "vitest";
import { targetDiskSchema } from "../../../server/plan/agent-api.ts";
import type { DiskLayout } from "../../../server/layout/layout.ts";
import { buildPlan } from "../../../server/plan/plan.ts";

/**
 * What the sample system, booted from its restored disk (/dev/vda), captured of itself with
 * capture.sh: the disk, partitions, root filesystem and boot facts as the restore made them,
 * and a plan built from it onto a new disk of the same size (mapped, as an admin does for
 * new hardware) that installs the same boot loader. Returns the plan's steps.
 */
export function expectSampleCapture(
  layout: DiskLayout,
  want: { firmware: "bios" | "uefi"; diskBytes: number; partitions: number; rootDev: string; rootUuid: string },
) {
  expect(layout.hostname).toBe("sample");
  expect(layout.boot.firmware).toBe(want.firmware);
  expect(layout.boot.loader).toBe("grub");
  // The EFI directory and boot loader id are facts of a UEFI boot only.
  expect([layout.boot.efiDir, layout.boot.bootloaderId]).toEqual(want.firmware === "uefi" ? ["/boot/efi", "debian"] : [null, null]);
  expect(layout.system.initramfsTool).toBe("update-initramfs");
  expect(layout.system.os?.id).toBe("debian");
  const disk = layout.disks.find((d) => d.path === "/dev/vda");
  expect(disk?.sizeBytes).toBe(want.diskBytes);
  expect(disk?.table?.label).toBe("gpt");
  expect(disk?.table?.partitions).toHaveLength(want.partitions);
  expect(layout.mounts.find((m) => m.mountpoint === "/")).toMatchObject({ dev: want.rootDev, fstype: "ext4" });
  expect(layout.filesystems.find((f) => f.dev === want.rootDev)?.uuid).toBe(want.rootUuid);

  const target = targetDiskSchema.parse({ name: "vdb", path: "/dev/vdb", sizeBytes: want.diskBytes });
  const plan = buildPlan({ layout, targets: [target], options: { mapping: { vda: "vdb" } } });
  if (!plan.ok) throw new Error(`no plan from the sample's own capture: ${plan.reason}`);
  const boot = plan.steps.find((s) => s.fn === "install_bootloader");
  // UEFI: the sample system carries shim-signed and grub-efi-amd64-signed, so Debian's grub-install
  // pointed its NVRAM entry at shimx64.efi and the capture says it booted through shim (Secure Boot
  // off here: the entry in use names shim): the plan installs shim again.
  expect(layout.boot.shim).toBe(want.firmware === "uefi");
  expect(boot?.args).toEqual(want.firmware === "uefi" ? ["uefi", "grub-shim", "/dev/vdb", "/boot/efi", "debian"] : ["bios", "grub", "/dev/vdb", "", ""]);
  const rootFs = plan.steps.find((s) => s.fn === "make_fs" && s.args[0] === "ext4");
  expect(rootFs?.args.slice(1, 3)).toEqual([want.rootDev.replace("vda", "vdb"), want.rootUuid]);
  return plan.steps;
}
