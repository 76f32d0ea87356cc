/**
 * The rescue system on a CD or USB stick, for machines that cannot network-boot (`lifeboat image
 * iso`): one hybrid ISO 9660 image with the built rescue kernel and initramfs, bootable
 *
 * - under BIOS from a CD (El Torito, GRUB's i386-pc-eltorito core) and from a disk or stick it was
 *   `dd`'d onto (GRUB's boot_hybrid.img in the MBR, which loads the same core);
 * - under UEFI from both (an EFI system partition image, appended as partition 2 and as the
 *   El Torito EFI entry) through Debian's signed chain: Microsoft-signed shim → Debian's signed CD
 *   GRUB (gcdx64) → Debian's signed kernel, so Secure Boot may stay on.
 *
 * Both GRUBs read the one /boot/grub/grub.cfg (`isoGrubConfig`, pure), whose kernel line carries the
 * kernel command line contract (server/plan/cmdline.ts): the server, a one-time code (with
 * `--host`) or none (the agent asks on the console), and the rescue network. The tools are
 * Debian's grub-mkimage (grub-pc-bin), mkfs.vfat and mtools, xorriso.
 */
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { type KernelArgs, renderKernelArgs } from "../server/plan/cmdline.ts";
import { RESCUE_CONSOLE } from "../server/jobs/boot-scripts.ts";
import { SHIM_LOADER } from "../server/dhcp/firmware.ts";
import { SIGNED_CD_GRUB } from "./signed-loaders.ts";

export class IsoError extends Error {}

/** The volume id; GRUB finds the medium by ISO_MARKER, as Debian's CD GRUB does. */
export const ISO_VOLUME = "LIFEBOAT";
export const ISO_MARKER = ".disk/info";
/** Where the rescue files sit on the medium. */
export const ISO_KERNEL = "/lifeboat/vmlinuz";
export const ISO_INITRD = "/lifeboat/initramfs";

const GRUB_PC = "/usr/lib/grub/i386-pc";
/** The BIOS GRUB's modules, built into its core (no module directory on the medium). */
const BIOS_MODULES = ["biosdisk", "iso9660", "part_msdos", "part_gpt", "normal", "linux", "boot", "configfile", "search", "search_fs_file", "echo", "test", "serial", "terminal", "sleep"];

/** GRUB's configuration on the medium, for both GRUBs: the rescue kernel with these arguments. Pure. */
export function isoGrubConfig(args: KernelArgs): string {
  const line = renderKernelArgs(args);
  return [
    "# Lifeboat rescue medium (lifeboat image iso): the same kernel and initramfs as a network boot",
    "serial --unit=0 --speed=115200",
    "terminal_input console serial",
    "terminal_output console serial",
    "set timeout=3",
    'menuentry "Lifeboat rescue system" {',
    `  linux ${ISO_KERNEL} ${line}${line ? " " : ""}${RESCUE_CONSOLE}`,
    `  initrd ${ISO_INITRD}`,
    "}",
    "",
  ].join("\n");
}

/** The BIOS GRUB's embedded first words: find the medium, then read its grub.cfg. */
const BIOS_EARLY_CONFIG = `search --file --set=root /${ISO_MARKER}\nset prefix=($root)/boot/grub\n`;

/** xorriso's arguments for the hybrid image of `root` (its boot files in place) with the ESP image `esp`. Pure. */
export function xorrisoArgs(root: string, esp: string, out: string): string[] {
  return [
    "-as", "mkisofs", "-quiet", "-o", out, "-R", "-J", "-V", ISO_VOLUME,
    // BIOS, CD: El Torito with GRUB's CD core; USB: GRUB's hybrid MBR loads the same core.
    "-b", "boot/grub/i386-pc/eltorito.img", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "--grub2-boot-info",
    "--grub2-mbr", join(GRUB_PC, "boot_hybrid.img"),
    // UEFI, CD and USB: the ESP as partition 2 (GPT/MBR) and as the El Torito EFI entry.
    "-append_partition", "2", "0xef", esp, "-appended_part_as_gpt",
    "-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::", "-no-emul-boot",
    root,
  ];
}

async function run(cmd: string, args: string[]): Promise<void> {
  const r = await execa(cmd, args, { reject: false, all: true, env: { LC_ALL: "C" } });
  if (r.failed) {
    const why = r.code === "ENOENT" ? "not found on PATH (scripts/apt-packages.txt: xorriso, grub-pc-bin, mtools, dosfstools)" : `exit ${r.exitCode}: ${String(r.all ?? "").trim().split("\n").slice(-2).join(" | ")}`;
    throw new IsoError(`${cmd}: ${why}`);
  }
}

/** What an ISO needs from the image directory (`lifeboat image build` puts them there). */
export const ISO_IMAGE_FILES = ["vmlinuz", "initramfs", SHIM_LOADER, SIGNED_CD_GRUB] as const;

/**
 * Writes the hybrid image `out` from the built image in `imageDir` (vmlinuz, initramfs, the signed
 * shim and CD GRUB), with `args` on the kernel line; `work`: a scratch directory, removed after.
 */
export async function buildIso(o: { imageDir: string; out: string; args: KernelArgs; work: string }): Promise<{ out: string; grubCfg: string }> {
  for (const f of ISO_IMAGE_FILES)
    if (!existsSync(join(o.imageDir, f))) throw new IsoError(`no ${f} in ${o.imageDir}: run \`lifeboat image build\` (a second build only checks and copies: seconds)`);
  if (!existsSync(join(GRUB_PC, "boot_hybrid.img"))) throw new IsoError(`${GRUB_PC}/boot_hybrid.img is missing: apt-get install grub-pc-bin (scripts/apt-packages.txt)`);
  const grubCfg = isoGrubConfig(o.args);
  const root = join(o.work, "root");
  rmSync(o.work, { recursive: true, force: true });
  try {
    for (const d of ["lifeboat", "boot/grub/i386-pc", ".disk"]) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, ISO_MARKER), "Lifeboat rescue medium\n");
    copyFileSync(join(o.imageDir, "vmlinuz"), join(root, ISO_KERNEL));
    copyFileSync(join(o.imageDir, "initramfs"), join(root, ISO_INITRD));
    writeFileSync(join(root, "boot/grub/grub.cfg"), grubCfg);
    const early = join(o.work, "early.cfg");
    writeFileSync(early, BIOS_EARLY_CONFIG);
    await run("grub-mkimage", ["-O", "i386-pc-eltorito", "-d", GRUB_PC, "-p", "/boot/grub", "-c", early, "-o", join(root, "boot/grub/i386-pc/eltorito.img"), ...BIOS_MODULES]);
    // The ESP: shim as the removable-media loader, the signed CD GRUB beside it (shim's second stage).
    const esp = join(o.work, "esp.img");
    await run("mkfs.vfat", ["-C", "-n", "LIFEBOATEFI", esp, "8192"]);
    await run("mmd", ["-i", esp, "::/EFI", "::/EFI/BOOT"]);
    await run("mcopy", ["-i", esp, join(o.imageDir, SHIM_LOADER), "::/EFI/BOOT/BOOTX64.EFI"]);
    await run("mcopy", ["-i", esp, join(o.imageDir, SIGNED_CD_GRUB), "::/EFI/BOOT/grubx64.efi"]);
    rmSync(o.out, { force: true });
    await run("xorriso", xorrisoArgs(root, esp, o.out));
  } finally {
    rmSync(o.work, { recursive: true, force: true });
  }
  return { out: o.out, grubCfg };
}
