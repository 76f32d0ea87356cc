import { z } from "zod";
import { type DiskLayout, type Disk, type Filesystem, type Luks, type Lvm, type MdArray, type Mount, type Partition, type Swap, byMountOrder, formatZodIssue, lvMapperPath, parseLayout, removableOrUsb } from "./layout.ts";

/**
 * The document capture.sh uploads: raw tool output (lsblk -J, sfdisk -J, blkid -p -o export,
 * findmnt -J, LVM JSON reports, dumpe2fs/xfs_info/mdadm text), parsed here into a
 * DiskLayout. Unknown keys are ignored so an older server accepts a newer script.
 */

/** capture.sh, beside its parser: served at GET /capture.sh and printed by `lifeboat capture script`. */
export const captureScriptPath = new URL("./capture.sh", import.meta.url);

const text = z.string().nullable().default(null);

interface LsblkNode {
  name: string;
  kname?: string;
  path?: string;
  type: string;
  size: number | string | null;
  model?: string | null;
  serial?: string | null;
  wwn?: string | null;
  tran?: string | null;
  rm?: boolean | number | string | null;
  "log-sec"?: number | string | null;
  "phy-sec"?: number | string | null;
  children?: LsblkNode[];
}
const lsblkNode: z.ZodType<LsblkNode> = z.lazy(() =>
  z.looseObject({
    name: z.string(),
    kname: z.string().optional(),
    path: z.string().optional(),
    type: z.string(),
    size: z.union([z.number(), z.string()]).nullable(),
    model: z.string().nullable().optional(),
    serial: z.string().nullable().optional(),
    wwn: z.string().nullable().optional(),
    tran: z.string().nullable().optional(),
    // lsblk -J: true/false; older util-linux: "0"/"1".
    rm: z.union([z.boolean(), z.number(), z.string()]).nullable().optional(),
    "log-sec": z.union([z.number(), z.string()]).nullable().optional(),
    "phy-sec": z.union([z.number(), z.string()]).nullable().optional(),
    children: z.array(lsblkNode).optional(),
  }),
);

const sfdiskPartition = z.looseObject({
  node: z.string(),
  start: z.number().int(),
  size: z.number().int(),
  type: z.string(),
  uuid: z.string().optional(),
  name: z.string().optional(),
  attrs: z.string().optional(),
  bootable: z.boolean().optional(),
});
const sfdiskTable = z.object({
  partitiontable: z.looseObject({
    label: z.string(),
    id: z.string(),
    device: z.string(),
    unit: z.string(),
    firstlba: z.number().int().optional(),
    lastlba: z.number().int().optional(),
    sectorsize: z.number().int().optional(),
    partitions: z.array(sfdiskPartition).default([]),
  }),
});

interface FindmntNode {
  source: string;
  target: string;
  fstype: string;
  options?: string;
  used?: number | string | null;
  size?: number | string | null;
  fsroot?: string | null;
  children?: FindmntNode[];
}
const findmntNode: z.ZodType<FindmntNode> = z.lazy(() =>
  z.looseObject({
    source: z.string(),
    target: z.string(),
    fstype: z.string(),
    options: z.string().optional(),
    used: z.union([z.number(), z.string()]).nullable().optional(),
    size: z.union([z.number(), z.string()]).nullable().optional(),
    fsroot: z.string().nullable().optional(),
    children: z.array(findmntNode).optional(),
  }),
);

const lvmReport = <T extends z.ZodRawShape>(key: "pv" | "vg" | "lv", row: T) =>
  z.object({ report: z.array(z.object({ [key]: z.array(z.looseObject(row)) })) }).nullable().default(null);

export const captureSchema = z.looseObject({
  format: z.literal("lifeboat-capture/1"),
  capturedAt: z.string(),
  hostname: z.string(),
  devicesFilter: z.array(z.string()).nullable().default(null),
  /** capture.sh --include-removable: removable and USB disks were captured on purpose. */
  includeRemovable: z.boolean().default(false),
  lsblk: z.object({ blockdevices: z.array(lsblkNode) }),
  byId: text,
  partitionTables: z.array(z.object({ disk: z.string(), sfdisk: sfdiskTable.nullable() })),
  probes: z.array(
    z.looseObject({
      dev: z.string(),
      blkid: text,
      sizeBytes: z.number().int().nullable().default(null),
      dumpe2fs: text.optional(),
      xfsInfo: text.optional(),
      mdadm: text.optional(),
    }),
  ),
  mounts: z.object({ filesystems: z.array(findmntNode) }).nullable().default(null),
  btrfs: z.array(z.object({ mountpoint: z.string(), source: z.string(), subvolumes: text })).default([]),
  lvm: z
    .object({
      pvs: lvmReport("pv", { pv_name: z.string(), pv_uuid: z.string(), vg_name: z.string(), pv_size: z.string() }),
      vgs: lvmReport("vg", { vg_name: z.string(), vg_uuid: z.string(), vg_extent_size: z.string(), vg_size: z.string() }),
      lvs: lvmReport("lv", { lv_name: z.string(), vg_name: z.string(), lv_uuid: z.string(), lv_size: z.string(), segtype: z.string() }),
    })
    .default({ pvs: null, vgs: null, lvs: null }),
  files: z.record(z.string(), z.string().nullable()).default({}),
  firmware: z.enum(["bios", "uefi"]),
  efibootmgr: text,
  efiDirs: text,
  bootCode: z.array(z.object({ disk: z.string(), grub: z.boolean() })).default([]),
  bootloaders: text,
  kernel: text,
  initramfsTool: z.enum(["update-initramfs", "dracut", "mkinitcpio"]).nullable().default(null),
  packages: z.object({ manager: z.enum(["dpkg", "rpm"]), list: text }).nullable().default(null),
  nics: z.array(z.object({ name: z.string(), mac: z.string(), physical: z.boolean().default(true) })).default([]),
  dles: text,
  /** `ls /var/lib/amanda/gnutar-lists`: Amanda's GNU tar listed-incremental files, one per DLE and level. */
  amandaGnutarLists: text,
});
export type Capture = z.infer<typeof captureSchema>;

/** Validates an uploaded capture; throws one line naming the first bad key. */
export function parseCapture(doc: unknown): Capture {
  const r = captureSchema.safeParse(doc);
  if (!r.success) throw new Error(`capture document: ${formatZodIssue(r.error)}`);
  return r.data;
}

/** `blkid -o export` lines: KEY=value with \-escapes for shell-special characters. */
export function parseBlkidExport(s: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (s ?? "").split("\n")) {
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    out[line.slice(0, eq)] = line.slice(eq + 1).replace(/\\(.)/g, "$1");
  }
  return out;
}

/** "Key:   value" lines (dumpe2fs -h, mdadm --detail). */
function colonFields(s: string | null | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of (s ?? "").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0 && !m.has(line.slice(0, i).trim())) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}

const num = (v: number | string | null | undefined): number | null => {
  if (v === null || v === undefined || v === "") return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
};

/** ext features whose presence or absence matters (old GRUB, old kernels); all mke2fs know them. */
export const EXT_FEATURES_PINNED = ["has_journal", "extent", "64bit", "metadata_csum", "flex_bg", "huge_file", "dir_nlink", "extra_isize"];
/** Newer features: passed only when present (an older mke2fs would refuse even ^name). */
export const EXT_FEATURES_IF_PRESENT = ["metadata_csum_seed", "orphan_file", "inline_data", "quota", "project", "encrypt", "casefold", "large_dir", "sparse_super2", "bigalloc"];

/** mkfs.ext* arguments and used bytes from `dumpe2fs -h`. */
export function extFromDumpe2fs(s: string): { options: string[]; usedBytes: number | null; sizeBytes: number | null } {
  const f = colonFields(s);
  const features = new Set((f.get("Filesystem features") ?? "").split(/\s+/).filter(Boolean));
  const bs = num(f.get("Block size"));
  const blocks = num(f.get("Block count"));
  const free = num(f.get("Free blocks"));
  const overhead = num(f.get("Overhead clusters")) ?? 0;
  const inodes = num(f.get("Inode count"));
  const isize = num(f.get("Inode size"));
  const opts = [
    ...EXT_FEATURES_PINNED.filter((x) => features.has(x)),
    ...EXT_FEATURES_IF_PRESENT.filter((x) => features.has(x)),
    ...EXT_FEATURES_PINNED.filter((x) => !features.has(x)).map((x) => `^${x}`),
  ];
  const options = ["-O", opts.join(",")];
  if (bs) options.push("-b", String(bs));
  if (isize) options.push("-I", String(isize));
  if (bs && blocks && inodes) options.push("-i", String(Math.max(1024, Math.round((bs * blocks) / inodes))));
  const usedBytes = bs && blocks !== null && free !== null ? Math.max(0, blocks - free - overhead) * bs : null;
  return { options, usedBytes, sizeBytes: bs && blocks ? bs * blocks : null };
}

export const XFS_META = ["crc", "finobt", "sparse", "rmapbt", "reflink", "bigtime", "inobtcount"];

/** mkfs.xfs arguments and size from `xfs_info`. */
export function xfsFromInfo(s: string): { options: string[]; sizeBytes: number | null } {
  const kv = new Map<string, string>();
  // xfs_info prints "section =name key=value key=value" lines; "bsize" appears in several.
  for (const line of s.split("\n")) {
    const section = /^(\w+)?\s*=/.exec(line)?.[1] ?? "";
    for (const m of line.matchAll(/(\w+)=([^\s,]+)/g)) kv.set(`${section || "?"}.${m[1]}`, m[2]!);
  }
  const get = (k: string) => {
    for (const [key, v] of kv) if (key.endsWith(`.${k}`)) return v;
    return undefined;
  };
  const options: string[] = [];
  const crc = get("crc");
  if (crc === "0") options.push("-m", "crc=0");
  else {
    const meta = XFS_META.map((k) => [k, get(k)] as const).filter(([, v]) => v === "0" || v === "1");
    if (meta.length) options.push("-m", meta.map(([k, v]) => `${k}=${v}`).filter((x) => !x.startsWith("sparse")).join(","));
    const sparse = get("sparse");
    if (sparse === "0" || sparse === "1") options.push("-i", `sparse=${sparse}`);
  }
  const isize = kv.get("meta-data.isize") ?? get("isize");
  if (isize) options.push("-i", `size=${isize}`);
  const dataBsize = kv.get("data.bsize");
  const dataBlocks = kv.get("data.blocks");
  if (dataBsize) options.push("-b", `size=${dataBsize}`);
  return { options, sizeBytes: dataBsize && dataBlocks ? Number(dataBsize) * Number(dataBlocks) : null };
}

/** MD array facts from `mdadm --detail`. */
export function mdFromDetail(path: string, s: string): MdArray {
  const f = colonFields(s);
  const members: string[] = [];
  for (const line of s.split("\n")) {
    const m = /^\s+\d+\s+\d+\s+\d+\s+\d+\s+.*?(\/dev\/\S+)\s*$/.exec(line);
    if (m) members.push(m[1]!);
  }
  const name = f.get("Name")?.split(/\s+/)[0] ?? null;
  return {
    path,
    name,
    level: f.get("Raid Level") ?? "raid1",
    metadata: f.get("Version") ?? "1.2",
    uuid: f.get("UUID") ?? "",
    members,
    sizeBytes: (num(f.get("Array Size")?.split(/\s+/)[0]) ?? 0) * 1024,
  };
}

/** os-release KEY=value (optionally quoted). */
export function parseOsRelease(s: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (s ?? "").split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, "$2");
  }
  return out;
}

/** fstab lines: spec, file, vfstype, options (comments and blanks skipped). */
export function parseFstab(s: string | null): Array<{ spec: string; file: string; type: string; options: string }> {
  return (s ?? "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.split(/\s+/))
    .filter((f) => f.length >= 3)
    .map(([spec, file, type, options]) => ({ spec: spec!, file: file!.replace(/\\040/g, " "), type: type!, options: options ?? "defaults" }));
}

/** Amanda's sanitise_filename: '_' doubled, '/' → '_'. */
const amandaSanitise = (disk: string) => disk.replace(/_/g, "__").replace(/\//g, "_");

/**
 * DLEs named by their mount point, found from Amanda's GNU tar state files on the client
 * (HOST + sanitised disk + "_" + level, e.g. web1_home_0 for "/home"). Only DLEs whose name
 * is a mounted mount point are recognised; others need `--dle` or the admin's DLE map.
 */
export function dlesFromGnutarLists(files: string | null, mountpoints: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const names = (files ?? "").split("\n").map((f) => f.trim()).filter(Boolean);
  for (const mp of mountpoints) {
    // A host name has no '_', so the sanitised disk starts at the first one.
    const re = new RegExp(`^[^_]+${amandaSanitise(mp).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}_\\d+$`);
    if (names.some((n) => re.test(n))) out[mp] = mp;
  }
  return out;
}

function flatten<T extends { children?: T[] }>(nodes: T[]): T[] {
  return nodes.flatMap((n) => [n, ...flatten(n.children ?? [])]);
}

/** Turns a capture into the typed layout. Pure: everything comes from the document. */
export function layoutFromCapture(cap: Capture, dleHint: Record<string, string> = {}): DiskLayout {
  const isRemovable = (n: LsblkNode) => n.rm === true || n.rm === 1 || n.rm === "1";
  // Removable and USB disks (a backup disk, a stick) and all on them are left out unless captured on purpose.
  const captured = cap.lsblk.blockdevices.filter((n) => cap.includeRemovable || !removableOrUsb(isRemovable(n), n.tran ?? null));
  const nodes = flatten(captured);
  const devPath = (n: LsblkNode) => n.path ?? (n.name.startsWith("/") ? n.name : `/dev/${n.name}`);
  const probes = new Map(cap.probes.map((p) => [p.dev, { ...p, id: parseBlkidExport(p.blkid) }]));

  // LVM first: LV device names in lsblk/findmnt (/dev/mapper/vg-lv) become /dev/VG/LV.
  const rows = <T>(r: { report: Array<Record<string, T[]>> } | null, key: string): T[] => r?.report.flatMap((x) => x[key] ?? []) ?? [];
  const lvm: Lvm = {
    pvs: rows(cap.lvm.pvs, "pv")
      .filter((p) => p.vg_name)
      .map((p) => ({ path: p.pv_name, uuid: p.pv_uuid, vg: p.vg_name, sizeBytes: Number(p.pv_size) })),
    vgs: rows(cap.lvm.vgs, "vg").map((v) => ({ name: v.vg_name, uuid: v.vg_uuid, extentBytes: Number(v.vg_extent_size), sizeBytes: Number(v.vg_size) })),
    lvs: rows(cap.lvm.lvs, "lv").map((l) => ({
      vg: l.vg_name,
      name: l.lv_name,
      uuid: l.lv_uuid,
      sizeBytes: Number(l.lv_size),
      path: `/dev/${l.vg_name}/${l.lv_name}`,
      segtype: l.segtype,
    })),
  };
  const canonical = new Map<string, string>();
  for (const lv of lvm.lvs) canonical.set(lvMapperPath(lv.vg, lv.name), lv.path);
  const canon = (p: string) => canonical.get(p) ?? p;

  // Only the captured devices count (capture --devices limits them): keep PVs/VGs/LVs built on them.
  const known = new Set(nodes.map((n) => canon(devPath(n))));
  lvm.pvs = lvm.pvs.filter((p) => known.has(p.path));
  const vgNames = new Set(lvm.pvs.map((p) => p.vg));
  lvm.vgs = lvm.vgs.filter((v) => vgNames.has(v.name));
  lvm.lvs = lvm.lvs.filter((l) => vgNames.has(l.vg));

  const byIdLinks = (cap.byId ?? "")
    .split("\n")
    .map((l) => l.trim().split(" "))
    .filter((x) => x.length === 2) as Array<[string, string]>;

  const tables = new Map(cap.partitionTables.map((t) => [t.disk, t.sfdisk?.partitiontable ?? null]));
  const wholeDisks = captured.filter((n) => n.type === "disk" || (n.type === "loop" && cap.devicesFilter?.includes(devPath(n))));
  const disks: Disk[] = wholeDisks.map((n) => {
    const path = devPath(n);
    const t = tables.get(path) ?? null;
    const probe = probes.get(path);
    return {
      name: n.kname ?? n.name.replace(/^\/dev\//, ""),
      path,
      sizeBytes: num(n.size) ?? probe?.sizeBytes ?? 0,
      model: n.model?.trim() || null,
      serial: n.serial?.trim() || null,
      wwn: n.wwn?.trim() || null,
      transport: n.tran ?? null,
      logicalSectorSize: num(n["log-sec"]) ?? t?.sectorsize ?? 512,
      physicalSectorSize: num(n["phy-sec"]) ?? 512,
      byId: byIdLinks.filter(([, target]) => target === path).map(([link]) => link),
      removable: isRemovable(n),
      table:
        t && (t.label === "gpt" || t.label === "dos")
          ? {
              label: t.label,
              id: t.id,
              sectorSize: t.sectorsize ?? 512,
              firstLba: t.firstlba ?? null,
              lastLba: t.lastlba ?? null,
              partitions: t.partitions.map(
                (p, i): Partition => ({
                  number: Number(/(\d+)$/.exec(p.node)?.[1] ?? i + 1),
                  path: p.node,
                  start: p.start,
                  size: p.size,
                  type: p.type.toUpperCase(),
                  uuid: p.uuid ?? null,
                  name: p.name ?? null,
                  attrs: p.attrs ?? null,
                  bootable: p.bootable === true,
                }),
              ),
            }
          : null,
    };
  });

  const md: MdArray[] = cap.probes.filter((p) => p.mdadm).map((p) => mdFromDetail(p.dev, p.mdadm!));

  // Mounts: the live ones (findmnt), then fstab entries for filesystems not mounted now.
  const live = flatten(cap.mounts?.filesystems ?? []);

  const luks: Luks[] = [];
  const filesystems: Filesystem[] = [];
  const swap: Swap[] = [];
  const crypttab = parseFstab(cap.files["/etc/crypttab"] ?? null);
  for (const n of nodes) {
    const path = canon(devPath(n));
    const probe = probes.get(devPath(n));
    if (!probe || filesystems.some((f) => f.dev === path) || swap.some((s) => s.dev === path) || luks.some((l) => l.path === path)) continue;
    const id = probe.id;
    const size = probe.sizeBytes ?? num(n.size) ?? 0;
    if (id.TYPE === "crypto_LUKS" && id.UUID) {
      const opened = n.children?.find((c) => c.type === "crypt");
      const fromTab = crypttab.find((c) => c.file === `UUID=${id.UUID}` || c.file === path);
      const name = opened ? devPath(opened).replace(/^\/dev\/mapper\//, "") : (fromTab?.spec ?? `luks-${id.UUID}`);
      luks.push({ path, uuid: id.UUID, name });
    } else if (id.TYPE === "swap") {
      swap.push({ dev: path, uuid: id.UUID ?? null, label: id.LABEL ?? null, sizeBytes: size });
    } else if (id.USAGE === "filesystem" && id.TYPE) {
      const mounted = live.find((m) => canon(m.source.replace(/\[.*$/, "")) === path);
      let options: string[] = [];
      let usedBytes = num(mounted?.used);
      let sizeBytes = num(mounted?.size) ?? size;
      if (/^ext[234]$/.test(id.TYPE) && probe.dumpe2fs) {
        const e = extFromDumpe2fs(probe.dumpe2fs);
        options = e.options;
        usedBytes ??= e.usedBytes;
        sizeBytes = e.sizeBytes ?? sizeBytes;
      } else if (id.TYPE === "xfs" && probe.xfsInfo) {
        const x = xfsFromInfo(probe.xfsInfo);
        options = x.options;
        sizeBytes = x.sizeBytes ?? sizeBytes;
      } else if (id.TYPE === "vfat" && /^FAT(12|16|32)$/.test(id.VERSION ?? "")) {
        options = ["-F", id.VERSION!.slice(3)];
      }
      const subvolumes =
        id.TYPE === "btrfs"
          ? (cap.btrfs.find((b) => canon(b.source) === path)?.subvolumes ?? "")
              .split("\n")
              .map((l) => /\bpath (?:<FS_TREE>\/)?(.+)$/.exec(l)?.[1])
              .filter((x): x is string => !!x)
              .sort()
          : [];
      filesystems.push({ dev: path, type: id.TYPE, uuid: id.UUID ?? null, label: id.LABEL ?? null, sizeBytes, usedBytes, mkfsOptions: options, subvolumes });
    }
  }

  const mounts: Mount[] = [];
  const addMount = (dev: string, mountpoint: string, fstype: string, options: string) => {
    if (!mounts.some((m) => m.mountpoint === mountpoint)) mounts.push({ dev, mountpoint, fstype, options });
  };
  const subvolOption = (opts: string) =>
    opts
      .split(",")
      .filter((o) => o.startsWith("subvol="))
      .map((o) => o.replace(/^subvol=\/?/, "subvol="))
      .join(",");
  for (const m of live) {
    const dev = canon(m.source.replace(/\[.*$/, ""));
    const fs = filesystems.find((f) => f.dev === dev);
    if (fs) addMount(dev, m.target, fs.type, fs.type === "btrfs" ? subvolOption(m.options ?? "") : "");
  }
  const resolveSpec = (spec: string): string | undefined => {
    const [k, v] = spec.includes("=") ? [spec.slice(0, spec.indexOf("=")), spec.slice(spec.indexOf("=") + 1)] : ["", spec];
    const match = (f: { dev: string; uuid: string | null; label: string | null }) =>
      (k === "UUID" && f.uuid === v) || (k === "LABEL" && f.label === v) || (k === "" && canon(v) === f.dev);
    return filesystems.find(match)?.dev;
  };
  for (const e of parseFstab(cap.files["/etc/fstab"] ?? null)) {
    if (!e.file.startsWith("/") || e.options.split(",").includes("noauto")) continue;
    const dev = resolveSpec(e.spec);
    const fs = filesystems.find((f) => f.dev === dev);
    if (fs) addMount(fs.dev, e.file, fs.type, fs.type === "btrfs" ? subvolOption(e.options) : "");
  }
  mounts.sort(byMountOrder);

  // Boot: the loader on the EFI system partition (uefi) or in a disk's first sector (bios).
  const loaders = (cap.bootloaders ?? "").split("\n").filter(Boolean);
  const efiDirs = (cap.efiDirs ?? "").split("\n").filter(Boolean);
  const espMount = mounts.find((m) => m.mountpoint === "/boot/efi" || m.mountpoint === "/efi");
  const diskOf = (dev: string) => disks.find((d) => d.table?.partitions.some((p) => p.path === dev))?.path ?? null;
  const os = parseOsRelease(cap.files["/etc/os-release"] ?? null);
  const loader = loaders.some((l) => l.startsWith("grub")) ? "grub" : loaders.includes("bootctl") && cap.firmware === "uefi" ? "systemd-boot" : null;
  const bootDisk =
    cap.firmware === "uefi" ? (espMount ? diskOf(espMount.dev) : null) : (cap.bootCode.find((b) => b.grub)?.disk ?? null);
  const bootloaderId =
    cap.firmware === "uefi"
      ? (efiDirs.map((d) => d.split("/").pop()!).find((d) => d.toUpperCase() !== "BOOT" && d !== "Linux") ?? os.ID ?? null)
      : null;

  // Amanda's own state files first, then what the host was told (--dle), then the admin's map.
  const dles: Record<string, string> = { ...dlesFromGnutarLists(cap.amandaGnutarLists, mounts.map((m) => m.mountpoint)), ...dleHint };
  for (const line of (cap.dles ?? "").split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) dles[line.slice(0, i)] = line.slice(i + 1);
  }

  return parseLayout({
    format: "lifeboat-layout/1",
    source: "capture",
    hostname: cap.hostname,
    capturedAt: cap.capturedAt,
    disks,
    md,
    lvm,
    luks,
    filesystems,
    swap,
    mounts,
    boot: {
      firmware: cap.firmware,
      loader,
      disk: bootDisk,
      efiDir: cap.firmware === "uefi" ? (espMount?.mountpoint ?? null) : null,
      bootloaderId,
      efiEntries: cap.efibootmgr,
    },
    files: { fstab: cap.files["/etc/fstab"] ?? null, crypttab: cap.files["/etc/crypttab"] ?? null },
    system: {
      kernel: cap.kernel,
      initramfsTool: cap.initramfsTool,
      os: Object.keys(os).length ? { id: os.ID ?? null, versionId: os.VERSION_ID ?? null, prettyName: os.PRETTY_NAME ?? null } : null,
      packages: cap.packages
        ? {
            manager: cap.packages.manager,
            list: (cap.packages.list ?? "")
              .split("\n")
              .filter(Boolean)
              .map((l) => {
                const [name, version] = l.split("\t");
                return [name!, version ?? ""] as [string, string];
              }),
          }
        : null,
      nics: cap.nics.filter((n) => n.physical).map((n) => ({ name: n.name, mac: n.mac })),
    },
    dles,
  } satisfies DiskLayout, `capture of ${cap.hostname}`);
}
