/**
 * One read transfer as a pure state machine: events in (start, a packet from the client, a
 * timeout), actions out (packets to send, the timer to arm, the end). The socket server
 * drives it; tests drive it directly with loss and duplicates.
 *
 * Sorcerer's Apprentice (RFC 1123 4.2.3.1): a duplicate ACK never triggers a resend; only
 * the timer does. With windowsize (RFC 7440) an ACK for a block inside the window means the
 * client lost what followed: the next window starts right after it.
 */
import { TFTP_DEFAULTS } from "../config/schema.ts";
import { Op, decodeTftp, oackPacket } from "./packets.ts";

export const MAX_BLKSIZE = 65464;
const MAX_WINDOW = 64;

export interface TransferLimits {
  /** Largest blksize granted (at most 65464, RFC 2348). */
  maxBlksize: number;
  /** Default retransmission timeout. */
  timeoutMs: number;
  /**
   * Largest `timeout` option granted (RFC 2349 allows 255 s). A larger one is not
   * acknowledged (the OACK must echo the client's value) and the default applies: a spoofed
   * RRQ cannot hold a socket and a file for timeout × retries ≈ 25 min.
   */
  maxTimeoutSeconds: number;
  /** Retransmissions of one window before giving up. */
  retries: number;
  /** Transfers in flight at once, over all clients; more are refused with an ERROR. */
  maxTransfers: number;
  /** Transfers in flight at once from one client address. */
  maxTransfersPerClient: number;
}

/** The limits of a TftpServer built without them; those that are config keys take the config's defaults. */
export const DEFAULT_LIMITS: TransferLimits = {
  maxBlksize: MAX_BLKSIZE,
  timeoutMs: 1000,
  retries: 5,
  ...TFTP_DEFAULTS,
};

export type TransferEnd = "done" | "aborted" | "timeout" | "error";

export type Action =
  | { type: "send"; packet: Buffer; /** payload bytes of a DATA packet (for the byte counter) */ payload: number }
  | { type: "timer"; ms: number }
  | { type: "end"; result: TransferEnd; detail?: string }
  /** A packet from the client that is neither an ACK nor an ERROR, or no TFTP packet at all: never answered. */
  | { type: "drop"; reason: "malformed" | "unexpected-opcode"; detail: string };

export interface Negotiated {
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  /** The options acknowledged in the OACK; empty → no OACK, data straight away. */
  oack: Record<string, string>;
}

const int = (v: string | undefined) => (v !== undefined && /^\d{1,10}$/.test(v) ? Number(v) : undefined);

/** RFC 2347/2348/2349/7440: accept what is in range (clamping blksize/windowsize; a timeout above the limit is not granted), ignore the rest. */
export function negotiate(options: Record<string, string>, size: number, limits: TransferLimits): Negotiated {
  const oack: Record<string, string> = {};
  let blksize = 512;
  let windowsize = 1;
  let timeoutMs = limits.timeoutMs;
  const b = int(options.blksize);
  if (b !== undefined && b >= 8) {
    blksize = Math.min(b, limits.maxBlksize, MAX_BLKSIZE);
    oack.blksize = String(blksize);
  }
  const t = int(options.timeout);
  if (t !== undefined && t >= 1 && t <= Math.min(255, limits.maxTimeoutSeconds)) {
    timeoutMs = t * 1000;
    oack.timeout = String(t);
  }
  if (options.tsize !== undefined) oack.tsize = String(size);
  const w = int(options.windowsize);
  if (w !== undefined && w >= 1) {
    windowsize = Math.min(w, MAX_WINDOW);
    oack.windowsize = String(windowsize);
  }
  return { blksize, windowsize, timeoutMs, oack };
}

export class ReadTransfer {
  /** Blocks are numbered from 1; `acked` is the highest block the client confirmed (0 = none, or the OACK). */
  private acked = 0;
  private sentUpTo = 0;
  private tries = 0;
  private oackPending: boolean;
  private finished = false;
  readonly lastBlock: number;

  constructor(
    private readonly size: number,
    private readonly n: Negotiated,
    /** Copies `length` bytes of the file at `offset` into `into` at `at` (straight into the DATA packet: no extra copy); returns the count. */
    private readonly readInto: (into: Buffer, at: number, offset: number, length: number) => number,
    private readonly retries: number,
  ) {
    this.lastBlock = Math.floor(size / n.blksize) + 1;
    this.oackPending = Object.keys(n.oack).length > 0;
  }

  get ended(): boolean {
    return this.finished;
  }

  start(): Action[] {
    return this.oackPending ? this.sendOack() : this.sendWindow();
  }

  private sendOack(): Action[] {
    return [{ type: "send", packet: oackPacket(this.n.oack), payload: 0 }, { type: "timer", ms: this.n.timeoutMs }];
  }

  private sendWindow(): Action[] {
    const out: Action[] = [];
    const first = this.acked + 1;
    const last = Math.min(this.acked + this.n.windowsize, this.lastBlock);
    for (let i = first; i <= last; i++) {
      const offset = (i - 1) * this.n.blksize;
      const len = Math.max(0, Math.min(this.n.blksize, this.size - offset));
      const packet = Buffer.allocUnsafe(4 + len);
      packet.writeUInt16BE(Op.DATA, 0);
      packet.writeUInt16BE(i & 0xffff, 2);
      const got = len > 0 ? this.readInto(packet, 4, offset, len) : 0;
      out.push({ type: "send", packet: got === len ? packet : packet.subarray(0, 4 + got), payload: got });
    }
    this.sentUpTo = last;
    out.push({ type: "timer", ms: this.n.timeoutMs });
    return out;
  }

  private end(result: TransferEnd, detail?: string): Action[] {
    this.finished = true;
    return [{ type: "end", result, detail }];
  }

  /**
   * A packet from the transfer's client (same address and port). Only ACK and ERROR mean
   * something here; anything else is dropped unanswered (RFC 1350 would send an ERROR, but an
   * answer to a stray packet is how two peers that answer each other's errors start a loop).
   */
  onPacket(buf: Buffer): Action[] {
    if (this.finished) return [];
    // The hot path (one per window): an ACK read in place, without the general decoder's objects.
    if (buf.length >= 4 && buf.readUInt16BE(0) === Op.ACK) return this.onAck(buf.readUInt16BE(2));
    const d = decodeTftp(buf);
    if (!d.ok) return [{ type: "drop", reason: "malformed", detail: d.error }];
    const p = d.packet;
    if (p.op === "ERROR") return this.end("aborted", `client error ${p.code}: ${p.message}`);
    return [{ type: "drop", reason: "unexpected-opcode", detail: p.op }];
  }

  private onAck(block: number): Action[] {
    if (this.oackPending) {
      if (block !== 0) return [];
      this.oackPending = false;
      this.tries = 0;
      return this.sendWindow();
    }
    // Map the 16-bit block number into the outstanding window (block numbers roll over at 65536).
    const span = this.sentUpTo - this.acked;
    const delta = (block - (this.acked & 0xffff) + 0x10000) & 0xffff;
    if (delta === 0 || delta > span) return []; // duplicate or stale ACK: wait for more or for the timer
    this.acked += delta;
    this.tries = 0;
    if (this.acked >= this.lastBlock) return this.end("done");
    return this.sendWindow();
  }

  onTimeout(): Action[] {
    if (this.finished) return [];
    if (++this.tries > this.retries) return this.end("timeout", `no ACK after ${this.retries} retransmissions`);
    return this.oackPending ? this.sendOack() : this.sendWindow();
  }
}
