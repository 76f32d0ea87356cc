/**
 * Reading Amanda media on disk: vtape slot directories (chg-disk: `slotN/00000.<label>`,
 * `NNNNN.<host>.<disk>.<level>` per tape file) and holding-disk directories
 * (`<datestamp>/<host>.<disk>.<level>[.N]`). Only headers are read here: 32 KiB per file.
 */
import { closeSync, openSync, readSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { type AmandaHeader, type DumpHeader, HEADER_SIZE, HeaderError, parseHeader } from "./header.ts";

/** Reads and parses the header at the start of `path`. */
export function readHeader(path: string): AmandaHeader {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(HEADER_SIZE);
    let n = 0;
    while (n < HEADER_SIZE) {
      const r = readSync(fd, buf, n, HEADER_SIZE - n, n);
      if (r === 0) break;
      n += r;
    }
    return parseHeader(buf.subarray(0, n), path);
  } finally {
    closeSync(fd);
  }
}

export interface VtapeSlot {
  slot: number | null;
  dir: string;
  label: string | null;
  /** TAPESTART datestamp ("X" when labelled but never written). */
  datestamp: string | null;
  /** tape file number → file name */
  files: Map<number, string>;
}

export interface MediaProblem {
  path: string;
  message: string;
}

/** One line per problem, naming the file once. */
export function problemText(p: MediaProblem): string {
  return p.message.startsWith(p.path) ? p.message : `${p.path}: ${p.message}`;
}

/** The slots under a chg-disk root (or the root itself if it is a slot dir): labels and file lists. */
export function listVtapeSlots(root: string, problems: MediaProblem[] = []): VtapeSlot[] {
  const dirs = isSlotDir(root) ? [root] : subdirs(root).filter(isSlotDir);
  return dirs.map((dir) => readSlot(dir, problems)).sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0));
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory()) // symlinks such as `data -> slot2` are skipped
      .map((e) => join(dir, e.name))
      .sort();
  } catch {
    return [];
  }
}

function isSlotDir(dir: string): boolean {
  if (/\/slot\d+\/?$/.test(dir)) return true;
  try {
    return readdirSync(dir).some((n) => /^\d{5}\./.test(n));
  } catch {
    return false;
  }
}

function readSlot(dir: string, problems: MediaProblem[]): VtapeSlot {
  const files = new Map<number, string>();
  for (const n of readdirSync(dir)) {
    const m = /^(\d{5})\./.exec(n);
    if (m) files.set(Number(m[1]), n);
  }
  const slot: VtapeSlot = { slot: slotNumber(dir), dir, label: null, datestamp: null, files };
  const f0 = files.get(0);
  if (f0) {
    try {
      const h = readHeader(join(dir, f0));
      if (h.type === "TAPESTART") {
        slot.label = h.label;
        slot.datestamp = h.datestamp;
      } else problems.push({ path: join(dir, f0), message: `file 0 is a ${h.type} header, expected TAPESTART` });
    } catch (err) {
      problems.push({ path: join(dir, f0), message: (err as Error).message });
    }
  }
  return slot;
}

function slotNumber(dir: string): number | null {
  const m = /slot(\d+)\/?$/.exec(dir);
  return m ? Number(m[1]) : null;
}

export interface ScannedPart {
  header: DumpHeader;
  label: string;
  fileNo: number;
  slot: number | null;
  slotDir: string;
  path: string;
  sizeBytes: number;
}

export interface ScannedHolding {
  header: DumpHeader;
  /** First chunk, then each CONT_FILENAME in turn. */
  chunks: Array<{ path: string; sizeBytes: number }>;
  /** Set when the chain of chunks breaks. */
  problem: string | null;
}

export interface MediaScan {
  slots: VtapeSlot[];
  parts: ScannedPart[];
  holding: ScannedHolding[];
  problems: MediaProblem[];
}

/**
 * Scans directories for Amanda media: vtape roots or slot dirs, holding roots or
 * holding datestamp dirs, or any directory above them (three levels deep). Unreadable or
 * foreign files are reported in `problems`, never fatal.
 */
export function scanMedia(dirs: string[], onProgress?: (msg: string) => void): MediaScan {
  const scan: MediaScan = { slots: [], parts: [], holding: [], problems: [] };
  const seen = new Set<string>();
  const visit = (dir: string, depth: number) => {
    if (seen.has(dir)) return;
    seen.add(dir);
    if (isSlotDir(dir)) {
      scanSlot(readSlot(dir, scan.problems), scan);
      onProgress?.(`scanned ${dir}`);
      return;
    }
    if (isHoldingDatestampDir(dir)) {
      scanHoldingDir(dir, scan);
      onProgress?.(`scanned ${dir}`);
      return;
    }
    if (depth >= 3) return;
    for (const d of subdirs(dir)) visit(d, depth + 1);
  };
  for (const d of dirs) {
    try {
      if (!statSync(d).isDirectory()) throw new Error("not a directory");
    } catch (err) {
      scan.problems.push({ path: d, message: `cannot scan: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      continue;
    }
    visit(d.replace(/\/+$/, "") || "/", 0);
  }
  return scan;
}

function isHoldingDatestampDir(dir: string): boolean {
  return /^\d{8}(\d{6})?$/.test(basename(dir));
}

function scanSlot(slot: VtapeSlot, scan: MediaScan): void {
  scan.slots.push(slot);
  for (const [fileNo, name] of [...slot.files].sort((a, b) => a[0] - b[0])) {
    if (fileNo === 0) continue;
    const path = join(slot.dir, name);
    if (!slot.label) {
      scan.problems.push({ path, message: "vtape file in a slot without a TAPESTART label (file 0)" });
      continue;
    }
    try {
      const h = readHeader(path);
      if (h.type === "TAPEEND") continue;
      if (h.type !== "SPLIT_FILE" && h.type !== "FILE") {
        scan.problems.push({ path, message: `a ${h.type} header where a dump file was expected` });
        continue;
      }
      scan.parts.push({
        header: h,
        label: slot.label,
        fileNo,
        slot: slot.slot,
        slotDir: slot.dir,
        path,
        sizeBytes: statSync(path).size - HEADER_SIZE,
      });
    } catch (err) {
      scan.problems.push({ path, message: (err as Error).message });
    }
  }
}

/** Holding files: a FILE header starts a dump, CONT_FILE headers continue it. */
function scanHoldingDir(dir: string, scan: MediaScan): void {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    scan.problems.push({ path: dir, message: `cannot list: ${(err as NodeJS.ErrnoException).code}` });
    return;
  }
  for (const n of names) {
    // `.tmp` files are still being written; `pid` marks a running dump
    if (n.endsWith(".tmp") || n === "pid") continue;
    const path = join(dir, n);
    let h: AmandaHeader;
    try {
      h = readHeader(path);
    } catch (err) {
      scan.problems.push({ path, message: (err as Error).message });
      continue;
    }
    if (h.type !== "FILE") continue; // CONT_FILE chunks are reached from their first chunk
    scan.holding.push(followChunks(path, h));
  }
}

/** Follows CONT_FILENAME from a first chunk. Names are looked up beside the first chunk when the absolute path is stale. */
export function followChunks(first: string, h: DumpHeader): ScannedHolding {
  const out: ScannedHolding = { header: h, chunks: [{ path: first, sizeBytes: statSync(first).size - HEADER_SIZE }], problem: null };
  let next = h.contFilename;
  const seen = new Set([first]);
  while (next) {
    let path = next;
    try {
      statSync(path);
    } catch {
      path = join(dirname(first), basename(next));
    }
    if (seen.has(path)) {
      out.problem = `holding chunk ${path} loops back`;
      break;
    }
    seen.add(path);
    let ch: AmandaHeader;
    try {
      ch = readHeader(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      out.problem = code === "ENOENT" ? `holding chunk ${basename(next)} is missing (named in ${out.chunks.at(-1)!.path})` : (err as Error).message;
      break;
    }
    if (ch.type !== "CONT_FILE" || ch.host !== h.host || ch.disk !== h.disk || ch.datestamp !== h.datestamp || ch.level !== h.level) {
      out.problem = `${path}: expected a CONT_FILE header of the same dump, found ${ch.type}`;
      break;
    }
    out.chunks.push({ path, sizeBytes: statSync(path).size - HEADER_SIZE });
    next = ch.contFilename;
  }
  return out;
}

/** Throws a HeaderError unless the header at `path` is the expected piece of the dump. */
export function expectPiece(
  path: string,
  want: { host: string; disk: string; datestamp: string; level: number; partNo?: number },
  h: AmandaHeader,
): DumpHeader {
  if (h.type !== "FILE" && h.type !== "SPLIT_FILE" && h.type !== "CONT_FILE")
    throw new HeaderError(path, 0, `a ${h.type} header where a dump file was expected`);
  if (h.host !== want.host || h.disk !== want.disk || h.datestamp !== want.datestamp || h.level !== want.level)
    throw new HeaderError(path, 0, `holds ${h.host}:${h.disk} L${h.level} ${h.datestamp}, expected ${want.host}:${want.disk} L${want.level} ${want.datestamp} (volume overwritten?)`);
  if (want.partNo !== undefined && h.type === "SPLIT_FILE" && h.partNo !== want.partNo)
    throw new HeaderError(path, 0, `is part ${h.partNo}, expected part ${want.partNo}`);
  return h;
}
