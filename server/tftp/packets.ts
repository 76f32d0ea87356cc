/**
 * TFTP packets (RFC 1350) with option extension (RFC 2347): decode and encode, no I/O.
 * Decoding never throws; a malformed packet is an error value.
 */

export const Op = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  OPTION_REFUSED: 8,
} as const;

export type TftpPacket =
  | { op: "RRQ" | "WRQ"; filename: string; mode: string; /** option names lower-cased (RFC 2347: case-insensitive) */ options: Record<string, string> }
  | { op: "DATA"; block: number; data: Buffer }
  | { op: "ACK"; block: number }
  | { op: "ERROR"; code: number; message: string }
  | { op: "OACK"; options: Record<string, string> };

export type DecodedTftp = { ok: true; packet: TftpPacket } | { ok: false; error: string };

/** Splits NUL-terminated strings; the last one must be terminated too. */
function strings(b: Buffer): string[] | undefined {
  if (b.length === 0) return [];
  if (b[b.length - 1] !== 0) return undefined;
  return b.subarray(0, b.length - 1).toString("latin1").split("\0");
}

function optionPairs(list: string[]): Record<string, string> | undefined {
  if (list.length % 2 !== 0) return undefined;
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < list.length; i += 2) out[list[i]!.toLowerCase()] = list[i + 1]!;
  return out;
}

export function decodeTftp(buf: Buffer): DecodedTftp {
  if (buf.length < 2) return { ok: false, error: `too short (${buf.length} bytes)` };
  const op = buf.readUInt16BE(0);
  const rest = buf.subarray(2);
  switch (op) {
    case Op.RRQ:
    case Op.WRQ: {
      const s = strings(rest);
      if (!s || s.length < 2) return { ok: false, error: "request without NUL-terminated filename and mode" };
      const options = optionPairs(s.slice(2));
      if (!options) return { ok: false, error: "option without a value" };
      if (s[0]!.length === 0) return { ok: false, error: "empty filename" };
      return { ok: true, packet: { op: op === Op.RRQ ? "RRQ" : "WRQ", filename: s[0]!, mode: s[1]!.toLowerCase(), options } };
    }
    case Op.DATA:
      if (rest.length < 2) return { ok: false, error: "DATA without block number" };
      return { ok: true, packet: { op: "DATA", block: rest.readUInt16BE(0), data: Buffer.from(rest.subarray(2)) } };
    case Op.ACK:
      if (rest.length < 2) return { ok: false, error: "ACK without block number" };
      return { ok: true, packet: { op: "ACK", block: rest.readUInt16BE(0) } };
    case Op.ERROR: {
      if (rest.length < 2) return { ok: false, error: "ERROR without code" };
      const msg = rest.subarray(2);
      const end = msg.indexOf(0);
      return { ok: true, packet: { op: "ERROR", code: rest.readUInt16BE(0), message: msg.subarray(0, end < 0 ? msg.length : end).toString("latin1") } };
    }
    case Op.OACK: {
      const s = strings(rest);
      const options = s ? optionPairs(s) : undefined;
      if (!options) return { ok: false, error: "malformed OACK" };
      return { ok: true, packet: { op: "OACK", options } };
    }
    default:
      return { ok: false, error: `unknown opcode ${op}` };
  }
}

const op2 = (op: number) => Buffer.from([op >> 8, op & 255]);

export function dataPacket(block: number, data: Buffer): Buffer {
  const b = Buffer.allocUnsafe(4 + data.length);
  b.writeUInt16BE(Op.DATA, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  data.copy(b, 4);
  return b;
}

export function ackPacket(block: number): Buffer {
  return Buffer.concat([op2(Op.ACK), Buffer.from([(block >> 8) & 255, block & 255])]);
}

export function errorPacket(code: number, message: string): Buffer {
  return Buffer.concat([op2(Op.ERROR), Buffer.from([code >> 8, code & 255]), Buffer.from(`${message}\0`, "latin1")]);
}

export function oackPacket(options: Record<string, string>): Buffer {
  return Buffer.concat([op2(Op.OACK), ...Object.entries(options).map(([k, v]) => Buffer.from(`${k}\0${v}\0`, "latin1"))]);
}

export function requestPacket(op: "RRQ" | "WRQ", filename: string, options: Record<string, string> = {}, mode = "octet"): Buffer {
  const parts = [filename, mode, ...Object.entries(options).flat()];
  return Buffer.concat([op2(op === "RRQ" ? Op.RRQ : Op.WRQ), Buffer.from(parts.map((p) => `${p}\0`).join(""), "latin1")]);
}

/**
 * A file's bytes in netascii (RFC 1350 after RFC 764): LF becomes CR LF and CR becomes CR NUL,
 * so a receiver that undoes exactly that (tftp-hpa's default mode) gets every byte back.
 */
export function toNetascii(b: Buffer): Buffer {
  let extra = 0;
  for (let i = 0; i < b.length; i++) if (b[i] === 10 || b[i] === 13) extra++;
  if (extra === 0) return b;
  const out = Buffer.allocUnsafe(b.length + extra);
  let j = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 10) {
      out[j++] = 13;
      out[j++] = 10;
    } else if (c === 13) {
      out[j++] = 13;
      out[j++] = 0;
    } else out[j++] = c;
  }
  return out;
}
