import { z } from "zod";

/**
 * The typed disk layout of a host: what the plan builder recreates. Built from a capture
 * (layout-capture.ts) or a ReaR disklayout.conf (rear-import.ts) and stored as a layout
 * version. Devices are named by their path on the captured host; LVs as /dev/VG/LV, LUKS
 * mappings as /dev/mapper/NAME. Sizes in bytes except partition start/size (sectors).
 */

const nullableString = z.string().nullable();

export const partitionSchema = z.object({
  number: z.number().int().positive(),
  path: z.string(),
  start: z.number().int().nonnegative(),
  size: z.number().int().positive(),
  /** GPT type GUID (upper case) or MBR type in hex without 0x ("83", "5", "ef"). */
  type: z.string(),
  /** GPT partition GUID; null on MBR. */
  uuid: nullableString,
  /** GPT partition name; null on MBR. */
  name: nullableString,
  /** GPT attribute flags as sfdisk writes them (e.g. "LegacyBIOSBootable"), or null. */
  attrs: nullableString,
  /** MBR active flag. */
  bootable: z.boolean(),
});
export type Partition = z.infer<typeof partitionSchema>;

export const partitionTableSchema = z.object({
  label: z.enum(["gpt", "dos"]),
  /** GPT disk GUID or MBR disk identifier (0x1234abcd). */
  id: z.string(),
  sectorSize: z.number().int().positive(),
  firstLba: z.number().int().nullable(),
  lastLba: z.number().int().nullable(),
  partitions: z.array(partitionSchema),
});
export type PartitionTable = z.infer<typeof partitionTableSchema>;

/**
 * A multipath disk (ReaR's `multipath` line): one LUN that the captured host reached through
 * several paths, used as the device-mapper device /dev/mapper/NAME. Its identity is the
 * multipath WWID, known when the map is named by it (user_friendly_names no); a friendly
 * name (mpatha) or an alias records none.
 */
export const multipathSchema = z.object({
  wwid: nullableString,
  /** The path devices on the captured host (/dev/sda, /dev/sdb). */
  paths: z.array(z.string()),
});
export type Multipath = z.infer<typeof multipathSchema>;

export const diskSchema = z.object({
  name: z.string(),
  path: z.string(),
  sizeBytes: z.number().int().positive(),
  model: nullableString,
  serial: nullableString,
  wwn: nullableString,
  transport: nullableString,
  logicalSectorSize: z.number().int().positive(),
  physicalSectorSize: z.number().int().positive(),
  byId: z.array(z.string()),
  table: partitionTableSchema.nullable(),
  /** The kernel's removable flag (sticks, card readers); captured only when asked for. */
  removable: z.boolean().default(false),
  /** Set for a multipath disk (path /dev/mapper/NAME); null for any other disk. */
  multipath: multipathSchema.nullable().default(null),
});
export type Disk = z.infer<typeof diskSchema>;

/** Removable or on USB: a backup disk or a stick, never restored or written unless asked for. */
export function removableOrUsb(removable: boolean, bus: string | null): boolean {
  return removable || bus === "usb";
}

export const mdArraySchema = z.object({
  path: z.string(),
  name: nullableString,
  level: z.string(),
  metadata: z.string(),
  uuid: z.string(),
  members: z.array(z.string()),
  sizeBytes: z.number().int().nonnegative(),
  /** A partition table on the array itself (arrays of whole disks, partitioned: /dev/md127p1); null: none. */
  table: partitionTableSchema.nullable().default(null),
});
export type MdArray = z.infer<typeof mdArraySchema>;

export const lvmSchema = z.object({
  pvs: z.array(z.object({ path: z.string(), uuid: z.string(), vg: z.string(), sizeBytes: z.number().int().nonnegative() })),
  vgs: z.array(z.object({ name: z.string(), uuid: z.string(), extentBytes: z.number().int().positive(), sizeBytes: z.number().int().nonnegative() })),
  lvs: z.array(z.object({ vg: z.string(), name: z.string(), uuid: z.string(), sizeBytes: z.number().int().positive(), path: z.string(), segtype: z.string() })),
});
export type Lvm = z.infer<typeof lvmSchema>;

export const luksSchema = z.object({
  /** The encrypted device (partition, MD array or LV). */
  path: z.string(),
  uuid: z.string(),
  /** dm name; the opened device is /dev/mapper/NAME. */
  name: z.string(),
  /**
   * How the header was made, where known (null: cryptsetup's defaults). GRUB unlocks a LUKS1
   * /boot only, so a LUKS1 container is formatted LUKS1 again. Checked by layout-validate.ts.
   */
  type: z.enum(["luks1", "luks2"]).nullable().default(null),
  /** cryptsetup --cipher, e.g. aes-xts-plain64. */
  cipher: nullableString.default(null),
  /** cryptsetup --key-size, in bits. */
  keySizeBits: z.number().int().positive().nullable().default(null),
  /** cryptsetup --hash, e.g. sha256. */
  hash: nullableString.default(null),
});
export type Luks = z.infer<typeof luksSchema>;

export const filesystemSchema = z.object({
  dev: z.string(),
  type: z.string(),
  uuid: nullableString,
  label: nullableString,
  sizeBytes: z.number().int().nonnegative(),
  /** Bytes in use, when the capture could tell (mounted, or ext* superblock); null: unknown. */
  usedBytes: z.number().int().nonnegative().nullable(),
  /** mkfs arguments (besides UUID and label) that reproduce what matters. */
  mkfsOptions: z.array(z.string()),
  /** btrfs subvolume paths below the top level, parents first. */
  subvolumes: z.array(z.string()),
  /** btrfs: the default subvolume (btrfs subvolume set-default), one of `subvolumes`; null: the top level. */
  defaultSubvolume: nullableString.default(null),
  /** btrfs: subvolumes made no-copy-on-write (chattr +C), each one of `subvolumes`. */
  nocow: z.array(z.string()).default([]),
});
export type Filesystem = z.infer<typeof filesystemSchema>;

export const swapSchema = z.object({ dev: z.string(), uuid: nullableString, label: nullableString, sizeBytes: z.number().int().nonnegative() });
export type Swap = z.infer<typeof swapSchema>;

export const mountSchema = z.object({
  dev: z.string(),
  mountpoint: z.string(),
  fstype: z.string(),
  /** Only what recreation needs (btrfs subvol=); the rest lives in the restored fstab. */
  options: z.string(),
});
export type Mount = z.infer<typeof mountSchema>;

/** Debian's packages that make a restored system boot under Secure Boot (grub-install --uefi-secure-boot installs their files). */
export const SHIM_PACKAGES = ["shim-signed", "grub-efi-amd64-signed"] as const;

export const bootSchema = z.object({
  firmware: z.enum(["bios", "uefi"]),
  loader: z.enum(["grub", "systemd-boot"]).nullable(),
  /** Disk with the boot code (bios) or the EFI system partition (uefi), when known. */
  disk: nullableString,
  efiDir: nullableString,
  bootloaderId: nullableString,
  efiEntries: nullableString,
  /**
   * UEFI: the system started through Debian's shim (shim-signed and grub-efi-amd64-signed are
   * installed, and Secure Boot was on or the boot entry in use names shimx64.efi): the restore installs shim and the
   * signed GRUB again (grub-install --uefi-secure-boot), so it boots with Secure Boot on.
   */
  shim: z.boolean().default(false),
  /** Secure Boot as the captured machine's firmware reported it; null: not known. */
  secureBoot: z.boolean().nullable().default(null),
});
export type Boot = z.infer<typeof bootSchema>;

export const diskLayoutSchema = z.object({
  format: z.literal("lifeboat-layout/1"),
  source: z.enum(["capture", "rear"]),
  hostname: z.string(),
  capturedAt: z.string(),
  disks: z.array(diskSchema),
  md: z.array(mdArraySchema),
  lvm: lvmSchema,
  luks: z.array(luksSchema),
  filesystems: z.array(filesystemSchema),
  swap: z.array(swapSchema),
  mounts: z.array(mountSchema),
  boot: bootSchema,
  files: z.object({ fstab: nullableString, crypttab: nullableString }),
  system: z.object({
    kernel: nullableString,
    initramfsTool: z.enum(["update-initramfs", "dracut", "mkinitcpio"]).nullable(),
    os: z.object({ id: nullableString, versionId: nullableString, prettyName: nullableString }).nullable(),
    packages: z.object({ manager: z.enum(["dpkg", "rpm"]), list: z.array(z.tuple([z.string(), z.string()])) }).nullable(),
    /** The physical NICs: name, MAC, driver and whether the default route went through it (older layouts: neither). */
    nics: z.array(z.object({ name: z.string(), mac: z.string(), driver: nullableString.default(null), defaultRoute: z.boolean().default(false) })),
  }),
  /** Amanda DLE → mount point it restores to. */
  dles: z.record(z.string(), z.string()),
});
export type DiskLayout = z.infer<typeof diskLayoutSchema>;

/** Validates a stored or uploaded layout; throws a one-line error naming the first bad key. */
export function parseLayout(doc: unknown, what = "layout"): DiskLayout {
  const r = diskLayoutSchema.safeParse(doc);
  if (!r.success) throw new Error(`${what}: ${formatZodIssue(r.error)}`);
  return r.data;
}

export function formatZodIssue(err: z.ZodError): string {
  const i = err.issues[0]!;
  return `${i.path.length ? i.path.join(".") : "(document)"}: ${i.message}`;
}

/** The device-mapper path of an LV: '-' inside VG/LV names is doubled (/dev/mapper/my--vg-root). */
export function lvMapperPath(vg: string, lv: string): string {
  return `/dev/mapper/${vg.replace(/-/g, "--")}-${lv.replace(/-/g, "--")}`;
}

/** Mount order: parents before children (by depth), then by name. */
export function byMountOrder(a: Pick<Mount, "mountpoint">, b: Pick<Mount, "mountpoint">): number {
  const depth = (m: string) => m.split("/").filter(Boolean).length;
  return depth(a.mountpoint) - depth(b.mountpoint) || a.mountpoint.localeCompare(b.mountpoint);
}

/** The partition device of a disk: sda → sda1, nvme0n1/loop0/mmcblk0 → …p1. */
export function partitionPath(diskPath: string, n: number): string {
  return /\d$/.test(diskPath) ? `${diskPath}p${n}` : `${diskPath}${n}`;
}

/** How kpartx and udev spell the partitions of /dev/mapper/NAME: NAME-part1 (SUSE), NAMEp1, NAME_part1, NAME1. */
const MULTIPATH_PARTITION = /^(?:-part|_part|p)?([1-9]\d{0,2})$/;

/** The number of a partition of the multipath disk `diskPath` in any of its spellings, or null. */
export function multipathPartitionNumber(diskPath: string, partPath: string): number | null {
  if (!partPath.startsWith(diskPath)) return null;
  const n = MULTIPATH_PARTITION.exec(partPath.slice(diskPath.length));
  return n ? Number(n[1]) : null;
}

/** GPT partition type GUIDs by role (as sfdisk writes them). */
export const GPT_TYPES = {
  linux: "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
  esp: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
  biosBoot: "21686148-6449-6E6F-744E-656564454649",
  lvm: "E6D6D379-F507-44C2-A23C-238F2A3DF928",
  raid: "A19D880F-05FC-4D3B-A006-743F0F84911E",
  swap: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
} as const;

/** The GPT type GUIDs and MBR types the plan builder treats specially. */
export const PART_TYPES = {
  esp: [GPT_TYPES.esp, "EF"],
  biosBoot: [GPT_TYPES.biosBoot],
  extended: ["5", "F", "85"],
} as const;

export function isPartType(p: Pick<Partition, "type">, kind: keyof typeof PART_TYPES): boolean {
  return (PART_TYPES[kind] as readonly string[]).includes(p.type.toUpperCase());
}
