/**
 * What goes into the rescue image, and the pure helpers that turn the staged Debian
 * packages into a file list: module closure from modules.dep, the usr-merged layout of the
 * initramfs.
 */

/** Debian packages fetched with `apt-get install --download-only` (their dependencies come along). */
export const RESCUE_PACKAGES = [
  "linux-image-amd64",
  "busybox-static",
  "dash",
  "util-linux",
  "fdisk",
  "mount",
  "e2fsprogs",
  "xfsprogs",
  "dosfstools",
  "btrfs-progs",
  "lvm2",
  "mdadm",
  "cryptsetup-bin",
  "tar",
  "dump",
  "gzip",
  "zstd",
  "bzip2",
  "xz-utils",
  "curl",
  "ca-certificates",
  "grub-pc-bin",
  "grub-efi-amd64-bin",
  "grub2-common",
  "efibootmgr",
  "dropbear-bin",
  "kmod",
  "udev",
  "coreutils",
] as const;

export interface RescueTool {
  /** Name shown in `image info` and the checks. */
  name: string;
  /** Path in the staged Debian root (as the package ships it). */
  path: string;
  /** Arguments that print the version (first line is kept). */
  versionArgs: string[];
  /** Symlinks to the same program the agent calls by another name (same directory). */
  aliases?: string[];
}

/** The recovery tools; every one is required: a missing one fails the build. */
export const RESCUE_TOOLS: readonly RescueTool[] = [
  { name: "sfdisk", path: "sbin/sfdisk", versionArgs: ["--version"] },
  { name: "wipefs", path: "sbin/wipefs", versionArgs: ["--version"] },
  { name: "blkid", path: "sbin/blkid", versionArgs: ["--version"] },
  { name: "lsblk", path: "bin/lsblk", versionArgs: ["--version"] },
  { name: "mkswap", path: "sbin/mkswap", versionArgs: ["--version"] },
  { name: "partx", path: "usr/bin/partx", versionArgs: ["--version"] },
  { name: "findmnt", path: "bin/findmnt", versionArgs: ["--version"] },
  { name: "mount", path: "bin/mount", versionArgs: ["--version"] },
  { name: "umount", path: "bin/umount", versionArgs: ["--version"] },
  { name: "blockdev", path: "sbin/blockdev", versionArgs: ["--version"] },
  { name: "losetup", path: "sbin/losetup", versionArgs: ["--version"] },
  { name: "mke2fs", path: "sbin/mke2fs", versionArgs: ["-V"], aliases: ["mkfs.ext2", "mkfs.ext3", "mkfs.ext4"] },
  { name: "e2fsck", path: "sbin/e2fsck", versionArgs: ["-V"] },
  { name: "tune2fs", path: "sbin/tune2fs", versionArgs: ["-V"] },
  // capture.sh reads ext features and used blocks with it (a layout captured from the rescue system).
  { name: "dumpe2fs", path: "sbin/dumpe2fs", versionArgs: ["-V"] },
  { name: "resize2fs", path: "sbin/resize2fs", versionArgs: ["-P", "/dev/null"] },
  { name: "mkfs.xfs", path: "sbin/mkfs.xfs", versionArgs: ["-V"] },
  { name: "xfs_admin", path: "usr/sbin/xfs_admin", versionArgs: ["-V"] },
  { name: "xfs_db", path: "usr/sbin/xfs_db", versionArgs: ["-V"] },
  { name: "mkfs.fat", path: "sbin/mkfs.fat", versionArgs: ["--help"], aliases: ["mkfs.vfat"] },
  { name: "fatlabel", path: "sbin/fatlabel", versionArgs: ["--version"] },
  { name: "mkfs.btrfs", path: "sbin/mkfs.btrfs", versionArgs: ["--version"] },
  { name: "btrfs", path: "bin/btrfs", versionArgs: ["--version"] },
  // set_nocow (chattr +C on a btrfs subvolume) and its guard.
  { name: "chattr", path: "usr/bin/chattr", versionArgs: ["-V"] },
  { name: "lsattr", path: "usr/bin/lsattr", versionArgs: ["-V"] },
  {
    name: "lvm",
    path: "sbin/lvm",
    versionArgs: ["version"],
    aliases: ["pvcreate", "pvs", "vgcreate", "vgs", "vgchange", "lvcreate", "lvs", "vgscan", "pvscan"],
  },
  { name: "mdadm", path: "sbin/mdadm", versionArgs: ["--version"] },
  // udev's device-mapper rules call it; without it LVM waits forever for udev.
  { name: "dmsetup", path: "sbin/dmsetup", versionArgs: ["--version"] },
  { name: "cryptsetup", path: "sbin/cryptsetup", versionArgs: ["--version"] },
  { name: "tar", path: "bin/tar", versionArgs: ["--version"] },
  { name: "restore", path: "sbin/restore", versionArgs: ["-h"] },
  { name: "gzip", path: "bin/gzip", versionArgs: ["--version"] },
  { name: "zstd", path: "usr/bin/zstd", versionArgs: ["--version"] },
  { name: "bzip2", path: "bin/bzip2", versionArgs: ["--help"] },
  { name: "xz", path: "usr/bin/xz", versionArgs: ["--version"] },
  { name: "curl", path: "usr/bin/curl", versionArgs: ["--version"] },
  { name: "grub-install", path: "usr/sbin/grub-install", versionArgs: ["--version"] },
  { name: "grub-probe", path: "usr/sbin/grub-probe", versionArgs: ["--version"] },
  { name: "grub-mkimage", path: "usr/bin/grub-mkimage", versionArgs: ["--version"] },
  { name: "efibootmgr", path: "bin/efibootmgr", versionArgs: ["--version"] },
  { name: "dropbear", path: "usr/sbin/dropbear", versionArgs: ["-V"] },
  { name: "dropbearkey", path: "usr/bin/dropbearkey", versionArgs: ["-h"] },
  { name: "kmod", path: "bin/kmod", versionArgs: ["--version"] },
  { name: "modprobe", path: "sbin/modprobe", versionArgs: ["--version"] },
  { name: "systemd-udevd", path: "lib/systemd/systemd-udevd", versionArgs: ["--version"] },
  { name: "udevadm", path: "bin/udevadm", versionArgs: ["--version"] },
  { name: "sha256sum", path: "usr/bin/sha256sum", versionArgs: ["--version"] },
  { name: "busybox", path: "bin/busybox", versionArgs: ["--help"] },
  { name: "dash", path: "bin/dash", versionArgs: ["-c", "echo dash"] },
];

/** Whole directories copied as they are (data the tools need, udev's rules and helpers). */
export const RESCUE_DIRS = [
  "usr/lib/grub/i386-pc",
  "usr/lib/grub/x86_64-efi",
  "lib/udev/rules.d",
  "usr/share/ca-certificates/mozilla",
  "etc/lvm/lvm.conf",
] as const;

/** udev rules that assemble MD arrays / activate LVM by themselves: left out of the image. */
export const UDEV_RULES_LEFT_OUT = ["64-md-raid-assembly.rules", "69-lvm.rules", "69-lvm-metad.rules"] as const;

/** Module subtrees (below kernel/) included whole: every NIC, storage, dm/md, filesystem driver. */
export const MODULE_TREES = [
  "drivers/net/ethernet",
  "drivers/net/phy",
  "drivers/net/mdio",
  "drivers/net/virtio_net.ko",
  "drivers/net/vmxnet3",
  "drivers/net/hyperv",
  "drivers/net/mii.ko",
  "drivers/net/net_failover.ko",
  // The rescue network's bonds and VLANs (lifeboat.bond, lifeboat.vlan).
  "drivers/net/bonding",
  "net/8021q",
  "drivers/virtio",
  "drivers/block",
  "drivers/ata",
  "drivers/nvme",
  "drivers/scsi",
  "drivers/md",
  "drivers/usb/storage",
  "drivers/usb/host",
  "drivers/hid",
  "drivers/firmware/efi",
  "fs/ext4",
  "fs/xfs",
  "fs/btrfs",
  "fs/fat",
  "fs/isofs",
  "fs/nls",
  "fs/efivarfs",
  "crypto",
  "lib",
] as const;

/** Drivers the build refuses to lose: coverage of common NICs and storage controllers. */
export const REQUIRED_NIC_DRIVERS = [
  "virtio_net", "e1000", "e1000e", "igb", "ixgbe", "i40e", "r8169", "tg3", "bnx2", "bnxt_en", "mlx5_core", "vmxnet3",
] as const;
export const REQUIRED_STORAGE_DRIVERS = [
  "virtio_blk", "virtio_scsi", "virtio_pci", "ahci", "ata_piix", "nvme", "sd_mod", "sr_mod", "usb_storage", "uas",
  "xhci_pci", "megaraid_sas", "mpt3sas", "hpsa",
] as const;
export const REQUIRED_STACK_MODULES = [
  "dm_mod", "dm_crypt", "md_mod", "raid0", "raid1", "raid10", "raid456", "ext4", "xfs", "vfat", "btrfs", "isofs", "efivarfs", "loop",
  "bonding", "8021q",
] as const;

/** A built image above this fails to boot on some real firmware: the build refuses it. */
export const MAX_INITRAMFS_BYTES = 100 * 1024 * 1024;

/** Module name as the kernel knows it: file name without .ko, dashes as underscores. */
export function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  return base.replace(/\.ko(\.[a-z]+)?$/, "").replaceAll("-", "_");
}

/** Parses modules.dep ("kernel/a.ko: kernel/b.ko kernel/c.ko") into module path → dependency paths. */
export function parseModulesDep(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    deps.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
  }
  return deps;
}

/**
 * The modules to include: every module below one of `trees`, plus everything they
 * depend on (transitively). Returns sorted module paths relative to lib/modules/VERSION.
 */
export function moduleClosure(deps: Map<string, string[]>, trees: readonly string[]): string[] {
  const roots = trees.map((t) => `kernel/${t}`);
  const wanted = new Set<string>();
  const visit = (m: string) => {
    if (wanted.has(m)) return;
    wanted.add(m);
    for (const d of deps.get(m) ?? []) visit(d);
  };
  for (const m of deps.keys()) if (roots.some((r) => m === r || m.startsWith(`${r}/`))) visit(m);
  return [...wanted].sort();
}

/** Names of the required drivers that are neither included nor built into the kernel. */
export function missingDrivers(required: readonly string[], included: readonly string[], builtin: readonly string[]): string[] {
  const have = new Set([...included, ...builtin].map(moduleName));
  return required.filter((r) => !have.has(r));
}

/**
 * The initramfs is usr-merged: lib/, bin/, sbin/, lib64/ of the packages go below usr/,
 * and the top-level names are symlinks (as on a current Debian system).
 */
export const MERGED_DIRS = ["bin", "sbin", "lib", "lib64"] as const;

export function imagePath(stagePath: string): string {
  const top = stagePath.split("/")[0]!;
  return (MERGED_DIRS as readonly string[]).includes(top) ? `usr/${stagePath}` : stagePath;
}

/** Picks the kernel version of the linux-image-*-amd64 package from the staged lib/modules names. */
export function pickKernelVersion(names: readonly string[]): string {
  const versions = names.filter((n) => /^\d+\.\d+\.\d+-\d+-amd64$/.test(n)).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  if (versions.length === 0) throw new Error("no linux-image-*-amd64 kernel in the staged packages");
  return versions[versions.length - 1]!;
}
