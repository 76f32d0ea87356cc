/**
 * What a TFTP file name means: generated content first, then a file under the root,
 * never anything outside it. PXE ROMs send `\` separators and a leading `/`; both are
 * normalised before the checks.
 */
import { closeSync, fstatSync, openSync, readSync, realpathSync } from "node:fs";
import { join, sep } from "node:path";
import { ErrorCode, toNetascii } from "./packets.ts";

/** A file ready to send: its size and a reader for any range of it. */
export interface Readable {
  ok: true;
  size: number;
  readInto: (into: Buffer, at: number, offset: number, length: number) => number;
  close: () => void;
}

export type Source = Readable | { ok: false; code: number; message: string };

/** What a generator makes of a name: the content (a per-MAC GRUB configuration) or the file to send (the rescue kernel, outside the root). */
export type Generated = Buffer | { path: string };

/** Produces a generated file for a (normalised) name, or undefined to fall through to the root. */
export type SyncGenerator = (name: string, client: { address: string }) => Generated | undefined;
/** The same, possibly asking a store first (the TFTP server waits for it). */
export type Generator = (name: string, client: { address: string }) => Generated | undefined | Promise<Generated | undefined>;

/** Normalises a requested name to a relative path, or undefined when it is not allowed. Pure. */
export function normaliseName(raw: string): string | undefined {
  if (raw.includes("\0")) return undefined;
  const parts = raw.replace(/\\/g, "/").split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.some((p) => p === "..")) return undefined;
  return parts.join("/");
}

function bufferSource(data: Buffer): Readable {
  return { ok: true, size: data.length, readInto: (into, at, o, l) => data.copy(into, at, o, o + l), close: () => {} };
}

/**
 * netascii is converted in memory, so its size (and `tsize`) is known before the first block.
 * That is synchronous work on the one event loop (10-20 ms per MiB measured on a busy 2-core
 * machine), so it is kept small: text files are far below this and boot ROMs ask for octet;
 * a larger file in netascii is refused and the client told to use octet.
 */
export const NETASCII_MAX_BYTES = 1024 * 1024;

/** The source converted to netascii, read whole (at most NETASCII_MAX_BYTES); consumes and closes `src`. */
export function netasciiSource(src: Readable): Readable {
  try {
    const raw = Buffer.allocUnsafe(src.size);
    let got = 0;
    for (let n = 1; got < src.size && n > 0; got += n) n = src.readInto(raw, got, got, src.size - got);
    return bufferSource(toNetascii(raw.subarray(0, got)));
  } finally {
    src.close();
  }
}

/** Bytes read from the file at once: blocks are served from this buffer, not one pread per 512-byte block. */
const READ_AHEAD_BYTES = 64 * 1024;

/** readInto over a file read READ_AHEAD_BYTES at a time (sequential transfers, and a resent window is still in the buffer). */
function readAhead(fd: number, size: number): Readable["readInto"] {
  let buf: Buffer | undefined;
  let from = 0;
  let to = 0; // buf holds the file's bytes [from, to)
  return (into, at, offset, length) => {
    if (length > READ_AHEAD_BYTES) return readSync(fd, into, at, length, offset);
    if (offset < from || offset + length > to) {
      buf ??= Buffer.allocUnsafe(READ_AHEAD_BYTES);
      from = offset;
      to = offset + readSync(fd, buf, 0, Math.min(READ_AHEAD_BYTES, size - offset), offset);
    }
    return buf!.copy(into, at, offset - from, Math.min(offset + length, to) - from);
  };
}

const denied = (what: string): Source => ({ ok: false, code: ErrorCode.ACCESS_VIOLATION, message: `Access violation: ${what}` });

export function openSource(root: string, raw: string, client: { address: string }, generate?: SyncGenerator): Source {
  const name = normaliseName(raw);
  if (name === undefined) return denied("path outside the TFTP root");
  const generated = generate?.(name, client);
  if (Buffer.isBuffer(generated)) return bufferSource(generated);
  if (generated) return openFile(generated.path);
  let real: string;
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(join(realRoot, name));
  } catch {
    return { ok: false, code: ErrorCode.FILE_NOT_FOUND, message: "File not found" };
  }
  // A symlink inside the root may point anywhere: check where it really leads.
  if (!real.startsWith(realRoot + sep)) return denied("path outside the TFTP root");
  return openFile(real);
}

/** A regular file opened for sending (a missing one: "File not found"). */
function openFile(real: string): Source {
  let fd: number;
  try {
    fd = openSync(real, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { ok: false, code: ErrorCode.FILE_NOT_FOUND, message: "File not found" };
    return denied("cannot open");
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    return denied("not a regular file");
  }
  return { ok: true, size: st.size, readInto: readAhead(fd, st.size), close: () => closeSync(fd) };
}
