/**
 * Dump data as a Node stream: headers stripped, parts joined in order, holding chunks
 * followed, straight from vtape or holding files; from a physical tape (or anything not
 * on disk) through `amfetchdump -p`. Amanda's CRC-32Cs are checked as the bytes go by
 * and the last chunk is held back until the check passed, so a mismatch truncates the
 * stream instead of delivering a quietly wrong one. Memory: a few read buffers per stream;
 * whole-dump streams of the same dump at once share one reader (shared-read.ts).
 */
import { close, open, read, statSync } from "node:fs";
import { type Duplex, Readable, pipeline } from "node:stream";
import { createGunzip } from "node:zlib";
import { execa } from "execa";
import { UserError } from "../errors.ts";
import { Crc32c } from "./crc32c.ts";
import { type AmandaKey, gpgDecrypt } from "./decrypt.ts";
import { type Crc, HEADER_SIZE } from "./header.ts";
import { type DumpUserAccess, amfetchdumpArgv, defaultDumpUserAccess } from "./dumpuser.ts";
import { expectPiece, readHeaderSync } from "./media.ts";
import { type CatalogDump, dumpName } from "./model.ts";
import { runAsDumpUser } from "./run-dumpuser.ts";
import { type Cursor, CursorReader, SharedReads } from "./shared-read.ts";

/** A stream that cannot be served; `status` is the HTTP status that says why. */
export class DumpStreamError extends UserError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "DumpStreamError";
  }
}

export interface StreamOptions {
  /** Decompress on the server (gzip, compress, bzip2, or the custom program named in the header). */
  decompress?: boolean;
  /** First byte (Range); raw file-backed streams only. */
  start?: number;
  /** Last byte, inclusive (Range). */
  end?: number;
  /** For the amfetchdump fallback: who may run it (the config's dump user, the helper's socket). */
  dumpUser?: DumpUserAccess;
  readBufferBytes?: number;
  /** The escrowed key of the dump's Amanda config; needed (and only used) for an encrypted dump. */
  decrypt?: AmandaKey;
  /** Whole-dump streams of a file-backed dump in flight at once read its files once (the server's; the CLI reads alone). */
  shared?: SharedReads;
}

export interface DumpStream {
  stream: Readable;
  /** Bytes this stream delivers, when known (the Content-Length). */
  length: number | null;
  /** Size of the whole stream (raw: as stored; decompressed: native), when known. */
  totalSize: number | null;
  /** Range requests are possible (raw, file-backed). */
  seekable: boolean;
  via: "files" | "amfetchdump";
  /**
   * Amanda's CRC-32C and size this stream is checked against (null: not checked, e.g. a byte
   * range that stops short of the end). A stream that ends without an error matched it; the audit log records it
   * as the stream's checksum (no second hash of the same bytes per stream).
   */
  checked: Crc | null;
}

/**
 * Read size of the file-backed path: large enough that per-read costs vanish, small enough
 * that 20 streams (each with its chunks read ahead and one in the socket) stay far below 100 MiB.
 */
const READ_CHUNK_BYTES = 256 << 10;
/** Chunks read ahead of the consumer: the next reads run on the thread pool while the socket takes the last ones. */
const READ_AHEAD_CHUNKS = 4;
/**
 * Chunks a shared read holds for its slowest stream (8 MiB): clients of one dump on one LAN
 * stay within it; one that falls further behind goes on with a reader of its own.
 */
const SHARED_WINDOW_CHUNKS = 32;

/** The shared reads of one server: streams of the same dump at once read each vtape part once. */
export function sharedDumpReads(): SharedReads {
  return new SharedReads({ windowChunks: SHARED_WINDOW_CHUNKS });
}

interface Piece {
  path: string;
  size: number;
}

/** Opens the pieces of a file-backed dump and checks each header before a byte is sent. */
function openPieces(dump: CatalogDump): Piece[] {
  const parts = dump.location.parts ?? [];
  if (parts.length === 0) throw new DumpStreamError(`${dumpName(dump)}: the catalog lists no parts`, 409);
  return parts.map((p) => {
    if (!p.path)
      throw new DumpStreamError(
        `${dumpName(dump)}: part ${p.partNo} (${p.label} file ${p.fileNo}) is not on disk; tape ${p.label} missing from the vtapes?`,
        409,
      );
    let size: number;
    try {
      size = statSync(p.path).size - HEADER_SIZE;
      expectPiece(p.path, { ...dump, ...(dump.location.kind === "holding" ? {} : { partNo: p.partNo }) }, readHeaderSync(p.path));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new DumpStreamError(
        code === "ENOENT"
          ? `${dumpName(dump)}: part ${p.partNo} is missing: ${p.path}`
          : `${dumpName(dump)}: part ${p.partNo}: ${(err as Error).message}`,
        409,
      );
    }
    if (size < 0) throw new DumpStreamError(`${dumpName(dump)}: ${p.path} is shorter than its 32 KiB header`, 409);
    return { path: p.path, size };
  });
}

/**
 * The raw bytes of a file-backed dump (pieces joined, headers skipped), one chunk per fs.read
 * into a fresh buffer. With `want`, Amanda's CRC-32C runs over every chunk (from `crcSoFar`, the
 * state at `start`, when resumed mid-dump) and the last chunk is returned only once the whole
 * dump matched: a mismatch truncates the stream. No async generators or per-chunk promises on
 * this path: it has to keep up with amfetchdump.
 */
class PieceCursor implements Cursor<Crc32c | null> {
  private piece = 0;
  /** Offset in the concatenated data of the next byte to read. */
  private pos: number;
  private fd: number | null = null;
  private closed = false;
  private readonly crc: Crc32c | null;
  /** Start offset of each piece in the concatenated data. */
  private readonly starts: number[];

  constructor(
    private readonly pieces: Piece[],
    start: number,
    private readonly end: number,
    private readonly want: { crc: Crc; what: string } | null,
    private readonly chunkBytes: number,
    crcSoFar: Crc32c | null = null,
  ) {
    this.pos = start;
    this.crc = want ? (crcSoFar?.clone() ?? new Crc32c()) : null;
    let at = 0;
    this.starts = pieces.map((p) => ((at += p.size), at - p.size));
    while (this.piece < pieces.length && this.starts[this.piece]! + pieces[this.piece]!.size <= start) this.piece++;
  }

  next(cb: (err: Error | null, chunk: Buffer | null) => void): void {
    if (this.pos > this.end) return cb(null, null);
    const p = this.pieces[this.piece]!;
    const inPiece = this.pos - this.starts[this.piece]!;
    const len = Math.min(this.chunkBytes, p.size - inPiece, this.end + 1 - this.pos);
    const go = (fd: number) => {
      const buf = Buffer.allocUnsafeSlow(len);
      read(fd, buf, 0, len, HEADER_SIZE + inPiece, (err, got) => {
        if (this.closed) return;
        if (err) return cb(err, null);
        if (got !== len) return cb(new Error(`${p.path}: short read (${got} of ${len} bytes at ${inPiece}); file changed while streaming?`), null);
        this.pos += len;
        if (inPiece + len === p.size) this.nextPiece();
        if (this.crc) {
          this.crc.update(buf);
          if (this.pos > this.end) {
            const { crc, what } = this.want!;
            if (this.crc.hex() !== crc.crc || this.crc.bytes !== crc.size)
              return cb(new Error(`CRC mismatch on ${what}: read ${this.crc.hex()}:${this.crc.bytes}, Amanda recorded ${crc.crc}:${crc.size}`), null);
          }
        }
        cb(null, buf);
      });
    };
    if (this.fd !== null) return go(this.fd);
    open(p.path, "r", (err, fd) => {
      if (this.closed) return void (err ? undefined : close(fd, () => {}));
      if (err) return cb(err, null);
      this.fd = fd;
      go(fd);
    });
  }

  mark(): Crc32c | null {
    return this.crc?.clone() ?? null;
  }

  private nextPiece(): void {
    if (this.fd !== null) close(this.fd, () => {});
    this.fd = null;
    this.piece++;
  }

  close(): void {
    this.closed = true;
    if (this.fd !== null) close(this.fd, () => {});
    this.fd = null;
  }
}

/**
 * Passes chunks through, computing CRC-32C; holds the last chunk back until the end and
 * throws instead of yielding it when the CRC or length differ from Amanda's record.
 */
export async function* checkCrc(src: AsyncIterable<Buffer>, want: Crc, what: string): AsyncGenerator<Buffer> {
  const crc = new Crc32c();
  let held: Buffer | null = null;
  for await (const chunk of src) {
    crc.update(chunk);
    if (held) yield held;
    held = chunk;
  }
  if (crc.hex() !== want.crc || crc.bytes !== want.size)
    throw new Error(`CRC mismatch on ${what}: read ${crc.hex()}:${crc.bytes}, Amanda recorded ${want.crc}:${want.size}`);
  if (held) yield held;
}

/** The CRC Amanda recorded over the bytes as stored on this medium. */
function storedCrc(d: CatalogDump): Crc | null {
  return d.crc.server ?? (d.compression === "none" ? d.crc.native : null) ?? d.crc.client;
}

/**
 * The custom compressors Lifeboat runs to decompress, as Debian installs them (merged /usr).
 * The header names the program, and a header is data from the media: only these names,
 * bare or under /usr/bin or /bin, are ever run; anything else is refused before a process starts.
 */
export const CUSTOM_DECOMPRESSORS = ["gzip", "pigz", "bzip2", "pbzip2", "lbzip2", "xz", "pixz", "zstd", "pzstd", "lz4", "lzop"] as const;

/** Pure: the program to run for a header's custom compressor (always /usr/bin/NAME), or null when it is not one of the list. */
export function customDecompressor(program: string): string | null {
  const m = /^(?:\/usr\/bin\/|\/bin\/)?([a-z0-9]+)$/.exec(program);
  return m && (CUSTOM_DECOMPRESSORS as readonly string[]).includes(m[1]!) ? `/usr/bin/${m[1]}` : null;
}

/** The allowed program a custom-compressed dump decompresses with, or the one-line refusal (HTTP 422). */
function customProgram(d: CatalogDump): string {
  if (!d.compressProgram) throw new DumpStreamError(`${dumpName(d)}: custom compression without a program in the header; use the raw stream`, 422);
  const program = customDecompressor(d.compressProgram);
  if (!program)
    throw new DumpStreamError(
      `${dumpName(d)}: the header's custom compressor ${JSON.stringify(d.compressProgram)} is not one Lifeboat runs (${CUSTOM_DECOMPRESSORS.join(", ")}, in /usr/bin or /bin); use the raw stream`,
      422,
    );
  return program;
}

function decompressor(d: CatalogDump): Duplex {
  switch (d.compression) {
    case "gzip":
      return createGunzip();
    case "compress":
      return execa("gzip", ["-dc"]).duplex();
    case "bzip2":
      return execa("bzip2", ["-dc"]).duplex();
    case "custom":
      // Amanda runs the custom compressor with -d to decompress (client-src/sendbackup.c).
      return execa(customProgram(d), ["-d"]).duplex();
    default:
      throw new DumpStreamError(`${dumpName(d)}: compression "${d.compression}" unknown; use the raw stream`, 422);
  }
}

/** A stream from byte `start` to `end` (inclusive) of `src`, read from its beginning: for streams that cannot seek (decrypted ones) and for ranges checked against the whole dump's CRC. */
async function* skipTo(src: AsyncIterable<Buffer>, start: number, end: number | undefined): AsyncGenerator<Buffer> {
  let at = 0;
  for await (const chunk of src) {
    const from = Math.max(0, start - at);
    const to = end === undefined ? chunk.length : Math.min(chunk.length, end + 1 - at);
    at += chunk.length;
    if (to > from) yield from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to);
    if (end !== undefined && at > end) return;
  }
}

/**
 * The CRC of a dump's decrypted bytes, when Amanda recorded one: server-side encryption
 * wraps the bytes as they left the client (client CRC); client-side encryption wraps the
 * compressed tar stream, which only has a CRC (native) when nothing compressed it.
 */
export function decryptedCrc(d: CatalogDump): Crc | null {
  if (d.encryption?.side === "server") return d.crc.client;
  return d.compression === "none" ? d.crc.native : null;
}

/**
 * Opens the data of one dump. Raw by default (as stored: the rescue side decompresses);
 * `decompress` decompresses on the server. An encrypted dump needs `decrypt` (the key the
 * caller holds for its Amanda config): its raw stream is the decrypted bytes, and its CRC is
 * checked on the encrypted bytes as stored, as any other's. Errors that make the dump unservable are
 * thrown before any byte (DumpStreamError with an HTTP status); errors while streaming
 * (CRC mismatch, read error, amfetchdump or gpg failing with its stderr) destroy the stream.
 */
export function openDumpStream(dump: CatalogDump, opts: StreamOptions = {}): DumpStream {
  if (dump.encrypted && !opts.decrypt)
    throw new DumpStreamError(`${dumpName(dump)} is encrypted: only the server's dump stream decrypts it, with the key of Amanda config ${dump.amanda} (lifeboat amanda key set)`, 422);
  const ranged = (opts.start ?? 0) > 0 || opts.end !== undefined;
  if (ranged && opts.decompress) throw new DumpStreamError("a byte range of a decompressed stream is not supported; ask for the raw stream", 416);
  const wantDecompress = opts.decompress === true && dump.compression !== "none";
  // Checked for amfetchdump too: without -l, it would run the header's program itself.
  if (opts.decompress && dump.compression === "custom") customProgram(dump);
  const onDisk = dump.location.kind !== "tape" && (dump.location.parts ?? []).length > 0;
  if (!onDisk) return viaAmfetchdump(dump, opts, ranged);
  if (dump.problem) throw new DumpStreamError(`${dumpName(dump)} cannot be read: ${dump.problem}`, 409);
  const pieces = openPieces(dump);
  const total = pieces.reduce((a, p) => a + p.size, 0);
  const stored = storedCrc(dump);
  if (stored && stored.size !== total)
    throw new DumpStreamError(`${dumpName(dump)}: the parts on disk hold ${total} bytes, Amanda wrote ${stored.size}; a part is missing or truncated`, 409);
  const chunk = opts.readBufferBytes ?? READ_CHUNK_BYTES;
  const hwm = READ_AHEAD_CHUNKS * chunk;
  /** The whole dump as stored, CRC-checked: shared with the other whole-dump streams of it in flight, when the server shares. */
  const whole = (checked: { crc: Crc; what: string } | null): Readable =>
    opts.shared
      ? opts.shared.open<Crc32c | null>(
          `${dump.id}\0${chunk}\0${pieces.map((p) => p.path).join("\0")}`,
          (from) => new PieceCursor(pieces, from?.offset ?? 0, total - 1, checked, chunk, from?.mark),
          hwm,
        )
      : new CursorReader(new PieceCursor(pieces, 0, total - 1, checked, chunk), hwm);
  if (opts.decrypt) return decrypted(dump, whole(stored ? { crc: stored, what: `${dumpName(dump)} as stored (encrypted)` } : null), opts.decrypt, opts, "files", stored);
  const start = opts.start ?? 0;
  const end = Math.min(opts.end ?? total - 1, total - 1);
  if (start > 0 && start >= total) throw new DumpStreamError(`range starts at ${start}, the dump has ${total} bytes`, 416);
  // A range to the end (a restore resumed after a drop) is checked too: the CRC runs over the
  // prefix, read again and not sent. A range that stops short of the end cannot be checked.
  const toEnd = end === total - 1;
  const checked = stored && toEnd ? { crc: stored, what: `${dumpName(dump)} as stored${start > 0 ? ` (resumed at byte ${start})` : ""}` } : null;
  const src = !ranged
    ? whole(checked)
    : checked
      ? Readable.from(skipTo(new CursorReader(new PieceCursor(pieces, 0, end, checked, chunk), hwm), start, undefined), { objectMode: false })
      : new CursorReader(new PieceCursor(pieces, start, end, null, chunk), hwm);
  if (!wantDecompress) return { stream: src, length: end - start + 1, totalSize: total, seekable: true, via: "files", checked: checked?.crc ?? null };
  return decompressed(dump, src, "files");
}

/** `src` (stored bytes, or decrypted ones) decompressed, checked against the native CRC when Amanda recorded one. */
function decompressed(dump: CatalogDump, src: Readable, via: DumpStream["via"]): DumpStream {
  const native = dump.crc.native;
  const dec = decompressor(dump);
  // pipeline, not pipe: a CRC error upstream must destroy the decompressed stream too.
  pipeline(src, dec, () => {});
  const out = native ? Readable.from(checkCrc(dec, native, `${dumpName(dump)} decompressed`), { objectMode: false }) : dec;
  const decTotal = native?.size ?? null;
  return { stream: out as Readable, length: decTotal, totalSize: decTotal, seekable: false, via, checked: native };
}

/**
 * An encrypted dump's stream: `raw` (the encrypted bytes, CRC-checked as they pass) through
 * gpg, then checked against the CRC of the decrypted bytes when Amanda recorded one, then
 * decompressed when asked. A byte range cannot seek in ciphertext: it is decrypted from the
 * start and the bytes before the range are skipped (a resumed restore re-reads its prefix).
 */
function decrypted(dump: CatalogDump, raw: Readable, key: AmandaKey, opts: StreamOptions, via: DumpStream["via"], stored: Crc | null): DumpStream {
  const plain = gpgDecrypt(raw, key, dumpName(dump));
  const want = decryptedCrc(dump);
  const checkedPlain = want ? Readable.from(checkCrc(plain, want, `${dumpName(dump)} decrypted`), { objectMode: false }) : plain;
  if (opts.decompress && dump.compression !== "none") return decompressed(dump, checkedPlain, via);
  const start = opts.start ?? 0;
  const size = want?.size ?? null;
  if (size !== null && start > 0 && start >= size) throw new DumpStreamError(`range starts at ${start}, the decrypted dump has ${size} bytes`, 416);
  const ranged = start > 0 || opts.end !== undefined;
  const stream = ranged ? Readable.from(skipTo(checkedPlain, start, opts.end), { objectMode: false }) : checkedPlain;
  const end = size === null ? null : Math.min(opts.end ?? size - 1, size - 1);
  return { stream, length: end === null ? null : end - start + 1, totalSize: size, seekable: false, via, checked: want ?? stored };
}

/** Physical tapes and anything not on disk: `amfetchdump -p` does the reading; its stderr goes in the error. */
function viaAmfetchdump(dump: CatalogDump, opts: StreamOptions, ranged: boolean): DumpStream {
  if (ranged && !opts.decrypt) throw new DumpStreamError(`${dumpName(dump)} is read through amfetchdump; byte ranges are not supported`, 416);
  let raw: Readable;
  try {
    // An encrypted dump comes as stored (-l): Lifeboat decrypts it, not amfetchdump with the dump user's key files.
    raw = runAsDumpUser(amfetchdumpArgv(dump, !opts.decompress || opts.decrypt !== undefined), opts.dumpUser ?? defaultDumpUserAccess());
  } catch (err) {
    throw new DumpStreamError(`${dumpName(dump)}: ${(err as Error).message}`, 503);
  }
  if (opts.decrypt) {
    const stored = storedCrc(dump);
    const src = stored ? Readable.from(checkCrc(raw, stored, `${dumpName(dump)} from amfetchdump (encrypted)`), { objectMode: false }) : raw;
    return decrypted(dump, src, opts.decrypt, opts, "amfetchdump", stored);
  }
  const want = opts.decompress ? dump.crc.native : storedCrc(dump);
  const stream = want ? Readable.from(checkCrc(raw, want, `${dumpName(dump)} from amfetchdump`), { objectMode: false }) : raw;
  return { stream, length: want?.size ?? null, totalSize: want?.size ?? null, seekable: false, via: "amfetchdump", checked: want };
}
