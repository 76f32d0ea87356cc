/**
 * Reading Amanda media on disk: vtape slot directories (chg-disk: `slotN/00000.<label>`,
 * `NNNNN.<host>.<disk>.<level>` per tape file) and holding-disk directories
 * (`<datestamp>/<host>.<disk>.<level>[.N]`). Only headers are read here: 32 KiB per file.
 *
 * Scans run in `serve` (the hourly refresh, `POST /api/v1/catalog/refresh`) on the event loop
 * that also answers DHCP, TFTP and every dump stream, over media that may sit on NFS: every
 * read is asynchronous, SCAN_CONCURRENCY at a time, so a vtape root of thousands of files
 * never holds the loop (test/unit/amanda/catalog-refresh.test.ts times /healthz during one).
 */
import { closeSync, openSync, readSync } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { type AmandaHeader, type DumpHeader, HEADER_SIZE, HeaderError, parseHeader } from "./header.ts";

/** Header reads in flight at once during a scan: enough to hide NFS latency, few file descriptors. */
export const SCAN_CONCURRENCY = 16;

/** `fn` over `items`, at most `limit` at once; the results in the order of `items`. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Reads and parses the header at the start of `path`, synchronously: for a dump stream's open (one read per part), never for a scan. */
export function readHeaderSync(path: string): AmandaHeader {
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

/**
 * Header buffers of finished reads, reused: a scan of thousands of files would otherwise
 * allocate 32 KiB per file, and the garbage collector's pauses would hold the loop instead.
 * parseHeader copies what it keeps, so a buffer is free again once it returned.
 */
const spare: Buffer[] = [];

/** Reads and parses the header at the start of `path`, with the file's size. */
async function readHead(path: string): Promise<{ header: AmandaHeader; size: number }> {
  const fh = await open(path, "r");
  const buf = spare.pop() ?? Buffer.allocUnsafe(HEADER_SIZE);
  try {
    let n = 0;
    while (n < HEADER_SIZE) {
      const { bytesRead } = await fh.read(buf, n, HEADER_SIZE - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return { header: parseHeader(buf.subarray(0, n), path), size: (await fh.stat()).size };
  } finally {
    if (spare.length < SCAN_CONCURRENCY) spare.push(buf);
    await fh.close();
  }
}

/** Reads and parses the header at the start of `path`. */
export async function readHeader(path: string): Promise<AmandaHeader> {
  return (await readHead(path)).header;
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
export async function listVtapeSlots(root: string, problems: MediaProblem[] = []): Promise<VtapeSlot[]> {
  const dirs = (await isSlotDir(root)) ? [root] : await filterLimit(await subdirs(root), isSlotDir);
  const slots: VtapeSlot[] = [];
  for (const dir of dirs) slots.push(await readSlot(dir, problems));
  return slots.sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0));
}

async function filterLimit<T>(items: T[], keep: (item: T) => Promise<boolean>): Promise<T[]> {
  const k = await mapLimit(items, SCAN_CONCURRENCY, keep);
  return items.filter((_, i) => k[i]);
}

async function subdirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isDirectory()) // symlinks such as `data -> slot2` are skipped
      .map((e) => join(dir, e.name))
      .sort();
  } catch {
    return [];
  }
}

async function isSlotDir(dir: string): Promise<boolean> {
  if (/\/slot\d+\/?$/.test(dir)) return true;
  try {
    return (await readdir(dir)).some((n) => /^\d{5}\./.test(n));
  } catch {
    return false;
  }
}

async function readSlot(dir: string, problems: MediaProblem[]): Promise<VtapeSlot> {
  const files = new Map<number, string>();
  for (const n of await readdir(dir)) {
    const m = /^(\d{5})\./.exec(n);
    if (m) files.set(Number(m[1]), n);
  }
  const slot: VtapeSlot = { slot: slotNumber(dir), dir, label: null, datestamp: null, files };
  const f0 = files.get(0);
  if (f0) {
    try {
      const h = await readHeader(join(dir, f0));
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
export async function scanMedia(dirs: string[], onProgress?: (msg: string) => void): Promise<MediaScan> {
  const scan: MediaScan = { slots: [], parts: [], holding: [], problems: [] };
  const seen = new Set<string>();
  const visit = async (dir: string, depth: number): Promise<void> => {
    if (seen.has(dir)) return;
    seen.add(dir);
    if (await isSlotDir(dir)) {
      await scanSlot(await readSlot(dir, scan.problems), scan);
      onProgress?.(`scanned ${dir}`);
      return;
    }
    if (isHoldingDatestampDir(dir)) {
      await scanHoldingDir(dir, scan);
      onProgress?.(`scanned ${dir}`);
      return;
    }
    if (depth >= 3) return;
    for (const d of await subdirs(dir)) await visit(d, depth + 1);
  };
  for (const d of dirs) {
    try {
      if (!(await stat(d)).isDirectory()) throw new Error("not a directory");
    } catch (err) {
      scan.problems.push({ path: d, message: `cannot scan: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      continue;
    }
    await visit(d.replace(/\/+$/, "") || "/", 0);
  }
  return scan;
}

function isHoldingDatestampDir(dir: string): boolean {
  return /^\d{8}(\d{6})?$/.test(basename(dir));
}

/** A header read that failed: its message, as a problem of the scan. */
const headOrProblem = (path: string) => readHead(path).catch((err: unknown) => ({ problem: (err as Error).message }));

async function scanSlot(slot: VtapeSlot, scan: MediaScan): Promise<void> {
  scan.slots.push(slot);
  const files = [...slot.files].filter(([fileNo]) => fileNo !== 0).sort((a, b) => a[0] - b[0]);
  const label = slot.label;
  if (!label) {
    for (const [, name] of files) scan.problems.push({ path: join(slot.dir, name), message: "vtape file in a slot without a TAPESTART label (file 0)" });
    return;
  }
  const heads = await mapLimit(files, SCAN_CONCURRENCY, ([, name]) => headOrProblem(join(slot.dir, name)));
  files.forEach(([fileNo, name], i) => {
    const path = join(slot.dir, name);
    const r = heads[i]!;
    if ("problem" in r) return void scan.problems.push({ path, message: r.problem });
    const h = r.header;
    if (h.type === "TAPEEND") return;
    if (h.type !== "SPLIT_FILE" && h.type !== "FILE") return void scan.problems.push({ path, message: `a ${h.type} header where a dump file was expected` });
    scan.parts.push({ header: h, label, fileNo, slot: slot.slot, slotDir: slot.dir, path, sizeBytes: r.size - HEADER_SIZE });
  });
}

/** Holding files: a FILE header starts a dump, CONT_FILE headers continue it. */
async function scanHoldingDir(dir: string, scan: MediaScan): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    scan.problems.push({ path: dir, message: `cannot list: ${(err as NodeJS.ErrnoException).code}` });
    return;
  }
  // `.tmp` files are still being written; `pid` marks a running dump
  const paths = names.filter((n) => !n.endsWith(".tmp") && n !== "pid").map((n) => join(dir, n));
  const heads = await mapLimit(paths, SCAN_CONCURRENCY, headOrProblem);
  for (const [i, path] of paths.entries()) {
    const r = heads[i]!;
    if ("problem" in r) scan.problems.push({ path, message: r.problem });
    // CONT_FILE chunks are reached from their first chunk
    else if (r.header.type === "FILE") scan.holding.push(await followChunks(path, r.header, r.size));
  }
}

/** Follows CONT_FILENAME from a first chunk (of `size` bytes). Names are looked up beside the first chunk when the absolute path is stale. */
async function followChunks(first: string, h: DumpHeader, size: number): Promise<ScannedHolding> {
  const out: ScannedHolding = { header: h, chunks: [{ path: first, sizeBytes: size - HEADER_SIZE }], problem: null };
  let next = h.contFilename;
  const seen = new Set([first]);
  while (next) {
    let path = next;
    try {
      await stat(path);
    } catch {
      path = join(dirname(first), basename(next));
    }
    if (seen.has(path)) {
      out.problem = `holding chunk ${path} loops back`;
      break;
    }
    seen.add(path);
    let ch: AmandaHeader;
    let chSize: number;
    try {
      ({ header: ch, size: chSize } = await readHead(path));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      out.problem = code === "ENOENT" ? `holding chunk ${basename(next)} is missing (named in ${out.chunks.at(-1)!.path})` : (err as Error).message;
      break;
    }
    if (ch.type !== "CONT_FILE" || ch.host !== h.host || ch.disk !== h.disk || ch.datestamp !== h.datestamp || ch.level !== h.level) {
      out.problem = `${path}: expected a CONT_FILE header of the same dump, found ${ch.type}`;
      break;
    }
    out.chunks.push({ path, sizeBytes: chSize - HEADER_SIZE });
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
