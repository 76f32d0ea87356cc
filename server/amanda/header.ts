/**
 * Codec for Amanda's 32 KiB file headers (common-src/fileheader.c build_header /
 * parse_file_header): ASCII text, first line `AMANDA: <TYPE> ...`, then KEY=value lines,
 * a DLE heredoc and restore hints, ended by "\n\f\n" and NUL padding. Pure: bytes in,
 * typed value out; anything it cannot read is a HeaderError naming file and byte offset.
 */
import { splitQuoted } from "./quote.ts";

export const HEADER_SIZE = 32768;

/** `%08x:%lld` in headers and logs: CRC-32C of a stream and its length in bytes. */
export interface Crc {
  crc: string;
  size: number;
}

export interface TapeStartHeader {
  type: "TAPESTART";
  /** The run datestamp, or "X" for a volume labelled but never written. */
  datestamp: string;
  label: string;
}

export interface TapeEndHeader {
  type: "TAPEEND";
  datestamp: string;
}

export interface DumpHeader {
  /** FILE: a whole dump (holding first chunk, or a 2.x tape file); SPLIT_FILE: one tape part; CONT_FILE: holding chunk 2..N. */
  type: "FILE" | "SPLIT_FILE" | "CONT_FILE";
  datestamp: string;
  host: string;
  disk: string;
  level: number;
  /** SPLIT_FILE only: part number (from 1) and total (-1 when the taper did not know it). */
  partNo: number | null;
  totalParts: number | null;
  /** Amanda's compression suffix (".gz", ".Z", "cust"...) or null for `comp N`. */
  compSuffix: string | null;
  /** `program` as written: APPLICATION, GNUTAR, DUMP, or a 2.x path like /bin/tar. */
  program: string;
  application: string | null;
  encrypted: boolean;
  serverCustomCompress: string | null;
  clientCustomCompress: string | null;
  serverEncrypt: string | null;
  clientEncrypt: string | null;
  /** Holding disk: absolute path of the next chunk, null on the last one. */
  contFilename: string | null;
  partial: boolean;
  origSizeKb: number | null;
  nativeCrc: Crc | null;
  clientCrc: Crc | null;
  serverCrc: Crc | null;
  /** The DLE XML (heredoc), when written (3.x). */
  dle: string | null;
}

export type AmandaHeader = TapeStartHeader | TapeEndHeader | DumpHeader | { type: "NOOP" };

export class HeaderError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    detail: string,
  ) {
    super(`${file}: bad Amanda header at byte ${offset}: ${detail}`);
    this.name = "HeaderError";
  }
}

const DATESTAMP = /^(\d{8}|\d{14})$/;

export function parseCrc(s: string): Crc | null {
  const m = /^([0-9a-fA-F]{8}):(\d+)$/.exec(s.trim());
  return m ? { crc: m[1]!.toLowerCase(), size: Number(m[2]) } : null;
}

/**
 * Parses a header block. `file` and `base` (the block's byte offset in that file) only
 * serve the error messages. Accepts a block shorter than 32 KiB only if `allowShort`
 * (index `.header` files carry the text alone).
 */
export function parseHeader(block: Uint8Array, file: string, opts: { base?: number; allowShort?: boolean } = {}): AmandaHeader {
  const base = opts.base ?? 0;
  if (!opts.allowShort && block.length < HEADER_SIZE)
    throw new HeaderError(file, base + block.length, `truncated: ${block.length} bytes, expected ${HEADER_SIZE}`);
  let end = block.indexOf(0);
  if (end < 0) end = Math.min(block.length, HEADER_SIZE);
  const text = Buffer.from(block.buffer, block.byteOffset, end).toString("latin1");
  if (!text.startsWith("AMANDA: ")) {
    const what = text.length === 0 ? "empty (all NUL)" : JSON.stringify(text.slice(0, 24));
    throw new HeaderError(file, base, `expected "AMANDA: ", found ${what}`);
  }
  // The text ends at "\n\f\n"; Amanda 2.5.2 wrote a literal "\n014\n" in TAPESTART (a source bug).
  let stop = text.indexOf("\n\f");
  if (stop < 0) stop = text.indexOf("\n014\n");
  const body = stop < 0 ? text : text.slice(0, stop + 1);
  const nl = body.indexOf("\n");
  const first = nl < 0 ? body : body.slice(0, nl);
  // Names are raw bytes; headers are ASCII except quoted names, which we re-read as UTF-8.
  const tokens = splitQuoted(first).map((t) => Buffer.from(t, "latin1").toString("utf8"));
  const type = tokens[1];
  const at = (i: number) => base + offsetOfToken(first, i);
  switch (type) {
    case "TAPESTART": {
      // AMANDA: TAPESTART DATE <ds|X> TAPE <label>
      if (tokens[2] !== "DATE" || tokens[4] !== "TAPE" || !tokens[3] || !tokens[5])
        throw new HeaderError(file, base, `TAPESTART line not "DATE <datestamp> TAPE <label>": ${JSON.stringify(first)}`);
      if (tokens[3] !== "X" && !DATESTAMP.test(tokens[3])) throw new HeaderError(file, at(3), `bad datestamp ${JSON.stringify(tokens[3])}`);
      return { type: "TAPESTART", datestamp: tokens[3], label: tokens[5] };
    }
    case "TAPEEND":
      if (tokens[2] !== "DATE" || !tokens[3]) throw new HeaderError(file, base, `TAPEEND line not "DATE <datestamp>"`);
      return { type: "TAPEEND", datestamp: tokens[3] };
    case "NOOP":
      return { type: "NOOP" };
    case "FILE":
    case "SPLIT_FILE":
    case "CONT_FILE":
      return parseDump(type, tokens, body.slice(nl < 0 ? body.length : nl + 1), file, at);
    default:
      throw new HeaderError(file, at(1), `unknown header type ${JSON.stringify(type ?? "")}`);
  }
}

function offsetOfToken(line: string, index: number): number {
  // Good enough for messages: position of the index-th run of non-blanks (quotes ignored).
  const re = /\S+/g;
  let m: RegExpExecArray | null;
  let i = 0;
  while ((m = re.exec(line))) {
    if (i++ === index) return m.index;
  }
  return line.length;
}

function parseDump(
  type: DumpHeader["type"],
  t: string[],
  rest: string,
  file: string,
  at: (i: number) => number,
): DumpHeader {
  const ds = t[2];
  if (!ds || !DATESTAMP.test(ds)) throw new HeaderError(file, at(2), `bad datestamp ${JSON.stringify(ds ?? "")}`);
  if (!t[3]) throw new HeaderError(file, at(3), "missing host");
  if (t[4] === undefined) throw new HeaderError(file, at(4), "missing disk");
  const h: DumpHeader = {
    type,
    datestamp: ds,
    host: t[3],
    disk: t[4],
    level: -1,
    partNo: null,
    totalParts: null,
    compSuffix: null,
    program: "",
    application: null,
    encrypted: false,
    serverCustomCompress: null,
    clientCustomCompress: null,
    serverEncrypt: null,
    clientEncrypt: null,
    contFilename: null,
    partial: false,
    origSizeKb: null,
    nativeCrc: null,
    clientCrc: null,
    serverCrc: null,
    dle: null,
  };
  let i = 5;
  const need = (k: string) => {
    const v = t[i + 1];
    if (v === undefined) throw new HeaderError(file, at(i), `"${k}" without a value`);
    i += 2;
    return v;
  };
  while (i < t.length) {
    const k = t[i]!;
    switch (k) {
      case "part": {
        const v = need(k);
        const m = /^(\d+)\/(-?\d+)$/.exec(v);
        if (!m) throw new HeaderError(file, at(i - 1), `bad part "${v}", expected n/total`);
        h.partNo = Number(m[1]);
        h.totalParts = Number(m[2]);
        break;
      }
      case "lev": {
        const v = need(k);
        if (!/^\d+$/.test(v)) throw new HeaderError(file, at(i - 1), `bad level "${v}"`);
        h.level = Number(v);
        break;
      }
      case "comp": {
        const v = need(k);
        h.compSuffix = v === "N" ? null : v;
        break;
      }
      case "program":
        h.program = need(k);
        break;
      case "crypt":
        h.encrypted = need(k) === "enc" || h.encrypted;
        break;
      case "server_custom_compress":
        h.serverCustomCompress = need(k);
        break;
      case "client_custom_compress":
        h.clientCustomCompress = need(k);
        break;
      case "server_encrypt":
        h.serverEncrypt = need(k);
        h.encrypted = true;
        break;
      case "client_encrypt":
        h.clientEncrypt = need(k);
        h.encrypted = true;
        break;
      case "server_decrypt_option":
      case "client_decrypt_option":
        need(k);
        break;
      default:
        throw new HeaderError(file, at(i), `unexpected word ${JSON.stringify(k)} in the ${type} line`);
    }
  }
  if (h.level < 0) throw new HeaderError(file, at(5), `${type} line without "lev <level>"`);
  if (!h.program) throw new HeaderError(file, at(5), `${type} line without "program <name>"`);
  if (type === "SPLIT_FILE" && h.partNo === null) throw new HeaderError(file, at(5), `SPLIT_FILE line without "part n/total"`);
  const lines = rest.split("\n");
  for (let li = 0; li < lines.length; li++) {
    const line = lines[li]!;
    if (line.startsWith("DLE=<<")) {
      const tag = line.slice(6);
      const endAt = lines.indexOf(tag, li + 1);
      h.dle = lines.slice(li + 1, endAt < 0 ? lines.length : endAt).join("\n");
      if (endAt < 0) break;
      li = endAt;
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0 || !/^[A-Z_-]+$/.test(line.slice(0, eq))) continue; // restore hints and free text
    const key = line.slice(0, eq);
    const val = line.slice(eq + 1);
    switch (key) {
      case "CONT_FILENAME":
        h.contFilename = val === "" ? null : Buffer.from(val, "latin1").toString("utf8");
        break;
      case "APPLICATION":
        h.application = val;
        break;
      case "PARTIAL":
        h.partial = val === "YES";
        break;
      case "ORIGSIZE":
        h.origSizeKb = Number(val);
        break;
      case "NATIVE-CRC":
        h.nativeCrc = parseCrc(val);
        break;
      case "CLIENT-CRC":
        h.clientCrc = parseCrc(val);
        break;
      case "SERVER-CRC":
        h.serverCrc = parseCrc(val);
        break;
      default:
        break; // DUMPER=, ENCRYPT_SUFFIX=... carry nothing a restore needs
    }
  }
  return h;
}

/** What the stored bytes are compressed with, as the rest of Lifeboat names it. */
export type Compression = "none" | "gzip" | "compress" | "bzip2" | "custom";

export function compressionOf(h: Pick<DumpHeader, "compSuffix" | "serverCustomCompress" | "clientCustomCompress">): {
  compression: Compression;
  customProgram: string | null;
} {
  const custom = h.serverCustomCompress ?? h.clientCustomCompress;
  if (h.compSuffix === null) return { compression: "none", customProgram: null };
  if (custom) return { compression: "custom", customProgram: custom };
  switch (h.compSuffix) {
    case ".gz":
      return { compression: "gzip", customProgram: null };
    case ".Z":
      return { compression: "compress", customProgram: null };
    case ".bz2":
      return { compression: "bzip2", customProgram: null };
    default:
      return { compression: "custom", customProgram: null };
  }
}

/** Builds a header block the way Amanda writes it (used by tests and by synthetic media). */
export function buildHeader(text: string): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  const body = text.endsWith("\n\f\n") ? text : `${text.replace(/\n?$/, "\n")}\f\n`;
  if (body.length > HEADER_SIZE) throw new Error(`header text longer than ${HEADER_SIZE} bytes`);
  b.write(body, "utf8");
  return b;
}
