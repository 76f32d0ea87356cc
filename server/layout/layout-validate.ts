import { EXT_FEATURES_IF_PRESENT, EXT_FEATURES_PINNED, XFS_META } from "./capture-tools.ts";
import { type Disk, type DiskLayout, type Luks, multipathPartitionNumber, partitionPath } from "./layout.ts";

/**
 * What a layout may hold before Lifeboat stores it or plans from it. Every string that can
 * reach the rescue agent's step calls (device paths, mount points, mkfs and mount options,
 * subvolumes, UUIDs, table fields) is checked against the shapes capture.sh and the ReaR
 * import produce, and counts and sizes are bounded, so a document cannot steer a write past
 * the agent's disk gate. The schema (layout.ts) checks types; this checks values.
 */

export const LAYOUT_LIMITS = {
  disks: 64,
  partitions: 128,
  md: 64,
  members: 64,
  pvs: 256,
  vgs: 64,
  lvs: 1024,
  luks: 256,
  filesystems: 1024,
  swap: 64,
  mounts: 1024,
  subvolumes: 1024,
  mkfsOptions: 32,
  byId: 32,
  /** Paths of one multipath disk. */
  paths: 32,
  dles: 1024,
  nics: 256,
  packages: 200_000,
  /** Characters in any one string, apart from the texts below. */
  string: 4096,
  /** Characters in fstab, crypttab and the EFI boot entries. */
  text: 1 << 20,
} as const;

/** Whole disks of the kinds capture.sh reports; loop devices only with --devices (tests). */
export const WHOLE_DISK = /^\/dev\/(?:(?:sd|hd|vd|xvd)[a-z]{1,3}|nvme\d{1,3}n\d{1,3}|mmcblk\d{1,3}|loop\d{1,4})$/;
/** A partition as capture.sh reports it (also what `grow` may name). */
export const PARTITION = /^\/dev\/(?:(?:sd|hd|vd|xvd)[a-z]{1,3}\d{1,3}|(?:nvme\d{1,3}n\d{1,3}|mmcblk\d{1,3}|loop\d{1,4}|md\d{1,4})p\d{1,3})$/;
const MD = /^\/dev\/(?:md\d{1,4}|md\/[A-Za-z0-9_:+-][A-Za-z0-9_.:+-]{0,63})$/;
/** A device-mapper name (LUKS mappings, LVs as /dev/mapper/VG-LV). */
const DM_NAME = /^[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,126}$/;
/** An LVM VG or LV name (lvm(8): letters, digits, + _ . -, not starting with -, never . or ..). */
const isLvmName = (n: string) => /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$/.test(n) && n !== "." && n !== "..";
/** VG names that would put /dev/VG/LV inside a directory of the rescue system's own. */
const RESERVED_VG = new Set(["mapper", "disk", "md", "block", "char", "bus", "pts", "shm"]);
const GUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
const FS_UUID = /^[0-9A-Za-z][0-9A-Za-z-]{0,63}$/;
const MD_UUID = /^(?:[0-9A-Fa-f]{8}(?::[0-9A-Fa-f]{8}){3})?$/;
const LVM_UUID = /^[0-9A-Za-z-]{0,64}$/;
const FS_TYPE = /^[A-Za-z0-9_]{1,32}$/;
const WORD = /^[A-Za-z0-9._+-]{1,64}$/;
/** One word for mdadm --level= and --metadata= (mdadm itself says which it supports). */
const MD_WORD = /^[a-z0-9][a-z0-9.]{0,15}$/;
/** A directory name below EFI/ (grub-install --bootloader-id). */
const EFI_DIR_NAME = /^(?!\.{1,2}$)[^/\u0000-\u001f\u007f]{1,64}$/;
const SECTOR_SIZES = [512, 1024, 2048, 4096];
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Any device a layout may name: the kinds above, /dev/mapper/NAME, /dev/dm-N, /dev/VG/LV. */
function isDevicePath(p: string): boolean {
  if (WHOLE_DISK.test(p) || PARTITION.test(p) || MD.test(p) || /^\/dev\/dm-\d{1,4}$/.test(p)) return true;
  const mapper = /^\/dev\/mapper\/(.+)$/.exec(p);
  if (mapper) return DM_NAME.test(mapper[1]!);
  const lv = /^\/dev\/([^/]+)\/([^/]+)$/.exec(p);
  return !!lv && isVgName(lv[1]!) && isLvmName(lv[2]!);
}
const isVgName = (n: string) => isLvmName(n) && !RESERVED_VG.has(n);

/** An absolute path in normal form: "/" or "/a/b", no empty, "." or ".." component, no control character. */
export function isNormalMountpoint(p: string): boolean {
  if (p === "/") return true;
  return p.startsWith("/") && isNormalRelative(p.slice(1));
}
/** "a/b": no leading or trailing "/", no empty, "." or ".." component, no control character. */
function isNormalRelative(p: string): boolean {
  return p.length > 0 && p.length <= LAYOUT_LIMITS.string && !CONTROL.test(p) && p.split("/").every((c) => c !== "" && c !== "." && c !== "..");
}

const inSet = (set: readonly number[]) => (v: string) => set.includes(Number(v)) && /^\d+$/.test(v);
const intIn = (lo: number, hi: number) => (v: string) => /^\d{1,12}$/.test(v) && Number(v) >= lo && Number(v) <= hi;
const powersOf2 = (lo: number, hi: number) => {
  const out: number[] = [];
  for (let n = lo; n <= hi; n *= 2) out.push(n);
  return out;
};
/** "k=v,k=v" where each key is one of `keys` and each value passes `value`. */
const keyValues = (keys: readonly string[], value: (k: string, v: string) => boolean) => (s: string) =>
  s.split(",").every((kv) => {
    const [k, v, ...rest] = kv.split("=");
    return rest.length === 0 && v !== undefined && keys.includes(k!) && value(k!, v);
  });
const EXT_FEATURES = [...EXT_FEATURES_PINNED, ...EXT_FEATURES_IF_PRESENT];
const extOptions: Record<string, (v: string) => boolean> = {
  "-O": (v) => v.split(",").every((f) => EXT_FEATURES.includes(f.replace(/^\^/, ""))),
  "-b": inSet(powersOf2(1024, 65536)),
  "-I": inSet(powersOf2(128, 4096)),
  "-i": intIn(1024, 1 << 26),
};
/**
 * The mkfs arguments a layout may carry, per filesystem: flag → check of the value that
 * follows it. These are what layout-capture.ts and rear-import.ts derive; anything else (a
 * second device, an external journal or log device) is refused.
 */
export const MKFS_OPTIONS: Record<string, Record<string, (v: string) => boolean>> = {
  ext2: extOptions,
  ext3: extOptions,
  ext4: extOptions,
  xfs: {
    "-m": keyValues(XFS_META, (_k, v) => v === "0" || v === "1"),
    "-i": keyValues(["sparse", "size"], (k, v) => (k === "sparse" ? v === "0" || v === "1" : inSet(powersOf2(256, 2048))(v))),
    "-b": keyValues(["size"], (_k, v) => inSet(powersOf2(512, 65536))(v)),
  },
  vfat: { "-F": inSet([12, 16, 32]) },
  btrfs: {},
};

function mkfsProblem(type: string, options: string[]): string | null {
  if (options.length > LAYOUT_LIMITS.mkfsOptions) return `${options.length} mkfs options, at most ${LAYOUT_LIMITS.mkfsOptions}`;
  const allowed = MKFS_OPTIONS[type] ?? {};
  for (let i = 0; i < options.length; i += 2) {
    const flag = options[i]!;
    const check = Object.hasOwn(allowed, flag) ? allowed[flag] : undefined;
    if (!check) return `mkfs option ${show(flag)} is not one Lifeboat passes to mkfs.${type}`;
    const value = options[i + 1];
    if (value === undefined || !check(value)) return `mkfs option ${flag} ${value === undefined ? "has no value" : `${show(value)}: not an allowed value`}`;
  }
  return null;
}

/** A value quoted for a one-line message (JSON escapes newlines), shortened. */
function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}…"` : s;
}

/** The first string (depth first) that is too long or holds a NUL, with where it is. */
function badString(v: unknown, where: string, textKeys: Set<string>): string | null {
  if (typeof v === "string") {
    const max = textKeys.has(where) ? LAYOUT_LIMITS.text : LAYOUT_LIMITS.string;
    if (v.length > max) return `${where}: ${v.length} characters, at most ${max}`;
    if (v.includes("\0")) return `${where}: contains a NUL byte`;
    return null;
  }
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) {
      const r = badString(x, `${where}.${i}`, textKeys);
      if (r) return r;
    }
  } else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      const r = badString(k, `${where}.(key)`, textKeys) ?? badString(x, where ? `${where}.${k}` : k, textKeys);
      if (r) return r;
    }
  }
  return null;
}

const at = (where: string, what: string) => `${where}: ${what}`;
const deviceProblem = (where: string, value: string) => (isDevicePath(value) ? null : at(where, `${show(value)} is not a device path of a kind Lifeboat recreates`));
/** At most 256 characters, no control characters (labels, partition names and attributes). */
const shortTextProblem = (where: string, value: string | null) =>
  value !== null && (value.length > 256 || CONTROL.test(value)) ? at(where, `${show(value)}: at most 256 characters, no control characters`) : null;
/** The first problem `check` finds in a list, or null. */
function firstProblem<T>(items: readonly T[], check: (item: T, index: number) => string | null): string | null {
  for (const [index, item] of items.entries()) {
    const problem = check(item, index);
    if (problem) return problem;
  }
  return null;
}

function countProblem(l: DiskLayout): string | null {
  const counts: Array<[string, number, number]> = [
    ["disks", l.disks.length, LAYOUT_LIMITS.disks],
    ["md", l.md.length, LAYOUT_LIMITS.md],
    ["lvm.pvs", l.lvm.pvs.length, LAYOUT_LIMITS.pvs],
    ["lvm.vgs", l.lvm.vgs.length, LAYOUT_LIMITS.vgs],
    ["lvm.lvs", l.lvm.lvs.length, LAYOUT_LIMITS.lvs],
    ["luks", l.luks.length, LAYOUT_LIMITS.luks],
    ["filesystems", l.filesystems.length, LAYOUT_LIMITS.filesystems],
    ["swap", l.swap.length, LAYOUT_LIMITS.swap],
    ["mounts", l.mounts.length, LAYOUT_LIMITS.mounts],
    ["dles", Object.keys(l.dles).length, LAYOUT_LIMITS.dles],
    ["system.nics", l.system.nics.length, LAYOUT_LIMITS.nics],
    ["system.packages.list", l.system.packages?.list.length ?? 0, LAYOUT_LIMITS.packages],
  ];
  for (const [where, n, max] of counts) if (n > max) return at(where, `${n} entries, at most ${max}`);
  return null;
}

/** A multipath WWID as multipathd names maps by it (scsi_id's ID_SERIAL, NVMe's eui./uuid.). */
const WWID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function multipathProblem(disk: Disk, where: string): string | null {
  const mp = disk.multipath!;
  if (!/^\/dev\/mapper\/[^/]+$/.test(disk.path) || !isDevicePath(disk.path)) return at(`${where}.path`, `${show(disk.path)} is not a multipath device (/dev/mapper/NAME)`);
  if (mp.wwid !== null && !WWID.test(mp.wwid)) return at(`${where}.multipath.wwid`, `${show(mp.wwid)} is not a multipath WWID`);
  if (mp.paths.length > LAYOUT_LIMITS.paths) return at(`${where}.multipath.paths`, `${mp.paths.length} entries, at most ${LAYOUT_LIMITS.paths}`);
  return firstProblem(mp.paths, (path, k) => (WHOLE_DISK.test(path) ? null : at(`${where}.multipath.paths.${k}`, `${show(path)} is not a whole disk of a kind capture.sh reports`)));
}

function diskProblem(disk: Disk, index: number): string | null {
  const where = `disks.${index}`;
  const multipath = disk.multipath && multipathProblem(disk, where);
  if (multipath) return multipath;
  if (!disk.multipath && !WHOLE_DISK.test(disk.path)) return at(`${where}.path`, `${show(disk.path)} is not a whole disk of a kind capture.sh reports (sdX, vdX, hdX, xvdX, nvmeXnY, mmcblkX, loopX)`);
  if (disk.name !== disk.path.slice(5)) return at(`${where}.name`, `${show(disk.name)} is not the name of ${disk.path}`);
  if (!SECTOR_SIZES.includes(disk.logicalSectorSize)) return at(`${where}.logicalSectorSize`, `${disk.logicalSectorSize} is not a sector size (${SECTOR_SIZES.join(", ")})`);
  if (!powersOf2(512, 65536).includes(disk.physicalSectorSize)) return at(`${where}.physicalSectorSize`, `${disk.physicalSectorSize} is not a sector size`);
  if (disk.byId.length > LAYOUT_LIMITS.byId) return at(`${where}.byId`, `${disk.byId.length} links, at most ${LAYOUT_LIMITS.byId}`);
  const byId = firstProblem(disk.byId, (link, k) =>
    !/^\/dev\/disk\/by-id\/[^/]+$/.test(link) || CONTROL.test(link) || link.endsWith("/..") || link.endsWith("/.") ? at(`${where}.byId.${k}`, `${show(link)} is not a /dev/disk/by-id link`) : null,
  );
  return byId ?? tableProblem(disk, where);
}

/** A partition table's owner: a disk, or an MD array with a table of its own. */
type TableOwner = Pick<Disk, "path" | "sizeBytes" | "table"> & { multipath?: Disk["multipath"] };

function tableProblem(disk: TableOwner, where: string): string | null {
  const table = disk.table;
  if (!table) return null;
  if (!SECTOR_SIZES.includes(table.sectorSize)) return at(`${where}.table.sectorSize`, `${table.sectorSize} is not a sector size`);
  const idOk = table.label === "gpt" ? table.id === "" || GUID.test(table.id) : /^(?:0x[0-9A-Fa-f]{1,8})?$/.test(table.id);
  if (!idOk) return at(`${where}.table.id`, `${show(table.id)} is not a ${table.label === "gpt" ? "GPT disk GUID" : "MBR disk identifier (0x…)"}`);
  if (table.partitions.length > LAYOUT_LIMITS.partitions) return at(`${where}.table.partitions`, `${table.partitions.length} entries, at most ${LAYOUT_LIMITS.partitions}`);
  const sectors = Math.floor(disk.sizeBytes / table.sectorSize);
  return firstProblem(table.partitions, (part, k) => {
    const pw = `${where}.table.partitions.${k}`;
    if (part.number > 256) return at(`${pw}.number`, `${part.number} is above 256`);
    const isPartitionN = disk.multipath ? multipathPartitionNumber(disk.path, part.path) === part.number : part.path === partitionPath(disk.path, part.number);
    if (!isPartitionN) return at(`${pw}.path`, `${show(part.path)} is not partition ${part.number} of ${disk.path}`);
    if (part.start + part.size > sectors) return at(pw, `sectors ${part.start}+${part.size} end past the disk's ${sectors} sectors`);
    if (!(GUID.test(part.type) || (table.label === "dos" && /^[0-9A-Fa-f]{1,2}$/.test(part.type)))) return at(`${pw}.type`, `${show(part.type)} is not a partition type`);
    if (part.uuid !== null && !GUID.test(part.uuid)) return at(`${pw}.uuid`, `${show(part.uuid)} is not a partition GUID`);
    return shortTextProblem(`${pw}.name`, part.name) ?? shortTextProblem(`${pw}.attrs`, part.attrs);
  });
}

function mdProblem(array: DiskLayout["md"][number], index: number): string | null {
  const where = `md.${index}`;
  if (!MD.test(array.path)) return at(`${where}.path`, `${show(array.path)} is not an MD array (/dev/mdN or /dev/md/NAME)`);
  if (array.name !== null && !/^[A-Za-z0-9_.:+-]{0,64}$/.test(array.name)) return at(`${where}.name`, `${show(array.name)} is not an array name`);
  if (!MD_WORD.test(array.level)) return at(`${where}.level`, `${show(array.level)} is not a RAID level`);
  if (!MD_WORD.test(array.metadata)) return at(`${where}.metadata`, `${show(array.metadata)} is not a superblock version`);
  if (!MD_UUID.test(array.uuid)) return at(`${where}.uuid`, `${show(array.uuid)} is not an MD UUID (xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx)`);
  if (array.members.length > LAYOUT_LIMITS.members) return at(`${where}.members`, `${array.members.length} entries, at most ${LAYOUT_LIMITS.members}`);
  const members = firstProblem(array.members, (member, k) => deviceProblem(`${where}.members.${k}`, member));
  if (members || !array.table) return members;
  // Partitions of an array are /dev/mdNpK (PARTITION); a named array's would have no such name.
  if (!/^\/dev\/md\d{1,4}$/.test(array.path)) return at(`${where}.table`, `only an array named /dev/mdN may have a partition table, not ${show(array.path)}`);
  if (array.sizeBytes <= 0) return at(`${where}.sizeBytes`, "an array with a partition table needs its size");
  return tableProblem(array, where);
}

function lvmProblem(lvm: DiskLayout["lvm"]): string | null {
  const vgNames = new Set(lvm.vgs.map((v) => v.name));
  const notVg = (where: string, vg: string) => (vgNames.has(vg) ? null : at(where, `${show(vg)} is not a volume group of the layout`));
  return (
    firstProblem(lvm.vgs, (vg, i) => {
      if (!isVgName(vg.name)) return at(`lvm.vgs.${i}.name`, `${show(vg.name)} is not a volume group name`);
      if (!LVM_UUID.test(vg.uuid)) return at(`lvm.vgs.${i}.uuid`, `${show(vg.uuid)} is not an LVM UUID`);
      return powersOf2(1024, 2 ** 34).includes(vg.extentBytes) ? null : at(`lvm.vgs.${i}.extentBytes`, `${vg.extentBytes} is not a power of 2 from 1 KiB to 16 GiB`);
    }) ??
    firstProblem(lvm.pvs, (pv, i) => {
      const device = deviceProblem(`lvm.pvs.${i}.path`, pv.path);
      if (device) return device;
      if (!LVM_UUID.test(pv.uuid)) return at(`lvm.pvs.${i}.uuid`, `${show(pv.uuid)} is not an LVM UUID`);
      return notVg(`lvm.pvs.${i}.vg`, pv.vg);
    }) ??
    firstProblem(lvm.lvs, (lv, i) => {
      const where = `lvm.lvs.${i}`;
      const vg = notVg(`${where}.vg`, lv.vg);
      if (vg) return vg;
      if (!isLvmName(lv.name)) return at(`${where}.name`, `${show(lv.name)} is not a logical volume name`);
      if (lv.path !== `/dev/${lv.vg}/${lv.name}`) return at(`${where}.path`, `${show(lv.path)} is not /dev/${lv.vg}/${lv.name}`);
      if (!LVM_UUID.test(lv.uuid)) return at(`${where}.uuid`, `${show(lv.uuid)} is not an LVM UUID`);
      return WORD.test(lv.segtype) ? null : at(`${where}.segtype`, `${show(lv.segtype)} is not a segment type`);
    })
  );
}

/**
 * What a LUKS header may be formatted with (cryptsetup luksFormat --type, --cipher ALGO-MODE,
 * --key-size, --hash): the ciphers, modes and hashes of dm-crypt and cryptsetup that a
 * captured or ReaR-described header holds. Nothing else reaches the agent's luksFormat;
 * a combination cryptsetup itself refuses (a key size the mode cannot take) fails that step.
 */
export const LUKS_FORMAT = {
  types: ["luks1", "luks2"],
  algorithms: ["aes", "serpent", "twofish", "camellia", "cast5", "cast6", "sm4"],
  modes: ["xts-plain64", "xts-plain", "xts-essiv:sha256", "cbc-essiv:sha256", "cbc-plain64", "cbc-plain", "cbc-benbi", "ecb"],
  keySizesBits: [128, 192, 256, 384, 512],
  hashes: ["sha1", "sha224", "sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512", "ripemd160", "whirlpool", "sm3", "blake2b-512", "blake2s-256", "stribog512"],
} as const;

const oneOf = (list: readonly (string | number)[]) => list.join(", ");

/** The first LUKS format parameter outside LUKS_FORMAT, as [its key, one line], or null. */
export function luksFormatProblem(l: Pick<Luks, "type" | "cipher" | "keySizeBits" | "hash">): [keyof typeof l, string] | null {
  const f = LUKS_FORMAT;
  if (l.type !== null && !(f.types as readonly string[]).includes(l.type)) return ["type", `${show(l.type)} is not a LUKS version (${oneOf(f.types)})`];
  if (l.cipher !== null) {
    const dash = l.cipher.indexOf("-");
    const [algorithm, mode] = [l.cipher.slice(0, dash), l.cipher.slice(dash + 1)];
    if (dash < 0 || !(f.algorithms as readonly string[]).includes(algorithm) || !(f.modes as readonly string[]).includes(mode))
      return ["cipher", `${show(l.cipher)} is not a cipher Lifeboat formats LUKS with (ALGORITHM-MODE; ${oneOf(f.algorithms)}; ${oneOf(f.modes)})`];
  }
  if (l.keySizeBits !== null && !(f.keySizesBits as readonly number[]).includes(l.keySizeBits))
    return ["keySizeBits", `${show(l.keySizeBits)} is not a LUKS key size in bits (${oneOf(f.keySizesBits)})`];
  if (l.hash !== null && !(f.hashes as readonly string[]).includes(l.hash)) return ["hash", `${show(l.hash)} is not a hash Lifeboat formats LUKS with (${oneOf(f.hashes)})`];
  return null;
}

function luksProblem(mapping: DiskLayout["luks"][number], index: number): string | null {
  const device = deviceProblem(`luks.${index}.path`, mapping.path);
  if (device) return device;
  if (!DM_NAME.test(mapping.name)) return at(`luks.${index}.name`, `${show(mapping.name)} is not a device-mapper name`);
  if (!FS_UUID.test(mapping.uuid)) return at(`luks.${index}.uuid`, `${show(mapping.uuid)} is not a LUKS UUID`);
  const format = luksFormatProblem(mapping);
  return format ? at(`luks.${index}.${format[0]}`, format[1]) : null;
}

function filesystemProblem(fs: DiskLayout["filesystems"][number], index: number): string | null {
  const where = `filesystems.${index}`;
  const device = deviceProblem(`${where}.dev`, fs.dev);
  if (device) return device;
  if (!FS_TYPE.test(fs.type)) return at(`${where}.type`, `${show(fs.type)} is not a filesystem type`);
  if (fs.uuid !== null && !FS_UUID.test(fs.uuid)) return at(`${where}.uuid`, `${show(fs.uuid)} is not a filesystem UUID`);
  const label = shortTextProblem(`${where}.label`, fs.label);
  if (label) return label;
  const mkfs = mkfsProblem(fs.type, fs.mkfsOptions);
  if (mkfs) return at(`${where}.mkfsOptions`, mkfs);
  if (fs.subvolumes.length > LAYOUT_LIMITS.subvolumes) return at(`${where}.subvolumes`, `${fs.subvolumes.length} entries, at most ${LAYOUT_LIMITS.subvolumes}`);
  const subvolumes = firstProblem(fs.subvolumes, (subvolume, k) =>
    isNormalRelative(subvolume) ? null : at(`${where}.subvolumes.${k}`, `${show(subvolume)} is not a relative path in normal form (no "..", "." or "//")`),
  );
  if (subvolumes) return subvolumes;
  // The default subvolume and the NOCOW ones are subvolumes the plan creates, so their paths were checked above.
  const notSubvolume = (key: string, path: string) => (fs.subvolumes.includes(path) ? null : at(`${where}.${key}`, `${show(path)} is not one of the filesystem's subvolumes`));
  if (fs.defaultSubvolume !== null && fs.type !== "btrfs") return at(`${where}.defaultSubvolume`, `only btrfs has a default subvolume, not ${fs.type}`);
  if (fs.nocow.length > LAYOUT_LIMITS.subvolumes) return at(`${where}.nocow`, `${fs.nocow.length} entries, at most ${LAYOUT_LIMITS.subvolumes}`);
  return (fs.defaultSubvolume === null ? null : notSubvolume("defaultSubvolume", fs.defaultSubvolume)) ?? firstProblem(fs.nocow, (path, k) => notSubvolume(`nocow.${k}`, path));
}

function swapProblem(swap: DiskLayout["swap"][number], index: number): string | null {
  const device = deviceProblem(`swap.${index}.dev`, swap.dev);
  if (device) return device;
  if (swap.uuid !== null && !FS_UUID.test(swap.uuid)) return at(`swap.${index}.uuid`, `${show(swap.uuid)} is not a swap UUID`);
  return shortTextProblem(`swap.${index}.label`, swap.label);
}

function mountProblem(mount: DiskLayout["mounts"][number], index: number): string | null {
  const where = `mounts.${index}`;
  const device = deviceProblem(`${where}.dev`, mount.dev);
  if (device) return device;
  if (!isNormalMountpoint(mount.mountpoint)) return at(`${where}.mountpoint`, `${show(mount.mountpoint)} is not an absolute path in normal form (no "..", "." or "//")`);
  if (!FS_TYPE.test(mount.fstype)) return at(`${where}.fstype`, `${show(mount.fstype)} is not a filesystem type`);
  const options = mount.options === "" ? [] : mount.options.split(",");
  // subvol= alone is the top level (findmnt shows subvol=/ for it).
  return firstProblem(options, (option) =>
    option.startsWith("subvol=") && (option === "subvol=" || isNormalRelative(option.slice(7)))
      ? null
      : at(`${where}.options`, `${show(option)}: a layout's mount options may only be subvol=PATH (a relative path in normal form)`),
  );
}

function bootProblem(l: DiskLayout): string | null {
  const boot = l.boot;
  if (boot.disk !== null && !l.disks.some((d) => d.path === boot.disk)) return at("boot.disk", `${show(boot.disk)} is not a disk of the layout`);
  if (boot.efiDir !== null && !isNormalMountpoint(boot.efiDir)) return at("boot.efiDir", `${show(boot.efiDir)} is not an absolute path in normal form`);
  if (boot.bootloaderId !== null && !EFI_DIR_NAME.test(boot.bootloaderId)) return at("boot.bootloaderId", `${show(boot.bootloaderId)} is not an EFI directory name`);
  return firstProblem(Object.entries(l.dles), ([dle, mountpoint]) =>
    isNormalMountpoint(mountpoint) ? null : at(`dles.${dle}`, `${show(mountpoint)} is not an absolute path in normal form (no "..", "." or "//")`),
  );
}

/**
 * The first thing wrong with a layout, as one line naming where it is ("mounts.1.mountpoint:
 * …"), or null when the layout is one Lifeboat may store and plan from. The sections are
 * checked in the document's order.
 */
export function layoutProblem(l: DiskLayout): string | null {
  const checks: Array<() => string | null> = [
    () => countProblem(l),
    () => badString(l, "", new Set(["files.fstab", "files.crypttab", "boot.efiEntries"])),
    () => (CONTROL.test(l.hostname) || !l.hostname ? at("hostname", `${show(l.hostname)} is not a host name`) : null),
    () => firstProblem(l.disks, diskProblem),
    () => (new Set(l.disks.map((d) => d.path)).size < l.disks.length ? at("disks", "a disk is listed twice") : null),
    () => firstProblem(l.md, mdProblem),
    () => lvmProblem(l.lvm),
    () => firstProblem(l.luks, luksProblem),
    () => firstProblem(l.filesystems, filesystemProblem),
    () => firstProblem(l.swap, swapProblem),
    () => firstProblem(l.mounts, mountProblem),
    () => bootProblem(l),
  ];
  return firstProblem(checks, (check) => check());
}
