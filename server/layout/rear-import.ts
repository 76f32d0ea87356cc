import type { Disk, DiskLayout, Filesystem, Luks, Lvm, MdArray, Mount, Partition, Swap } from "./layout.ts";
import { byMountOrder, GPT_TYPES, lvMapperPath, parseLayout } from "./layout.ts";

/**
 * Imports a ReaR `disklayout.conf` (/var/lib/rear/layout/disklayout.conf) as a layout.
 * ReaR records no disk serials, partition GUIDs or ext features, so an imported layout
 * always needs an explicit disk mapping and keeps partition sizes (used bytes unknown).
 * Lines ReaR commented out (excluded components) stay out.
 */

/** `key=value` words after the positional fields. */
function kv(words: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of words) {
    const i = w.indexOf("=");
    if (i > 0) out[w.slice(0, i)] = w.slice(i + 1);
  }
  return out;
}

/** ReaR writes spaces in names as %20 (and other bytes the same way). */
const unescape = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/**
 * The positional fields each keyword needs (the keyword counted), with the form named in the
 * one-line error a shorter line gets. Keywords not listed are skipped or check their own.
 */
const NEEDS: Record<string, [number, string]> = {
  disk: [3, "disk DEV SIZE LABEL"],
  raid: [2, "raid DEV key=value..."],
  crypt: [3, "crypt /dev/mapper/NAME DEV key=value..."],
  lvmdev: [3, "lvmdev /dev/VG PVDEV [UUID]"],
  lvmgrp: [3, "lvmgrp /dev/VG EXTENTSIZE_KIB [EXTENTS]"],
  lvmvol: [4, "lvmvol /dev/VG NAME SIZE[b] [LAYOUT]"],
  fs: [4, "fs DEV MOUNTPOINT TYPE key=value..."],
  swap: [2, "swap DEV key=value..."],
  btrfsmountedsubvol: [3, "btrfsmountedsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH"],
  btrfsnormalsubvol: [2, "btrfsnormalsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH"],
};

/** What the lines read so far hold; `assemble` turns it into a layout. */
interface RearState {
  disks: Disk[];
  md: MdArray[];
  lvm: Lvm;
  luks: Luks[];
  filesystems: Filesystem[];
  swap: Swap[];
  mounts: Mount[];
  /** btrfs subvolume paths per device. */
  subvols: Map<string, string[]>;
}

/** A line's reader: its words (keyword first); returns a problem for a line it cannot use. */
type LineReader = (words: string[], state: RearState) => string | undefined;

const devName = (path: string) => path.replace(/^\/dev\//, "");

function readDisk(words: string[], state: RearState): undefined {
  const [, path, size, label] = words as [string, string, string, string?];
  state.disks.push({
    name: devName(path),
    path,
    sizeBytes: Number(size),
    model: null,
    serial: null,
    wwn: null,
    transport: null,
    logicalSectorSize: 512,
    physicalSectorSize: 512,
    byId: [],
    removable: false,
    table: label === "gpt" || label === "msdos" ? { label: label === "gpt" ? "gpt" : "dos", id: "", sectorSize: 512, firstLba: null, lastLba: null, partitions: [] } : null,
  });
  return undefined;
}

/** The partition type ReaR's parted flags stand for, in GPT GUIDs or DOS ids. */
function partitionType(gpt: boolean, flags: string[], nameOrType: string | undefined): string {
  if (gpt) {
    if (flags.includes("esp") || (flags.includes("boot") && !flags.includes("legacy_boot"))) return GPT_TYPES.esp;
    if (flags.includes("bios_grub")) return GPT_TYPES.biosBoot;
    if (flags.includes("lvm")) return GPT_TYPES.lvm;
    if (flags.includes("raid")) return GPT_TYPES.raid;
    return flags.includes("swap") ? GPT_TYPES.swap : GPT_TYPES.linux;
  }
  if (nameOrType === "extended") return "5";
  if (flags.includes("esp")) return "EF";
  if (flags.includes("lvm")) return "8E";
  if (flags.includes("raid")) return "FD";
  return flags.includes("swap") ? "82" : "83";
}

function readPartition(words: string[], state: RearState): string | undefined {
  // part DISK SIZE START NAME|TYPE FLAGS PARTDEV
  const [, diskPath, size, start, nameOrType, flagsWord, partDev] = words;
  const disk = state.disks.find((d) => d.path === diskPath);
  if (!disk?.table || !size || !start || !partDev) return "partition of an unknown disk or missing fields";
  const flags = (flagsWord ?? "none").split(",");
  const gpt = disk.table.label === "gpt";
  const partition: Partition = {
    number: Number(/(\d+)$/.exec(partDev)?.[1]),
    path: partDev,
    start: Math.round(Number(start) / 512),
    size: Math.round(Number(size) / 512),
    type: partitionType(gpt, flags, nameOrType),
    uuid: null,
    name: gpt && nameOrType && nameOrType !== "rear-noname" ? unescape(nameOrType) : null,
    attrs: gpt && flags.includes("legacy_boot") ? "LegacyBIOSBootable" : null,
    bootable: !gpt && flags.includes("boot"),
  };
  disk.table.partitions.push(partition);
  return undefined;
}

function readRaid(words: string[], state: RearState): undefined {
  const options = kv(words.slice(2));
  state.md.push({
    path: words[1]!,
    name: options.name ?? null,
    level: options.level ?? "raid1",
    metadata: options.metadata ?? "1.2",
    uuid: options.uuid ?? "",
    members: (options.devices ?? "").split(",").filter(Boolean),
    sizeBytes: Number(options.size ?? 0) * 1024,
  });
  return undefined;
}

function readCrypt(words: string[], state: RearState): undefined {
  const options = kv(words.slice(3));
  state.luks.push({ path: words[2]!, uuid: options.uuid ?? "", name: words[1]!.replace(/^\/dev\/mapper\//, "") });
  return undefined;
}

function readLvmDevice(words: string[], state: RearState): undefined {
  state.lvm.pvs.push({ path: words[2]!, uuid: words[3] ?? "", vg: devName(words[1]!), sizeBytes: 0 });
  return undefined;
}

function readLvmGroup(words: string[], state: RearState): undefined {
  // lvmgrp /dev/VG EXTENTSIZE_KIB [EXTENTS] [SIZE]
  const extentBytes = Number(words[2]) * 1024;
  state.lvm.vgs.push({ name: devName(words[1]!), uuid: "", extentBytes, sizeBytes: Number(words[3] ?? 0) * extentBytes });
  return undefined;
}

function readLvmVolume(words: string[], state: RearState): undefined {
  // lvmvol /dev/VG NAME SIZE[b] LAYOUT (old ReaR: size in extents without "b")
  const vg = devName(words[1]!);
  const extentBytes = state.lvm.vgs.find((v) => v.name === vg)?.extentBytes ?? 4 * 1024 * 1024;
  const size = words[3]!;
  const sizeBytes = size.endsWith("b") ? Number(size.slice(0, -1)) : Number(size) * extentBytes;
  state.lvm.lvs.push({ vg, name: words[2]!, uuid: "", sizeBytes, path: `/dev/${vg}/${words[2]}`, segtype: words[4] ?? "linear" });
  return undefined;
}

function readFilesystem(words: string[], state: RearState): undefined {
  // fs DEV MOUNTPOINT TYPE key=value...
  const [, dev, mountpoint, type] = words as [string, string, string, string];
  const options = kv(words.slice(4));
  const mkfsOptions: string[] = [];
  if (/^ext[234]$/.test(type)) {
    if (options.blocksize) mkfsOptions.push("-b", options.blocksize);
    if (options.bytes_per_inode) mkfsOptions.push("-i", options.bytes_per_inode);
  }
  state.filesystems.push({ dev, type, uuid: options.uuid || null, label: options.label ? unescape(options.label) : null, sizeBytes: 0, usedBytes: null, mkfsOptions, subvolumes: [] });
  state.mounts.push({ dev, mountpoint, fstype: type, options: "" });
  return undefined;
}

function readSwap(words: string[], state: RearState): undefined {
  const options = kv(words.slice(2));
  state.swap.push({ dev: words[1]!, uuid: options.uuid || null, label: options.label || null, sizeBytes: 0 });
  return undefined;
}

function addSubvolume(state: RearState, dev: string, path: string): void {
  state.subvols.set(dev, [...(state.subvols.get(dev) ?? []), path]);
}

function readMountedSubvolume(words: string[], state: RearState): undefined {
  // btrfsmountedsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH
  const [, dev, mountpoint, , path] = words as [string, string, string, string?, string?];
  if (!path || path === "/") return undefined;
  addSubvolume(state, dev, path);
  const root = state.mounts.find((m) => m.mountpoint === "/");
  if (mountpoint === "/" && root) root.options = `subvol=${path}`;
  else state.mounts.push({ dev, mountpoint, fstype: "btrfs", options: `subvol=${path}` });
  return undefined;
}

function readNormalSubvolume(words: string[], state: RearState): undefined {
  const [, dev, , , path] = words;
  if (path && path !== "/") addSubvolume(state, dev!, path);
  return undefined;
}

/** One reader per keyword; other keywords (opaldisk, multipath, btrfsdefaultsubvol…) are not needed to recreate. */
const READERS: Record<string, LineReader> = {
  disk: readDisk,
  part: readPartition,
  raid: readRaid,
  crypt: readCrypt,
  lvmdev: readLvmDevice,
  lvmgrp: readLvmGroup,
  lvmvol: readLvmVolume,
  fs: readFilesystem,
  swap: readSwap,
  btrfsmountedsubvol: readMountedSubvolume,
  btrfsnormalsubvol: readNormalSubvolume,
};

/** Reads every line; the first problem found is thrown, in one line. */
function readLines(text: string): RearState {
  const state: RearState = { disks: [], md: [], lvm: { pvs: [], vgs: [], lvs: [] }, luks: [], filesystems: [], swap: [], mounts: [], subvols: new Map() };
  const problems: string[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const words = line.split(/\s+/);
    const keyword = words[0]!;
    const where = `disklayout.conf line ${index + 1}`;
    const needs = Object.hasOwn(NEEDS, keyword) ? NEEDS[keyword] : undefined;
    if (needs && words.length < needs[0]) return void problems.push(`${where}: expected "${needs[1]}"`);
    const problem = Object.hasOwn(READERS, keyword) ? READERS[keyword]!(words, state) : undefined;
    if (problem) problems.push(`${where}: ${problem}`);
  });
  if (problems.length) throw new Error(problems[0]);
  return state;
}

/** ReaR names LVs /dev/mapper/VG-LV, layouts /dev/VG/LV; sizes ReaR does not state are the device's. */
function canonicalise(state: RearState): void {
  const { lvm, filesystems, swap, mounts, luks, disks } = state;
  const canon = new Map(lvm.lvs.map((l) => [lvMapperPath(l.vg, l.name), l.path]));
  const canonical = (path: string) => canon.get(path) ?? path;
  for (const f of filesystems) {
    f.dev = canonical(f.dev);
    f.subvolumes = [...new Set(state.subvols.get(f.dev) ?? [])].sort();
  }
  for (const s of swap) s.dev = canonical(s.dev);
  for (const m of mounts) m.dev = canonical(m.dev);
  for (const x of luks) x.path = canonical(x.path);
  for (const d of disks) d.table?.partitions.sort((a, b) => a.number - b.number);
  mounts.sort(byMountOrder);
  const sectorsOf = (dev: string) => disks.flatMap((d) => d.table?.partitions ?? []).find((p) => p.path === dev)?.size ?? 0;
  const sizeOf = (dev: string) => sectorsOf(dev) * 512 || (lvm.lvs.find((l) => l.path === dev)?.sizeBytes ?? 0);
  for (const f of filesystems) f.sizeBytes = sizeOf(f.dev);
  for (const s of swap) s.sizeBytes = sizeOf(s.dev);
}

export function layoutFromRear(text: string, hostname: string, capturedAt = new Date().toISOString()): DiskLayout {
  const state = readLines(text);
  canonicalise(state);
  const { disks, md, lvm, luks, filesystems, swap, mounts } = state;
  const esp = mounts.find((m) => m.mountpoint === "/boot/efi");
  return parseLayout(
    {
      format: "lifeboat-layout/1",
      source: "rear",
      hostname,
      capturedAt,
      disks,
      md,
      lvm,
      luks,
      filesystems,
      swap,
      mounts,
      boot: { firmware: esp ? "uefi" : "bios", loader: "grub", disk: null, efiDir: esp?.mountpoint ?? null, bootloaderId: null, efiEntries: null },
      files: { fstab: null, crypttab: null },
      system: { kernel: null, initramfsTool: null, os: null, packages: null, nics: [] },
      dles: {},
    } satisfies DiskLayout,
    "disklayout.conf",
  );
}
