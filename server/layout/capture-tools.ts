import type { MdArray } from "./layout.ts";

/** Parsers of the text tools print, one per tool (blkid, dumpe2fs, xfs_info, mdadm, os-release, fstab, Amanda's gnutar-lists). */

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

export const num = (v: number | string | null | undefined): number | null => {
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
    // capture.sh's sfdisk -J of the array, added by layout-capture.ts.
    table: null,
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
  // HOST + sanitised disk + "_" + level: a host name has no '_', so the sanitised disk runs
  // from the first '_' to the last (the level is digits only).
  const sanitisedDisks = new Set<string>();
  for (const name of (files ?? "").split("\n")) {
    const match = /^[^_]+(_.*)_\d+$/.exec(name.trim());
    if (match) sanitisedDisks.add(match[1]!);
  }
  const out: Record<string, string> = {};
  for (const mp of mountpoints) if (sanitisedDisks.has(amandaSanitise(mp))) out[mp] = mp;
  return out;
}
