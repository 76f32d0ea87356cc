/**
 * DHCPv4 wire format (RFC 2131/2132): decode and encode, no I/O. Every option is kept as
 * raw bytes by code; typed readers below interpret the ones Lifeboat uses. Decoding never
 * throws: a malformed packet is an error value the server counts and drops.
 */

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
const MAGIC = 0x63825363;
const FIXED = 236;
/** BOOTP's minimum message size; some old PXE ROMs drop shorter replies. */
const MIN_SIZE = 300;

export const MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type MessageTypeName = keyof typeof MessageType;
export const messageTypeName = (t: number | undefined): MessageTypeName | undefined =>
  (Object.keys(MessageType) as MessageTypeName[]).find((k) => MessageType[k] === t);

/** Option codes Lifeboat reads or writes. */
export const Opt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  VENDOR_SPECIFIC: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER_NAME: 66,
  BOOTFILE_NAME: 67,
  USER_CLASS: 77,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  CLIENT_UUID: 97,
  IPXE_ENCAP: 175,
  END: 255,
} as const;

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** The 16-byte client hardware address field as sent. */
  chaddr: Buffer;
  sname: string;
  file: string;
  /** Options by code, in the order first seen; repeated codes are concatenated (RFC 3396). */
  options: Map<number, Buffer>;
}

export type Decoded = { ok: true; packet: DhcpPacket } | { ok: false; error: string };

const ip = (b: Buffer, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

function cstring(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString("latin1");
}

/**
 * How many times one option code may appear in a packet. RFC 3396 splits a long option into
 * 255-byte parts, so 257 parts already fill a 64 KB datagram; no client sends more than a few.
 */
export const MAX_OPTION_PARTS = 256;

/**
 * Where each code's parts lie in the datagram (start, end pairs), in the order first seen;
 * joined once at the end. Joining per repeat is quadratic, and a Buffer object per part
 * is most of the cost of a datagram packed with tiny options.
 */
type OptionParts = Map<number, number[]>;

/** Reads TLV options from `buf[from, to)` into `into`; returns an error string or undefined. */
function readOptions(buf: Buffer, from: number, to: number, into: OptionParts, where: string): string | undefined {
  let i = from;
  while (i < to) {
    const code = buf[i]!;
    if (code === Opt.PAD) {
      i++;
      continue;
    }
    if (code === Opt.END) return undefined;
    if (i + 1 >= to) return `${where}: option ${code} has no length byte`;
    const len = buf[i + 1]!;
    if (i + 2 + len > to) return `${where}: option ${code} length ${len} runs past the end`;
    const at = into.get(code);
    if (!at) into.set(code, [i + 2, i + 2 + len]);
    else if (at.push(i + 2, i + 2 + len) > 2 * MAX_OPTION_PARTS) return `${where}: option ${code} repeated more than ${MAX_OPTION_PARTS} times`;
    i += 2 + len;
  }
  // A missing END is common enough in the wild (and harmless) to accept.
  return undefined;
}

/** Joins each code's parts into one value (RFC 3396), copied out of the datagram. */
function joinParts(buf: Buffer, parts: OptionParts): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (const [code, at] of parts) {
    let len = 0;
    for (let k = 0; k < at.length; k += 2) len += at[k + 1]! - at[k]!;
    const v = Buffer.alloc(len);
    for (let k = 0, o = 0; k < at.length; k += 2) o += buf.copy(v, o, at[k], at[k + 1]);
    out.set(code, v);
  }
  return out;
}

export function decode(buf: Buffer): Decoded {
  if (buf.length < FIXED + 4) return { ok: false, error: `too short (${buf.length} bytes)` };
  if (buf.readUInt32BE(FIXED) !== MAGIC) return { ok: false, error: "no DHCP magic cookie" };
  const op = buf[0]!;
  if (op !== BOOTREQUEST && op !== BOOTREPLY) return { ok: false, error: `bad op ${op}` };
  const hlen = buf[2]!;
  if (hlen > 16) return { ok: false, error: `bad hlen ${hlen}` };
  const parts: OptionParts = new Map();
  const err = readOptions(buf, FIXED + 4, buf.length, parts, "options");
  if (err) return { ok: false, error: err };
  let sname = cstring(buf.subarray(44, 108));
  let file = cstring(buf.subarray(108, 236));
  const overloadAt = parts.get(Opt.OVERLOAD);
  const overload = overloadAt && overloadAt[1]! > overloadAt[0]! ? buf[overloadAt[0]!] : undefined;
  if (overload !== undefined) {
    if (overload & 1) {
      const e = readOptions(buf, 108, 236, parts, "file (overloaded)");
      if (e) return { ok: false, error: e };
      file = "";
    }
    if (overload & 2) {
      const e = readOptions(buf, 44, 108, parts, "sname (overloaded)");
      if (e) return { ok: false, error: e };
      sname = "";
    }
  }
  return {
    ok: true,
    packet: {
      op,
      htype: buf[1]!,
      hlen,
      hops: buf[3]!,
      xid: buf.readUInt32BE(4),
      secs: buf.readUInt16BE(8),
      flags: buf.readUInt16BE(10),
      ciaddr: ip(buf, 12),
      yiaddr: ip(buf, 16),
      siaddr: ip(buf, 20),
      giaddr: ip(buf, 24),
      chaddr: Buffer.from(buf.subarray(28, 44)),
      sname,
      file,
      options: joinParts(buf, parts),
    },
  };
}

function writeIp(b: Buffer, at: number, addr: string): void {
  const parts = addr.split(".").map(Number);
  for (let i = 0; i < 4; i++) b[at + i] = parts[i] ?? 0;
}

/** Encodes a packet; options longer than 255 bytes are split (RFC 3396). Throws only on a caller bug (field too long). */
export function encode(p: DhcpPacket): Buffer {
  const opts: Buffer[] = [];
  for (const [code, val] of p.options) {
    if (code === Opt.PAD || code === Opt.END) continue;
    for (let i = 0; i < val.length || i === 0; i += 255) {
      const part = val.subarray(i, i + 255);
      opts.push(Buffer.from([code, part.length]), part);
      if (val.length === 0) break;
    }
  }
  opts.push(Buffer.from([Opt.END]));
  const body = Buffer.concat(opts);
  const out = Buffer.alloc(Math.max(MIN_SIZE, FIXED + 4 + body.length));
  out[0] = p.op;
  out[1] = p.htype;
  out[2] = p.hlen;
  out[3] = p.hops;
  out.writeUInt32BE(p.xid >>> 0, 4);
  out.writeUInt16BE(p.secs & 0xffff, 8);
  out.writeUInt16BE(p.flags & 0xffff, 10);
  writeIp(out, 12, p.ciaddr);
  writeIp(out, 16, p.yiaddr);
  writeIp(out, 20, p.siaddr);
  writeIp(out, 24, p.giaddr);
  p.chaddr.copy(out, 28, 0, 16);
  if (p.sname.length > 63) throw new Error(`sname too long (${p.sname.length} > 63)`);
  if (p.file.length > 127) throw new Error(`file too long (${p.file.length} > 127)`);
  out.write(p.sname, 44, "latin1");
  out.write(p.file, 108, "latin1");
  out.writeUInt32BE(MAGIC, FIXED);
  body.copy(out, FIXED + 4);
  return out;
}

// ---- typed readers and writers -------------------------------------------------------

export const macOf = (p: DhcpPacket): string =>
  [...p.chaddr.subarray(0, Math.min(p.hlen || 6, 16))].map((x) => x.toString(16).padStart(2, "0")).join(":");

export const messageType = (p: DhcpPacket): number | undefined => p.options.get(Opt.MESSAGE_TYPE)?.[0];

export const optString = (p: DhcpPacket, code: number): string | undefined => {
  const v = p.options.get(code);
  return v ? v.toString("latin1").replace(/\0+$/, "") : undefined;
};

export const optIp = (p: DhcpPacket, code: number): string | undefined => {
  const v = p.options.get(code);
  return v && v.length >= 4 ? ip(v, 0) : undefined;
};

/** Option 93: one or more 16-bit architecture types (RFC 4578); the first one counts. */
export const clientArch = (p: DhcpPacket): number | undefined => {
  const v = p.options.get(Opt.CLIENT_ARCH);
  return v && v.length >= 2 ? v.readUInt16BE(0) : undefined;
};

/**
 * Option 77 user classes. RFC 3004 says length-prefixed items, but iPXE (and most ROMs)
 * send the bare string ("iPXE"): return both readings so either matches.
 */
export function userClasses(p: DhcpPacket): string[] {
  const v = p.options.get(Opt.USER_CLASS);
  if (!v || v.length === 0) return [];
  const out = [v.toString("latin1")];
  const items: string[] = [];
  let i = 0;
  while (i < v.length) {
    const len = v[i]!;
    if (len === 0 || i + 1 + len > v.length) return out;
    items.push(v.subarray(i + 1, i + 1 + len).toString("latin1"));
    i += 1 + len;
  }
  return [...out, ...items];
}

/** Reads sub-options of an encapsulated option (43, 175). Malformed → undefined. */
export function subOptions(v: Buffer | undefined): Map<number, Buffer> | undefined {
  if (!v) return undefined;
  const parts: OptionParts = new Map();
  return readOptions(v, 0, v.length, parts, "sub-options") ? undefined : joinParts(v, parts);
}

export function encodeSubOptions(m: Map<number, Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [code, val] of m) parts.push(Buffer.from([code, val.length]), val);
  parts.push(Buffer.from([Opt.END]));
  return Buffer.concat(parts);
}

export const ipBytes = (addr: string): Buffer => Buffer.from(addr.split(".").map(Number));
export const u32Bytes = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

export function ipToInt(addr: string): number {
  const p = addr.split(".").map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}
export const intToIp = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");

/** A reply skeleton to `req`: same xid, chaddr, flags and giaddr; the client identifier echoed (RFC 6842 requires it). */
export function replyTo(req: DhcpPacket, type: number): DhcpPacket {
  const options = new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([type])]]);
  const clientId = req.options.get(Opt.CLIENT_ID);
  if (clientId) options.set(Opt.CLIENT_ID, Buffer.from(clientId));
  return {
    op: BOOTREPLY,
    htype: req.htype,
    hlen: req.hlen,
    hops: 0,
    xid: req.xid,
    secs: 0,
    flags: req.flags,
    ciaddr: "0.0.0.0",
    yiaddr: "0.0.0.0",
    siaddr: "0.0.0.0",
    giaddr: req.giaddr,
    chaddr: Buffer.from(req.chaddr),
    sname: "",
    file: "",
    options,
  };
}
