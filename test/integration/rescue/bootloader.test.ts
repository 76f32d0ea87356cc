/**
 * install_bootloader and regen_initramfs, the agent's two steps that need a real operating
 * system in the restored tree: a Debian 12 system (scripts/sample-os/build.sh: kernel,
 * initramfs-tools, GRUB) is put on a loop device the way a plan does it (check_disk,
 * partition, make_fs, make_swap, mount_fs; the tree is unpacked with tar where a plan streams
 * restore_dump, which image.test.ts and the end-to-end test cover), its initramfs is spoilt,
 * then the two steps run with the real tools, and QEMU (SeaBIOS) boots the disk on its
 * own: the system must come up from its own boot loader, initramfs and root, and what
 * capture.sh captures there must describe that disk and plan back onto a new one. The failures
 * (grub-install on a GPT disk without a BIOS boot partition, no grub-install or update-initramfs
 * in the tree, an unmatched disk, an unsupported loader or initramfs tool) must stop with the
 * tool's own words or a one-line reason, and leave other disks untouched.
 * The UEFI variant runs inside the booted rescue image under OVMF (image.test.ts): this host
 * kernel has no vfat to mount an EFI system partition.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { bootDisk, qemuUnavailable } from "../../helpers/qemu.ts";
import { installCapture, readCapture, SAMPLE_BOOTED, type SampleOs, sampleOs, sampleOsUnavailable } from "../../helpers/sample-os.ts";
import { loopUnavailable, makeLoop } from "../recovery/loopdev.ts";
import { GPT_TYPES } from "../../../server/layout/layout.ts";
import { gptScript } from "./plans.ts";
import { expectSampleCapture } from "./sample-capture.ts";
import { stepHarness } from "./step-harness.ts";
import { describeNeeding } from "../../helpers/needs.ts";

const MiB = 1024 * 1024;
const DISK_BYTES = 2048 * MiB;
const ROOT_UUID = "3a5c0e9e-1b7d-4f2a-9c61-5d2e8f0b7a14";
const SWAP_UUID = "4b6d1f0f-2c8e-4a3b-8d72-6e3f9a1c8b25";

const why = loopUnavailable() ?? sampleOsUnavailable() ?? qemuUnavailable() ?? null;

const sha = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

describeNeeding(why, "install_bootloader and regen_initramfs on a real Debian system, then QEMU boots the disk", () => {
  const { dir, run, target, arm, step } = stepHarness("boot", 300_000);
  afterAll(() => {
    // The by-uuid links install_bootloader made for the loop partitions (this host has no udev).
    for (const u of [ROOT_UUID, SWAP_UUID]) rmSync(`/dev/disk/by-uuid/${u}`, { force: true });
  });
  let os: SampleOs;

  beforeAll(async () => {
    os = await sampleOs();
    arm();
  }, 900_000);

  it(
    "BIOS: GPT with a BIOS boot partition, root and swap; the failures are reported with their output; " +
      "then GRUB and a regenerated initramfs boot the system from its own disk",
    async () => {
      const d = await makeLoop(dir, "bios", DISK_BYTES);
      const other = await makeLoop(dir, "other", 64 * MiB);
      await execa("mkfs.ext4", ["-q", other]);
      const otherBefore = sha(join(dir, "other.img"));
      const sectors = DISK_BYTES / 512;
      const script = gptScript("9D1C4B2A-7E3F-4A5B-8C6D-1E2F3A4B5C6D", [
        `${d}p1 : start=2048, size=2048, type=${GPT_TYPES.biosBoot}, uuid=A1B2C3D4-0001-4000-8000-000000000001`,
        `${d}p2 : start=4096, size=${sectors - 4096 - 131072 - 2048}, type=${GPT_TYPES.linux}, uuid=A1B2C3D4-0002-4000-8000-000000000002`,
        `${d}p3 : start=${sectors - 131072 - 2048}, size=131072, type=${GPT_TYPES.swap}, uuid=A1B2C3D4-0003-4000-8000-000000000003`,
      ]);
      for (const [call, args] of [
        [`check_disk "$1" "" "" ${DISK_BYTES}`, [d]],
        [`partition "$1" "$2"`, [d, script]],
        [`make_fs ext4 "$1" "$2" root`, [`${d}p2`, ROOT_UUID]],
        [`make_swap "$1" "$2" swap`, [`${d}p3`, SWAP_UUID]],
        [`mount_fs "$1" / ext4 ""`, [`${d}p2`]],
      ] as Array<[string, string[]]>) {
        const r = await step(call, args);
        expect(r.exitCode, `${call}: ${r.stderr}`).toBe(0);
      }
      await execa("tar", ["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", os.tar, "-C", target]);
      writeFileSync(join(target, "etc/fstab"), `UUID=${ROOT_UUID} / ext4 errors=remount-ro 0 1\nUUID=${SWAP_UUID} none swap sw 0 0\n`);
      // What a restore onto other storage brings back: an initramfs that cannot boot this machine.
      const initrd = join(target, "boot", `initrd.img-${os.kernel}`);
      writeFileSync(initrd, "not an initramfs for this machine\n");
      const spoilt = sha(initrd);

      // Failures first, each with the tool's own words.
      let r = await step(`install_bootloader bios grub "$1" '' ''`, [other]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/refused: .* was not matched by check_disk/);
      expect(sha(join(dir, "other.img"))).toBe(otherBefore);
      r = await step(`install_bootloader bios systemd-boot "$1" '' ''`, [d]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("install_bootloader: unsupported bios/systemd-boot");
      // grub-install's own failure: a GPT disk with no BIOS boot partition to embed GRUB in.
      const nobios = await makeLoop(dir, "nobios", 64 * MiB);
      await execa("sh", ["-c", `printf 'label: gpt\n,\n' | sfdisk -q ${nobios}`]);
      expect((await step(`check_disk "$1" "" "" ${64 * MiB}`, [nobios])).exitCode).toBe(0);
      r = await step(`install_bootloader bios grub "$1" '' ''`, [nobios]);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/no BIOS Boot Partition; embedding won.t be possible/);
      renameSync(join(target, "usr/sbin/grub-install"), join(target, "usr/sbin/grub-install.away"));
      r = await step(`install_bootloader bios grub "$1" '' ''`, [d]);
      renameSync(join(target, "usr/sbin/grub-install.away"), join(target, "usr/sbin/grub-install"));
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("the restored system has no grub-install or grub2-install");
      renameSync(join(target, "usr/sbin/update-initramfs"), join(target, "usr/sbin/update-initramfs.away"));
      r = await step("regen_initramfs update-initramfs");
      renameSync(join(target, "usr/sbin/update-initramfs.away"), join(target, "usr/sbin/update-initramfs"));
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("regen_initramfs: the restored system has no update-initramfs");
      r = await step("regen_initramfs mkinitramfs-ng");
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("regen_initramfs: unknown tool mkinitramfs-ng");

      // Then the real thing.
      r = await step(`install_bootloader bios grub "$1" '' ''`, [d]);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(r.stdout + r.stderr).toMatch(/Installation finished. No error reported/);
      const grubCfg = readFileSync(join(target, "boot/grub/grub.cfg"), "utf8");
      expect(grubCfg).toContain(`root=UUID=${ROOT_UUID}`);
      expect(grubCfg).toContain("console=ttyS0,115200");
      // GRUB's boot.img in the MBR, its core.img in the BIOS boot partition.
      const mbr = Buffer.alloc(512);
      const fd = openSync(join(dir, "bios.img"), "r");
      readSync(fd, mbr, 0, 512, 0);
      closeSync(fd);
      expect(mbr.toString("latin1")).toContain("GRUB");
      r = await step("regen_initramfs update-initramfs");
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(sha(initrd)).not.toBe(spoilt);
      const listing = (await execa("chroot", [target, "lsinitramfs", `/boot/initrd.img-${os.kernel}`])).stdout;
      expect(listing).toMatch(/virtio_blk\.ko/);
      installCapture(target);
      writeFileSync(join(run, "agent.log"), "boot loader test\n");
      r = await step("unmount_all");
      expect(r.exitCode, r.stderr).toBe(0);
      await execa("losetup", ["-d", d]);

      // The disk boots on its own: GRUB, the regenerated initramfs, the root by its UUID.
      const powerOn = Date.now();
      const vm = bootDisk({ disk: join(dir, "bios.img"), firmware: "bios", serialLog: join(dir, "bios.serial"), workDir: dir });
      try {
        await vm.waitSerial(SAMPLE_BOOTED, 300_000);
        console.log(`sample system (BIOS) booted from its own disk ${((Date.now() - powerOn) / 1000).toFixed(1)} s after power-on`);
        const m = SAMPLE_BOOTED.exec(vm.serial())!;
        expect([m[1], m[2], m[3], m[4]]).toEqual(["sample", ROOT_UUID, os.kernel, "bios"]);
        await vm.waitSerial(/LIFEBOAT-SAMPLE captured exit=0/, 120_000);
        await vm.proc; // it powers itself off
      } finally {
        await vm.kill();
      }
      // What it captured of itself describes this disk, and plans back onto a new one.
      const layout = await readCapture(join(dir, "bios.img"), 4096 * 512);
      expectSampleCapture(layout, { firmware: "bios", diskBytes: DISK_BYTES, partitions: 3, rootDev: "/dev/vda2", rootUuid: ROOT_UUID });
      expect(layout.swap).toEqual([expect.objectContaining({ dev: "/dev/vda3", uuid: SWAP_UUID })]);
      expect(sha(join(dir, "other.img"))).toBe(otherBefore);
    },
    900_000,
  );
});
