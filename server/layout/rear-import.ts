import type { Disk, DiskLayout, Filesystem, Luks, Lvm, MdArray, Mount, Partition, Swap } from "./layout.ts";
import { byMountOrder, GPT_TYPES, lvMapperPath, multipathPartitionNumber, parseLayout } from "./layout.ts";
import { luksFormatProblem } from "./layout-validate.ts";

/**
 * Imports a ReaR `disklayout.conf` (/var/lib/rear/layout/disklayout.conf) as a layout.
 * ReaR records no disk serials, partition GUIDs or ext features, so an imported layout
 * always needs an explicit disk mapping and keeps partition sizes (used bytes unknown).
 * Lines ReaR commented out (excluded components) stay out. What Lifeboat cannot recreate
 * (REFUSED below) and unknown keywords are refused with the line number, never dropped: a
 * layout that imports is one the plan can rebuild whole.
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
 * one-line error a line with fewer (or more than the third number) gets. Keywords not listed
 * are skipped or check their own.
 */
const NEEDS: Record<string, [number, string, number?]> = {
  disk: [3, "disk DEV SIZE LABEL"],
  // ReaR 2.1 to 2.5 wrote no LABEL, which decides how the part lines read; before 2.1 no SIZE either.
  multipath: [5, "multipath /dev/mapper/NAME SIZE LABEL SLAVES (as ReaR 2.6 and later write it)", 5],
  raid: [2, "raid DEV key=value..."],
  raidarray: [2, "raidarray DEV key=value..."],
  raiddisk: [3, "raiddisk /dev/mdN SIZE [LABEL]", 4],
  crypt: [3, "crypt /dev/mapper/NAME DEV key=value..."],
  lvmdev: [3, "lvmdev /dev/VG PVDEV [UUID]"],
  lvmgrp: [3, "lvmgrp /dev/VG EXTENTSIZE_KIB [EXTENTS]"],
  lvmvol: [4, "lvmvol /dev/VG NAME SIZE[b] [LAYOUT]"],
  fs: [4, "fs DEV MOUNTPOINT TYPE key=value..."],
  swap: [2, "swap DEV key=value..."],
  btrfsmountedsubvol: [3, "btrfsmountedsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH"],
  btrfsnormalsubvol: [2, "btrfsnormalsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH"],
  btrfsdefaultsubvol: [3, "btrfsdefaultsubvol DEV MOUNTPOINT ID SUBVOLPATH"],
  btrfsnocopyonwrite: [2, "btrfsnocopyonwrite SUBVOLPATH"],
};

/** Keywords ReaR writes that Lifeboat does not recreate, and why (the import refuses them by line). */
const REFUSED: Record<string, string> = {
  opaldisk: "self-encrypting (OPAL) disks are not set up by Lifeboat",
  drbd: "DRBD devices are not recreated by Lifeboat",
  logicaldrive: "HP SmartArray logical drives are not recreated by Lifeboat",
  smartarray: "HP SmartArray controllers are not set up by Lifeboat",
  dasd_format: "s390 DASDs are not set up by Lifeboat",
  dasd: "s390 DASDs are not set up by Lifeboat",
  zfs: "ZFS is not recreated by Lifeboat",
};

/** GPT partition types for parted flags beyond Linux's own (parted's gpt.c). */
const GPT_FLAG_TYPES: Record<string, string> = {
  prep: "9E1A2D38-C612-4316-AA26-8B49521E5A8B",
  msftdata: "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
  msftres: "E3C9E316-0B5C-4DB8-817D-F92DF00215AE",
  diag: "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC",
};
/** MBR types for parted msdos flags (parted's dos.c): PReP boot 0x41, FAT32 with LBA 0x0C. */
const MSDOS_FLAG_TYPES: Record<string, string> = { prep: "41", lba: "C" };
/** Flags whose MBR type depends on what parted saw before (hidden, diag): refused rather than guessed. */
const MSDOS_GUESSES = ["hidden", "diag"];
/** LV layouts the plan creates; ReaR writes thin, striped, raid and mirror ones as their layout word. */
const LV_LAYOUTS = new Set(["linear"]);

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
  /** btrfs default subvolume per device (btrfsdefaultsubvol other than the top level). */
  defaults: Map<string, string>;
  /** btrfsnocopyonwrite paths, with their line: each is matched to its filesystem once every line is read. */
  nocow: Array<{ where: string; path: string }>;
  /** Devices each line uses, checked once every line is read: each must be made by some line. */
  uses: Array<{ where: string; dev: string; what: string }>;
}

/** A line's reader: its words (keyword first); returns a problem for a line it cannot use. */
type LineReader = (words: string[], state: RearState, where: string) => string | undefined;

const devName = (path: string) => path.replace(/^\/dev\//, "");

/** A new, empty partition table for ReaR's label word (gpt, msdos); null for any other (loop: a filesystem on the whole device, unknown: nothing). */
const newTable = (label: string | undefined): Disk["table"] =>
  label === "gpt" || label === "msdos" ? { label: label === "gpt" ? "gpt" : "dos", id: "", sectorSize: 512, firstLba: null, lastLba: null, partitions: [] } : null;

function readDisk(words: string[], state: RearState): string | undefined {
  const [, path, size, label] = words as [string, string, string, string?];
  // A disk line for an array says what raiddisk says.
  if (state.md.some((m) => m.path === path)) return readRaidDisk(words, state);
  state.disks.push(newDisk(path, size, label, null));
  return undefined;
}

function readRaidDisk(words: string[], state: RearState): string | undefined {
  // raiddisk /dev/mdN SIZE LABEL (ReaR 2.7 and later, after each raidarray line): the array's size and partition table, if any.
  const [, path, size, label] = words as [string, string, string, string?];
  const array = state.md.find((m) => m.path === path);
  if (!array) return `${path} is made by no raidarray line before it`;
  if (!/^\d+$/.test(size)) return `raiddisk ${path}: "${size.slice(0, 40)}" is not a size in bytes`;
  array.sizeBytes = Number(size);
  array.table = newTable(label);
  return undefined;
}

/** A multipath map named by its WWID: NAA (3…), EUI-64 (2…) as scsi_id writes them, NVMe's eui.…; anything else is a friendly name or an alias. */
const WWID_NAME = /^(?:3[0-9a-f]{16}|3[0-9a-f]{32}|2[0-9a-f]{16,32}|eui\.[0-9a-f]{16,32})$/i;

function readMultipath(words: string[], state: RearState): string | undefined {
  // multipath /dev/mapper/NAME SIZE LABEL SLAVES: one LUN and the paths to it (SLAVES: /dev/sda,/dev/sdb); ReaR writes no disk line for it.
  const [, path, size, label, slaves] = words as [string, string, string, string, string];
  const name = /^\/dev\/mapper\/([^/]+)$/.exec(path)?.[1];
  if (!name) return `${path.slice(0, 80)} is not a multipath device (/dev/mapper/NAME)`;
  if (!/^\d+$/.test(size)) return `multipath ${path}: "${size.slice(0, 40)}" is not a size in bytes`;
  state.disks.push(newDisk(path, size, label, { wwid: WWID_NAME.test(name) ? name : null, paths: slaves.split(",").filter(Boolean) }));
  return undefined;
}

function newDisk(path: string, size: string, label: string | undefined, multipath: Disk["multipath"]): Disk {
  return {
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
    table: newTable(label),
    multipath,
  };
}

/** The partition type ReaR's parted flags stand for, in GPT GUIDs or DOS ids. */
function partitionType(gpt: boolean, flags: string[], nameOrType: string | undefined): string {
  if (gpt) {
    if (flags.includes("esp") || (flags.includes("boot") && !flags.includes("legacy_boot"))) return GPT_TYPES.esp;
    if (flags.includes("bios_grub")) return GPT_TYPES.biosBoot;
    if (flags.includes("lvm")) return GPT_TYPES.lvm;
    if (flags.includes("raid")) return GPT_TYPES.raid;
    if (flags.includes("swap")) return GPT_TYPES.swap;
    return flagType(flags, GPT_FLAG_TYPES) ?? GPT_TYPES.linux;
  }
  if (nameOrType === "extended") return "5";
  if (flags.includes("esp")) return "EF";
  if (flags.includes("lvm")) return "8E";
  if (flags.includes("raid")) return "FD";
  if (flags.includes("swap")) return "82";
  return flagType(flags, MSDOS_FLAG_TYPES) ?? "83";
}

/** The type the first flag found in `table` stands for. */
const flagType = (flags: string[], table: Record<string, string>) => flags.map((f) => (Object.hasOwn(table, f) ? table[f] : undefined)).find(Boolean);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function readPartition(words: string[], state: RearState): string | undefined {
  // part DISK SIZE START NAME|TYPE FLAGS PARTDEV
  const [, diskPath, size, start, nameOrType, flagsWord, partDev, partUuid] = words;
  const array = state.md.find((m) => m.path === diskPath);
  if (array && !array.table) return `${diskPath} is an MD array with partitions, but no raiddisk line before them says its partition table (gpt or msdos)`;
  const disk = array ?? state.disks.find((d) => d.path === diskPath);
  if (!disk?.table || !size || !start || !partDev) return "partition of an unknown disk or missing fields";
  const flags = (flagsWord ?? "none").split(",");
  const gpt = disk.table.label === "gpt";
  const guess = gpt ? undefined : flags.find((f) => MSDOS_GUESSES.includes(f));
  if (guess) return `the msdos flag "${guess}" does not say the partition's type; give the layout with its type (capture.sh)`;
  // A multipath partition's number follows the disk's name (mpatha-part1, 3600…d8p1), which may end in digits itself.
  const number = "multipath" in disk && disk.multipath ? multipathPartitionNumber(diskPath!, partDev) : Number(/(\d+)$/.exec(partDev)?.[1]);
  if (number === null) return `${partDev} is not a partition of the multipath disk ${diskPath} (${diskPath}-part1, ${diskPath}p1, ${diskPath}_part1 or ${diskPath}1)`;
  const partition: Partition = {
    number,
    path: partDev,
    start: Math.round(Number(start) / 512),
    size: Math.round(Number(size) / 512),
    type: partitionType(gpt, flags, nameOrType),
    // ReaR master adds the partition's UUID as an 8th field.
    uuid: partUuid && UUID.test(partUuid) ? partUuid.toUpperCase() : null,
    name: gpt && nameOrType && nameOrType !== "rear-noname" ? unescape(nameOrType) : null,
    attrs: gpt && flags.includes("legacy_boot") ? "LegacyBIOSBootable" : null,
    bootable: !gpt && flags.includes("boot"),
  };
  disk.table.partitions.push(partition);
  return undefined;
}

function readRaid(words: string[], state: RearState, where: string): string | undefined {
  const options = kv(words.slice(2));
  if (options.level === "container" || options.container)
    return `${words[1]} is ${options.level === "container" ? "a firmware RAID container" : `an array inside the container ${options.container}`} (${options.metadata ?? "imsm/ddf"} metadata): Lifeboat recreates Linux MD arrays only`;
  for (const dev of (options.devices ?? "").split(",").filter(Boolean)) state.uses.push({ where, dev, what: `member of ${words[1]}` });
  state.md.push({
    path: words[1]!,
    name: options.name ?? null,
    level: options.level ?? "raid1",
    metadata: options.metadata ?? "1.2",
    uuid: options.uuid ?? "",
    members: (options.devices ?? "").split(",").filter(Boolean),
    sizeBytes: Number(options.size ?? 0) * 1024,
    table: null,
  });
  return undefined;
}

/** The crypt line's key for each LUKS format field of the layout. */
const CRYPT_KEYS = { type: "type", cipher: "cipher", keySizeBits: "key_size", hash: "hash" } as const;

function readCrypt(words: string[], state: RearState, where: string): string | undefined {
  // crypt /dev/mapper/NAME DEV type=luks1|luks2 cipher=ALGO-MODE key_size=BITS hash=HASH uuid=UUID [keyfile=…]
  // ReaR before 2.6 wrote LUKS1 only, as cipher=ALGO mode=MODE hash=HASH uuid=UUID.
  const options = kv(words.slice(3));
  const name = words[1]!.replace(/^\/dev\/mapper\//, "");
  const given = (key: string) => (options[key] ? options[key] : null);
  const keySize = given("key_size");
  if (keySize !== null && !/^\d{1,6}$/.test(keySize)) return `crypt ${name}: key_size=${keySize.slice(0, 40)} is not a key size in bits`;
  const format = {
    type: (given("type") ?? (given("mode") ? "luks1" : null)) as Luks["type"],
    cipher: given("mode") && given("cipher") ? `${options.cipher}-${options.mode}` : given("cipher"),
    keySizeBits: keySize === null ? null : Number(keySize),
    hash: given("hash"),
  };
  const problem = luksFormatProblem(format);
  if (problem) return `crypt ${name}: ${CRYPT_KEYS[problem[0]]}=: ${problem[1]}`;
  state.uses.push({ where, dev: words[2]!, what: `the LUKS device ${words[1]}` });
  state.luks.push({ path: words[2]!, uuid: options.uuid ?? "", name, ...format });
  return undefined;
}

function readLvmDevice(words: string[], state: RearState, where: string): undefined {
  state.uses.push({ where, dev: words[2]!, what: `a PV of ${devName(words[1]!)}` });
  state.lvm.pvs.push({ path: words[2]!, uuid: words[3] ?? "", vg: devName(words[1]!), sizeBytes: 0 });
  return undefined;
}

function readLvmGroup(words: string[], state: RearState): undefined {
  // lvmgrp /dev/VG EXTENTSIZE_KIB [EXTENTS] [SIZE]
  const extentBytes = Number(words[2]) * 1024;
  state.lvm.vgs.push({ name: devName(words[1]!), uuid: "", extentBytes, sizeBytes: Number(words[3] ?? 0) * extentBytes });
  return undefined;
}

function readLvmVolume(words: string[], state: RearState): string | undefined {
  // lvmvol /dev/VG NAME SIZEb LAYOUT [key:value...]; old ReaR: lvmvol /dev/VG NAME EXTENTS SECTORS.
  const vg = devName(words[1]!);
  const extentBytes = state.lvm.vgs.find((v) => v.name === vg)?.extentBytes ?? 4 * 1024 * 1024;
  const [, , name, size, layoutWord] = words as [string, string, string, string, string?];
  const old = !size.endsWith("b") && (layoutWord === undefined || /^\d+$/.test(layoutWord));
  const sizeBytes = old ? (layoutWord ? Number(layoutWord) * 512 : Number(size) * extentBytes) : Number(size.slice(0, -1));
  const layout = old ? "linear" : (layoutWord ?? "linear");
  const extra = words.slice(5).filter((x) => /^(thinpool|stripes|mirrors|origin):/.test(x) && !/^(stripes:1|mirrors:0)$/.test(x));
  if (!LV_LAYOUTS.has(layout) || extra.length) return `the LV ${vg}/${name} is ${[layout, ...extra].join(" ")}: Lifeboat creates linear LVs only`;
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) return `bad LV size "${size}"`;
  state.lvm.lvs.push({ vg, name, uuid: "", sizeBytes, path: `/dev/${vg}/${name}`, segtype: "linear" });
  return undefined;
}

function readFilesystem(words: string[], state: RearState, where: string): undefined {
  // fs DEV MOUNTPOINT TYPE key=value...
  const [, dev, mountpoint, type] = words as [string, string, string, string];
  state.uses.push({ where, dev, what: `the ${type} filesystem on ${mountpoint}` });
  const options = kv(words.slice(4));
  const mkfsOptions: string[] = [];
  if (/^ext[234]$/.test(type)) {
    if (options.blocksize) mkfsOptions.push("-b", options.blocksize);
    if (options.bytes_per_inode) mkfsOptions.push("-i", options.bytes_per_inode);
  }
  state.filesystems.push({ dev, type, uuid: options.uuid || null, label: options.label ? unescape(options.label) : null, sizeBytes: 0, usedBytes: null, mkfsOptions, subvolumes: [], defaultSubvolume: null, nocow: [] });
  state.mounts.push({ dev, mountpoint, fstype: type, options: "" });
  return undefined;
}

function readSwap(words: string[], state: RearState, where: string): undefined {
  state.uses.push({ where, dev: words[1]!, what: "swap" });
  const options = kv(words.slice(2));
  state.swap.push({ dev: words[1]!, uuid: options.uuid || null, label: options.label || null, sizeBytes: 0 });
  return undefined;
}

function addSubvolume(state: RearState, dev: string, path: string): void {
  state.subvols.set(dev, [...(state.subvols.get(dev) ?? []), path]);
}

function readMountedSubvolume(words: string[], state: RearState): string | undefined {
  // btrfsmountedsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH
  const [, dev, mountpoint, , path] = words as [string, string, string, string?, string?];
  if (!state.filesystems.some((f) => f.dev === dev && f.type === "btrfs")) return `${mountpoint} mounts a subvolume of ${dev}, which no "fs ... btrfs" line before it makes`;
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

function readDefaultSubvolume(words: string[], state: RearState): string | undefined {
  // btrfsdefaultsubvol DEV MOUNTPOINT ID PATH: the top level (id 5, "/") is what mkfs.btrfs leaves as the default;
  // any other (snapper's @/.snapshots/1/snapshot) is set by the plan, or the restored system boots the wrong tree.
  const [, dev, , id, path] = words as [string, string, string, string, string?];
  if (id === "5" || path === "/" || path === undefined) return undefined;
  if (!state.filesystems.some((f) => f.dev === dev && f.type === "btrfs")) return `the default subvolume ${path} is on ${dev}, which no "fs ... btrfs" line before it makes`;
  addSubvolume(state, dev, path.replace(/^\/+/, ""));
  state.defaults.set(dev, path.replace(/^\/+/, ""));
  return undefined;
}

function readNocow(words: string[], state: RearState, where: string): undefined {
  // btrfsnocopyonwrite SUBVOLPATH: names no device; matched to the btrfs filesystem holding that subvolume at the end.
  state.nocow.push({ where, path: words[1]!.replace(/^\/+/, "") });
  return undefined;
}

/** Each btrfsnocopyonwrite path on the one btrfs filesystem that has that subvolume. */
function placeNocow(state: RearState): string[] {
  return state.nocow.flatMap(({ where, path }) => {
    const on = state.filesystems.filter((f) => f.type === "btrfs" && state.subvols.get(f.dev)?.includes(path));
    if (on.length !== 1) return [`${where}: btrfsnocopyonwrite ${path}: ${on.length ? `subvolumes of that path are on ${on.map((f) => f.dev).join(" and ")}` : "no btrfs filesystem of the file has that subvolume"}`];
    const fs = on[0]!;
    if (!fs.nocow.includes(path)) fs.nocow.push(path);
    return [];
  });
}

/**
 * One reader per keyword read, with what it becomes (in the README's list, made from this and
 * REFUSED by rearKeywordsMarkdown); with REFUSED, the keywords known: anything else is refused as unknown.
 */
const READERS: Record<string, [LineReader, string]> = {
  disk: [readDisk, "a disk and its partition table (gpt, msdos); no serial: an import always needs a disk mapping; for an MD array, as raiddisk"],
  multipath: [
    readMultipath,
    "a multipath disk (ReaR 2.6 and later: NAME SIZE LABEL SLAVES; older lines refused) with its partitions (NAME-part1, NAMEp1, NAME_part1, NAME1), its WWID when the map is named by it; kept in the layout, but a plan refuses it unless it is mapped to none: the rescue image has no multipath tools, and a write through one path leaves the others stale",
  ],
  part: [readPartition, "a partition; parted flags become types (msdos prep/lba, GPT prep/msftdata/msftres/diag), the 8th field (ReaR master) is its UUID; also on an MD array after its raiddisk line; refused: the msdos flags hidden and diag (their type depends on the old one), partitions of an array with no raiddisk line saying its table"],
  raid: [readRaid, "an MD array; refused: firmware RAID containers (IMSM/DDF) and arrays in them"],
  // ReaR 2.7 and later write "raidarray"; the options are those of "raid".
  raidarray: [readRaid, "as raid (ReaR 2.7 and later)"],
  raiddisk: [
    readRaidDisk,
    "the array's size and partition table (gpt, msdos; ReaR 2.7 and later): the plan creates the array at that size (mdadm --size; raid1, raid4, raid5, raid6, raid10), then partitions it; a partitioned raid0 or linear array is refused by the plan",
  ],
  crypt: [readCrypt, "a LUKS container: UUID, version, cipher, key size and hash (the old cipher= mode= form as LUKS1), each from an allowlist"],
  lvmdev: [readLvmDevice, "an LVM PV"],
  lvmgrp: [readLvmGroup, "an LVM VG and its extent size"],
  lvmvol: [readLvmVolume, "a linear LV (the SIZEb LAYOUT and the old EXTENTS SECTORS forms); refused: thin, striped, raid and mirror LVs"],
  fs: [readFilesystem, "a filesystem (UUID, label, ext block size and bytes per inode) and its mount"],
  swap: [readSwap, "swap (UUID, label)"],
  btrfsmountedsubvol: [readMountedSubvolume, "a btrfs subvolume and its mount (subvol=)"],
  btrfsnormalsubvol: [readNormalSubvolume, "a btrfs subvolume"],
  btrfsdefaultsubvol: [readDefaultSubvolume, "the default subvolume, set by the plan (snapper's root)"],
  btrfsnocopyonwrite: [readNocow, "a no-copy-on-write subvolume, marked chattr +C by the plan"],
};

/** The README's list of ReaR keywords: one line per keyword read (what it becomes) and per keyword refused (why). */
export function rearKeywordsMarkdown(): string {
  const rows = [
    ...Object.entries(READERS).map(([keyword, [, note]]) => `- \`${keyword}\`: read: ${note}.`),
    ...Object.entries(REFUSED).map(([keyword, why]) => `- \`${keyword}\`: refused: ${why}.`),
  ];
  return rows.join("\n");
}

/** Every keyword the import knows, read or refused (the fuzz targets' words). */
export const REAR_KEYWORDS: readonly string[] = [...Object.keys(READERS), ...Object.keys(REFUSED)];

/** Reads every line; the first problem found is thrown, in one line. */
function readLines(text: string): RearState {
  const state: RearState = { disks: [], md: [], lvm: { pvs: [], vgs: [], lvs: [] }, luks: [], filesystems: [], swap: [], mounts: [], subvols: new Map(), defaults: new Map(), nocow: [], uses: [] };
  const problems: string[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const words = line.split(/\s+/);
    const keyword = words[0]!;
    const where = `disklayout.conf line ${index + 1}`;
    if (/^[\w-]+=/.test(keyword)) return void problems.push(`${where}: "${keyword.slice(0, 60)}" alone on a line: the end of a wrapped line? (each entry is one line)`);
    if (Object.hasOwn(REFUSED, keyword)) return void problems.push(`${where}: ${keyword}: ${REFUSED[keyword]}`);
    if (!Object.hasOwn(READERS, keyword)) return void problems.push(`${where}: unknown keyword "${keyword.slice(0, 40)}"`);
    const needs = Object.hasOwn(NEEDS, keyword) ? NEEDS[keyword] : undefined;
    if (needs && (words.length < needs[0] || words.length > (needs[2] ?? Infinity))) return void problems.push(`${where}: expected "${needs[1]}"`);
    const problem = READERS[keyword]![0](words, state, where);
    if (problem) problems.push(`${where}: ${problem}`);
  });
  if (!problems.length && state.disks.length === 0) problems.push("disklayout.conf: no disk or multipath line: not a ReaR disk layout (or every disk is excluded)");
  problems.push(...unmadeDevices(state), ...placeNocow(state));
  if (problems.length) throw new Error(problems[0]);
  return state;
}

/** What each line uses must be made by some line (a disk, partition, MD array, LUKS mapping or LV). */
function unmadeDevices(state: RearState): string[] {
  const made = new Set<string>([
    ...state.disks.map((d) => d.path),
    ...[...state.disks, ...state.md].flatMap((d) => d.table?.partitions.map((p) => p.path) ?? []),
    ...state.md.map((m) => m.path),
    ...state.luks.map((l) => `/dev/mapper/${l.name}`),
    ...state.lvm.lvs.flatMap((l) => [l.path, lvMapperPath(l.vg, l.name)]),
  ]);
  return state.uses.filter((u) => !made.has(u.dev)).map((u) => `${u.where}: ${u.dev} (${u.what}) is made by no line of the file`);
}

/** ReaR names LVs /dev/mapper/VG-LV, layouts /dev/VG/LV; sizes ReaR does not state are the device's. */
function canonicalise(state: RearState): void {
  const { lvm, filesystems, swap, mounts, luks, disks } = state;
  const canon = new Map(lvm.lvs.map((l) => [lvMapperPath(l.vg, l.name), l.path]));
  const canonical = (path: string) => canon.get(path) ?? path;
  for (const f of filesystems) {
    f.dev = canonical(f.dev);
    f.subvolumes = [...new Set(state.subvols.get(f.dev) ?? [])].sort();
    f.defaultSubvolume = state.defaults.get(f.dev) ?? null;
  }
  for (const s of swap) s.dev = canonical(s.dev);
  for (const m of mounts) m.dev = canonical(m.dev);
  for (const x of luks) x.path = canonical(x.path);
  const tables = [...disks, ...state.md].flatMap((d) => (d.table ? [d.table] : []));
  for (const t of tables) t.partitions.sort((a, b) => a.number - b.number);
  mounts.sort(byMountOrder);
  const sectorsOf = (dev: string) => tables.flatMap((t) => t.partitions).find((p) => p.path === dev)?.size ?? 0;
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
      boot: { firmware: esp ? "uefi" : "bios", loader: "grub", disk: null, efiDir: esp?.mountpoint ?? null, bootloaderId: null, efiEntries: null, shim: false, secureBoot: null },
      files: { fstab: null, crypttab: null },
      system: { kernel: null, initramfsTool: null, os: null, packages: null, nics: [] },
      dles: {},
    } satisfies DiskLayout,
    "disklayout.conf",
  );
}
