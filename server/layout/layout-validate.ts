import { EXT_FEATURES_IF_PRESENT, EXT_FEATURES_PINNED, XFS_META } from "./capture-tools.ts";
import { type DiskLayout, partitionPath } from "./layout.ts";

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

/**
 * The first thing wrong with a layout, as one line naming where it is ("mounts.1.mountpoint:
 * …"), or null when the layout is one Lifeboat may store and plan from.
 */
export function layoutProblem(l: DiskLayout): string | null {
  const p = (where: string, what: string) => `${where}: ${what}`;
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
  for (const [where, n, max] of counts) if (n > max) return p(where, `${n} entries, at most ${max}`);
  const s = badString(l, "", new Set(["files.fstab", "files.crypttab", "boot.efiEntries"]));
  if (s) return s;
  if (CONTROL.test(l.hostname) || !l.hostname) return p("hostname", `${show(l.hostname)} is not a host name`);
  const dev = (where: string, v: string) => (isDevicePath(v) ? null : p(where, `${show(v)} is not a device path of a kind Lifeboat recreates`));

  for (const [i, d] of l.disks.entries()) {
    const w = `disks.${i}`;
    if (!WHOLE_DISK.test(d.path)) return p(`${w}.path`, `${show(d.path)} is not a whole disk of a kind capture.sh reports (sdX, vdX, hdX, xvdX, nvmeXnY, mmcblkX, loopX)`);
    if (d.name !== d.path.slice(5)) return p(`${w}.name`, `${show(d.name)} is not the name of ${d.path}`);
    if (!SECTOR_SIZES.includes(d.logicalSectorSize)) return p(`${w}.logicalSectorSize`, `${d.logicalSectorSize} is not a sector size (${SECTOR_SIZES.join(", ")})`);
    if (!powersOf2(512, 65536).includes(d.physicalSectorSize)) return p(`${w}.physicalSectorSize`, `${d.physicalSectorSize} is not a sector size`);
    if (d.byId.length > LAYOUT_LIMITS.byId) return p(`${w}.byId`, `${d.byId.length} links, at most ${LAYOUT_LIMITS.byId}`);
    for (const [k, link] of d.byId.entries())
      if (!/^\/dev\/disk\/by-id\/[^/]+$/.test(link) || CONTROL.test(link) || link.endsWith("/..") || link.endsWith("/."))
        return p(`${w}.byId.${k}`, `${show(link)} is not a /dev/disk/by-id link`);
    const t = d.table;
    if (!t) continue;
    if (!SECTOR_SIZES.includes(t.sectorSize)) return p(`${w}.table.sectorSize`, `${t.sectorSize} is not a sector size`);
    const idOk = t.label === "gpt" ? t.id === "" || GUID.test(t.id) : /^(?:0x[0-9A-Fa-f]{1,8})?$/.test(t.id);
    if (!idOk) return p(`${w}.table.id`, `${show(t.id)} is not a ${t.label === "gpt" ? "GPT disk GUID" : "MBR disk identifier (0x…)"}`);
    if (t.partitions.length > LAYOUT_LIMITS.partitions) return p(`${w}.table.partitions`, `${t.partitions.length} entries, at most ${LAYOUT_LIMITS.partitions}`);
    const sectors = Math.floor(d.sizeBytes / t.sectorSize);
    for (const [k, part] of t.partitions.entries()) {
      const pw = `${w}.table.partitions.${k}`;
      if (part.number > 256) return p(`${pw}.number`, `${part.number} is above 256`);
      if (part.path !== partitionPath(d.path, part.number)) return p(`${pw}.path`, `${show(part.path)} is not partition ${part.number} of ${d.path}`);
      if (part.start + part.size > sectors) return p(pw, `sectors ${part.start}+${part.size} end past the disk's ${sectors} sectors`);
      if (!(GUID.test(part.type) || (t.label === "dos" && /^[0-9A-Fa-f]{1,2}$/.test(part.type)))) return p(`${pw}.type`, `${show(part.type)} is not a partition type`);
      if (part.uuid !== null && !GUID.test(part.uuid)) return p(`${pw}.uuid`, `${show(part.uuid)} is not a partition GUID`);
      for (const key of ["name", "attrs"] as const) {
        const v = part[key];
        if (v !== null && (v.length > 256 || CONTROL.test(v))) return p(`${pw}.${key}`, `${show(v)}: at most 256 characters, no control characters`);
      }
    }
  }
  const diskPaths = new Set(l.disks.map((d) => d.path));
  if (diskPaths.size < l.disks.length) return p("disks", "a disk is listed twice");

  for (const [i, a] of l.md.entries()) {
    const w = `md.${i}`;
    if (!MD.test(a.path)) return p(`${w}.path`, `${show(a.path)} is not an MD array (/dev/mdN or /dev/md/NAME)`);
    if (a.name !== null && !/^[A-Za-z0-9_.:+-]{0,64}$/.test(a.name)) return p(`${w}.name`, `${show(a.name)} is not an array name`);
    if (!MD_WORD.test(a.level)) return p(`${w}.level`, `${show(a.level)} is not a RAID level`);
    if (!MD_WORD.test(a.metadata)) return p(`${w}.metadata`, `${show(a.metadata)} is not a superblock version`);
    if (!MD_UUID.test(a.uuid)) return p(`${w}.uuid`, `${show(a.uuid)} is not an MD UUID (xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx)`);
    if (a.members.length > LAYOUT_LIMITS.members) return p(`${w}.members`, `${a.members.length} entries, at most ${LAYOUT_LIMITS.members}`);
    for (const [k, m] of a.members.entries()) {
      const r = dev(`${w}.members.${k}`, m);
      if (r) return r;
    }
  }
  for (const [i, v] of l.lvm.vgs.entries()) {
    if (!isVgName(v.name)) return p(`lvm.vgs.${i}.name`, `${show(v.name)} is not a volume group name`);
    if (!LVM_UUID.test(v.uuid)) return p(`lvm.vgs.${i}.uuid`, `${show(v.uuid)} is not an LVM UUID`);
    if (!powersOf2(1024, 2 ** 34).includes(v.extentBytes)) return p(`lvm.vgs.${i}.extentBytes`, `${v.extentBytes} is not a power of 2 from 1 KiB to 16 GiB`);
  }
  const vgNames = new Set(l.lvm.vgs.map((v) => v.name));
  for (const [i, pv] of l.lvm.pvs.entries()) {
    const r = dev(`lvm.pvs.${i}.path`, pv.path);
    if (r) return r;
    if (!LVM_UUID.test(pv.uuid)) return p(`lvm.pvs.${i}.uuid`, `${show(pv.uuid)} is not an LVM UUID`);
    if (!vgNames.has(pv.vg)) return p(`lvm.pvs.${i}.vg`, `${show(pv.vg)} is not a volume group of the layout`);
  }
  for (const [i, lv] of l.lvm.lvs.entries()) {
    const w = `lvm.lvs.${i}`;
    if (!vgNames.has(lv.vg)) return p(`${w}.vg`, `${show(lv.vg)} is not a volume group of the layout`);
    if (!isLvmName(lv.name)) return p(`${w}.name`, `${show(lv.name)} is not a logical volume name`);
    if (lv.path !== `/dev/${lv.vg}/${lv.name}`) return p(`${w}.path`, `${show(lv.path)} is not /dev/${lv.vg}/${lv.name}`);
    if (!LVM_UUID.test(lv.uuid)) return p(`${w}.uuid`, `${show(lv.uuid)} is not an LVM UUID`);
    if (!WORD.test(lv.segtype)) return p(`${w}.segtype`, `${show(lv.segtype)} is not a segment type`);
  }
  for (const [i, c] of l.luks.entries()) {
    const r = dev(`luks.${i}.path`, c.path);
    if (r) return r;
    if (!DM_NAME.test(c.name)) return p(`luks.${i}.name`, `${show(c.name)} is not a device-mapper name`);
    if (!FS_UUID.test(c.uuid)) return p(`luks.${i}.uuid`, `${show(c.uuid)} is not a LUKS UUID`);
  }
  for (const [i, f] of l.filesystems.entries()) {
    const w = `filesystems.${i}`;
    const r = dev(`${w}.dev`, f.dev);
    if (r) return r;
    if (!FS_TYPE.test(f.type)) return p(`${w}.type`, `${show(f.type)} is not a filesystem type`);
    if (f.uuid !== null && !FS_UUID.test(f.uuid)) return p(`${w}.uuid`, `${show(f.uuid)} is not a filesystem UUID`);
    if (f.label !== null && (f.label.length > 256 || CONTROL.test(f.label))) return p(`${w}.label`, `${show(f.label)}: at most 256 characters, no control characters`);
    const m = mkfsProblem(f.type, f.mkfsOptions);
    if (m) return p(`${w}.mkfsOptions`, m);
    if (f.subvolumes.length > LAYOUT_LIMITS.subvolumes) return p(`${w}.subvolumes`, `${f.subvolumes.length} entries, at most ${LAYOUT_LIMITS.subvolumes}`);
    for (const [k, sv] of f.subvolumes.entries())
      if (!isNormalRelative(sv)) return p(`${w}.subvolumes.${k}`, `${show(sv)} is not a relative path in normal form (no "..", "." or "//")`);
  }
  for (const [i, sw] of l.swap.entries()) {
    const r = dev(`swap.${i}.dev`, sw.dev);
    if (r) return r;
    if (sw.uuid !== null && !FS_UUID.test(sw.uuid)) return p(`swap.${i}.uuid`, `${show(sw.uuid)} is not a swap UUID`);
    if (sw.label !== null && (sw.label.length > 256 || CONTROL.test(sw.label))) return p(`swap.${i}.label`, `${show(sw.label)}: at most 256 characters, no control characters`);
  }
  for (const [i, m] of l.mounts.entries()) {
    const w = `mounts.${i}`;
    const r = dev(`${w}.dev`, m.dev);
    if (r) return r;
    if (!isNormalMountpoint(m.mountpoint)) return p(`${w}.mountpoint`, `${show(m.mountpoint)} is not an absolute path in normal form (no "..", "." or "//")`);
    if (!FS_TYPE.test(m.fstype)) return p(`${w}.fstype`, `${show(m.fstype)} is not a filesystem type`);
    const opts = m.options === "" ? [] : m.options.split(",");
    // subvol= alone is the top level (findmnt shows subvol=/ for it).
    for (const o of opts)
      if (!(o.startsWith("subvol=") && (o === "subvol=" || isNormalRelative(o.slice(7)))))
        return p(`${w}.options`, `${show(o)}: a layout's mount options may only be subvol=PATH (a relative path in normal form)`);
  }
  const b = l.boot;
  if (b.disk !== null && !diskPaths.has(b.disk)) return p("boot.disk", `${show(b.disk)} is not a disk of the layout`);
  if (b.efiDir !== null && !isNormalMountpoint(b.efiDir)) return p("boot.efiDir", `${show(b.efiDir)} is not an absolute path in normal form`);
  if (b.bootloaderId !== null && !EFI_DIR_NAME.test(b.bootloaderId)) return p("boot.bootloaderId", `${show(b.bootloaderId)} is not an EFI directory name`);
  for (const [dle, mp] of Object.entries(l.dles))
    if (!isNormalMountpoint(mp)) return p(`dles.${dle}`, `${show(mp)} is not an absolute path in normal form (no "..", "." or "//")`);
  return null;
}
