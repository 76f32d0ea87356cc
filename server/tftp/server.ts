/**
 * The read-only TFTP service: requests on the listen port, each transfer on its own
 * ephemeral port (RFC 1350's TID) driven by the pure ReadTransfer. Nothing a client sends
 * can stop it: bad packets are dropped and counted, WRQ gets an error packet.
 *
 * Only requests are ever answered. An ERROR, ACK, DATA or OACK on the listen port, or a
 * packet from a stranger on a transfer's port, is dropped unanswered: errors are never
 * acknowledged (RFC 1350), and answering them is how a single spoofed packet from our own
 * address and port, or a peer that answers errors with errors, starts an endless loop.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { Counter, Registry } from "prom-client";
import type { ServerContext, Service } from "../context.ts";
import { counter } from "../metrics.ts";
import type { Logger } from "../log.ts";
import { type Generator, NETASCII_MAX_BYTES, type SyncGenerator, netasciiSource, normaliseName, openSource } from "./files.ts";
import { ErrorCode, type TftpPacket, decodeTftp, errorPacket } from "./packets.ts";
import { type Action, DEFAULT_LIMITS, ReadTransfer, type TransferLimits, negotiate } from "./transfer.ts";

/** Why a packet was dropped or a request refused: the `reason` label of lifeboat_tftp_dropped_total. */
export const DROP_REASONS = [
  "malformed",
  /** source port 0 or an address no client can have (0/8, multicast, broadcast): an answer would throw or reach ourselves */
  "bad-source",
  /** ERROR, ACK, DATA, OACK on the listen port; DATA, OACK, requests on a transfer's port */
  "unexpected-opcode",
  /** a packet on a transfer's port from anyone but its client */
  "unknown-tid",
  "write",
  "mode",
  "not-found",
  "denied",
  /** refused: the client address has tftp.maxTransfersPerClient transfers in flight */
  "busy-client",
  /** refused: tftp.maxTransfers transfers in flight */
  "busy-total",
  /** the socket refused a packet (a synchronous throw or an error in the send callback) */
  "send-failed",
  /** a retransmitted request while its file is still being generated */
  "duplicate",
  /** an unexpected failure while handling a packet (e.g. a read error) */
  "error",
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface TftpMetrics {
  bytes: Counter;
  transfers: Counter<"result">;
  drops: Counter<"reason">;
}

export function tftpMetrics(reg: Registry): TftpMetrics {
  const drops = counter(reg, "lifeboat_tftp_dropped_total", "TFTP packets dropped or refused, by reason", ["reason"]);
  // Every reason has a series from the start, so an alert on one needs no absent() guard.
  for (const reason of DROP_REASONS) drops.inc({ reason }, 0);
  return {
    bytes: counter(reg, "lifeboat_tftp_bytes_sent_total", "TFTP payload bytes sent (retransmissions included)", []),
    transfers: counter(reg, "lifeboat_tftp_transfers_total", "TFTP transfers finished, by result", ["result"]),
    drops,
  };
}

/** The part of node:dgram's Socket the server uses; tests pass a double that behaves like it, throws included. */
export type UdpSocket = Pick<Socket, "bind" | "send" | "on" | "once" | "off" | "close" | "address">;

interface Peer {
  address: string;
  port: number;
}

/**
 * dgram resolves the address of every send through dns.lookup, which answers an IP literal on
 * the next tick: a deferred call per DATA packet. Every address we send to is a literal (the
 * client's source address), so it is answered on the spot.
 */
function literalLookup(address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, 4);
}

/** A source no TFTP client can have: sending to port 0 throws, 0/8 reaches this host, 224/3 many or none. */
export function badSource(p: Peer): boolean {
  const first = Number(p.address.split(".")[0]);
  return !(p.port > 0 && p.port <= 65535) || !(first > 0 && first < 224);
}

export interface TftpServerOptions {
  root: string;
  address: string;
  port: number;
  log: Logger;
  metrics: Registry;
  generate?: Generator;
  limits?: Partial<TransferLimits>;
  /** Makes the sockets (the listener and one per transfer); node:dgram's by default. */
  createSocket?: () => UdpSocket;
}

interface Transfer {
  close(): void;
}

export class TftpServer {
  private sock: UdpSocket | undefined;
  private readonly active = new Set<Transfer>();
  private readonly perClient = new Map<string, number>();
  /** Requests (client and file) whose generated content is being made. */
  private readonly generating = new Set<string>();
  private readonly metrics: TftpMetrics;
  private readonly limits: TransferLimits;
  private readonly newSocket: () => UdpSocket;

  constructor(private readonly o: TftpServerOptions) {
    this.metrics = tftpMetrics(o.metrics);
    this.limits = { ...DEFAULT_LIMITS, ...o.limits };
    this.newSocket = o.createSocket ?? (() => createSocket({ type: "udp4", lookup: literalLookup }));
  }

  /** Listens; resolves to the bound port. */
  async listen(): Promise<number> {
    const sock = this.newSocket();
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(this.o.port, this.o.address, () => {
        sock.off("error", reject);
        resolve();
      });
    });
    sock.on("error", (err) => this.o.log.error({ err }, "socket error"));
    sock.on("message", (msg, rinfo) => {
      try {
        this.request(msg, rinfo);
      } catch (err) {
        this.metrics.drops.inc({ reason: "error" });
        this.o.log.warn({ err, client: rinfo.address }, "request failed");
      }
    });
    this.sock = sock;
    return sock.address().port;
  }

  get transfersInFlight(): number {
    return this.active.size;
  }

  async close(graceMs = 0): Promise<void> {
    const s = this.sock;
    this.sock = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    const until = Date.now() + graceMs;
    while (this.active.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    for (const t of [...this.active]) t.close();
  }

  private drop(reason: DropReason, from: Peer, detail: string, log = this.o.log): void {
    this.metrics.drops.inc({ reason });
    log.debug({ client: `${from.address}:${from.port}`, reason, detail }, "packet dropped");
  }

  /**
   * Sends without ever throwing: dgram throws synchronously for some failures and reports
   * others to the callback (`sendResult`). Counted, logged at debug only: a flood of requests
   * from an address that cannot be sent to must not become a flood of log lines (a transfer
   * that never gets through ends with its own warning).
   */
  private send(sock: UdpSocket, packet: Buffer, to: Peer, done: (err: Error | null) => void): void {
    try {
      sock.send(packet, to.port, to.address, done);
    } catch (err) {
      done(err as Error);
    }
  }

  /** The callback of every send to `to`: one per transfer, not one closure per packet. */
  private sendResult(to: Peer, log: Logger): (err: Error | null) => void {
    return (err) => {
      if (!err) return;
      this.metrics.drops.inc({ reason: "send-failed" });
      log.debug({ err, to: `${to.address}:${to.port}` }, "send failed");
    };
  }

  private refuse(to: Peer, code: number, message: string, reason: DropReason): void {
    this.metrics.drops.inc({ reason });
    if (this.sock) this.send(this.sock, errorPacket(code, message), to, this.sendResult(to, this.o.log));
  }

  private request(msg: Buffer, rinfo: RemoteInfo): void {
    if (badSource(rinfo)) return this.drop("bad-source", rinfo, "source cannot be answered");
    const d = decodeTftp(msg);
    if (!d.ok) return this.drop("malformed", rinfo, d.error);
    const p = d.packet;
    if (p.op === "WRQ") return this.refuse(rinfo, ErrorCode.ACCESS_VIOLATION, "Access violation: read-only server", "write");
    if (p.op !== "RRQ") return this.drop("unexpected-opcode", rinfo, p.op);
    if (p.mode !== "octet" && p.mode !== "netascii") return this.refuse(rinfo, ErrorCode.ILLEGAL_OPERATION, `unsupported mode ${p.mode}`, "mode");
    // Checked before anything is opened or logged: a flood of requests costs a lookup and one
    // ERROR each (counted, not logged line by line).
    if ((this.perClient.get(rinfo.address) ?? 0) >= this.limits.maxTransfersPerClient)
      return this.refuse(rinfo, ErrorCode.NOT_DEFINED, `Server busy: ${this.limits.maxTransfersPerClient} transfers from your address in flight`, "busy-client");
    if (this.active.size >= this.limits.maxTransfers)
      return this.refuse(rinfo, ErrorCode.NOT_DEFINED, `Server busy: ${this.limits.maxTransfers} transfers in flight`, "busy-total");
    const log = this.o.log.child({ client: `${rinfo.address}:${rinfo.port}`, file: p.filename });
    // A generator that asks the store (a machine's GRUB configuration): the client's retransmitted
    // RRQ while it runs is dropped, so one request is answered (and decided) once.
    const key = `${rinfo.address}:${rinfo.port}/${p.filename}`;
    if (this.generating.has(key)) return this.drop("duplicate", rinfo, "request already being answered", log);
    const name = normaliseName(p.filename);
    const pending = name !== undefined ? this.o.generate?.(name, rinfo) : undefined;
    if (!(pending instanceof Promise)) return this.serve(p, rinfo, log, () => pending);
    this.generating.add(key);
    pending
      .then(
        (g) => this.serve(p, rinfo, log, () => g),
        (err: unknown) => {
          log.warn({ err }, "generating the file failed");
          this.refuse(rinfo, ErrorCode.NOT_DEFINED, "Server error", "error");
        },
      )
      .catch((err: unknown) => {
        this.metrics.drops.inc({ reason: "error" });
        log.warn({ err }, "request failed");
      })
      .finally(() => this.generating.delete(key));
  }

  /** Answers a request whose generated content (if any) is known. */
  private serve(p: Extract<TftpPacket, { op: "RRQ" | "WRQ" }>, rinfo: RemoteInfo, log: Logger, generated: SyncGenerator): void {
    const opened = openSource(this.o.root, p.filename, rinfo, generated);
    if (!opened.ok) {
      log.info({ code: opened.code }, `refused: ${opened.message}`);
      return this.refuse(rinfo, opened.code, opened.message, opened.code === ErrorCode.FILE_NOT_FOUND ? "not-found" : "denied");
    }
    if (p.mode === "netascii" && opened.size > NETASCII_MAX_BYTES) {
      opened.close();
      log.info({ bytes: opened.size }, "refused: too large for netascii");
      return this.refuse(rinfo, ErrorCode.NOT_DEFINED, `netascii is limited to ${NETASCII_MAX_BYTES / 1024 / 1024} MiB: use octet (binary) mode`, "mode");
    }
    const src = p.mode === "netascii" ? netasciiSource(opened) : opened;
    try {
      const n = negotiate(p.options, src.size, this.limits);
      const t = new ReadTransfer(src.size, n, src.readInto, this.limits.retries);
      this.run(t, rinfo, log, src.close, src.size);
    } catch (err) {
      src.close();
      throw err;
    }
  }

  /** Drives one transfer on its own socket (its TID) until it ends. */
  private run(t: ReadTransfer, client: Peer, log: Logger, closeSource: () => void, size: number): void {
    const sock = this.newSocket();
    const sent = this.sendResult(client, log);
    // One retransmission timer per transfer, not one per window: an ACK only moves the
    // deadline, and the timer, when it fires early, sleeps on until it. (The timeout is fixed
    // per transfer, so a new deadline is never earlier than the armed one.)
    let timer: NodeJS.Timeout | undefined;
    let deadline = 0;
    // Payload bytes not yet added to the counter: prom-client's inc per window is a hot-path cost.
    let unreported = 0;
    const report = () => {
      if (unreported) this.metrics.bytes.inc(unreported);
      unreported = 0;
    };
    const started = Date.now();
    let closed = false;
    const handle: Transfer = {
      close: () => {
        if (closed) return;
        closed = true;
        clearTimeout(timer);
        report();
        this.active.delete(handle);
        const left = (this.perClient.get(client.address) ?? 1) - 1;
        if (left > 0) this.perClient.set(client.address, left);
        else this.perClient.delete(client.address);
        try {
          closeSource();
        } catch (err) {
          log.warn({ err }, "closing the file failed");
        }
        try {
          sock.close();
        } catch {
          // already closed (after a socket error)
        }
      },
    };
    this.active.add(handle);
    this.perClient.set(client.address, (this.perClient.get(client.address) ?? 0) + 1);
    const fail = (err: unknown, what: string) => {
      if (closed) return;
      this.metrics.transfers.inc({ result: "error" });
      log.warn({ err }, what);
      handle.close();
    };
    /** Every callback of this transfer runs through here: whatever throws ends the transfer, never the process. */
    const guarded =
      <A extends unknown[]>(fn: (...args: A) => void) =>
      (...args: A): void => {
        if (closed) return;
        try {
          fn(...args);
        } catch (err) {
          fail(err, "transfer failed");
        }
      };
    const onTimer = guarded(() => {
      const left = deadline - Date.now();
      if (left > 0) timer = setTimeout(onTimer, left);
      else {
        timer = undefined;
        apply(t.onTimeout());
      }
    });
    const apply = (actions: Action[]) => {
      for (const a of actions) {
        if (a.type === "send") {
          unreported += a.payload;
          this.send(sock, a.packet, client, sent);
        } else if (a.type === "timer") {
          deadline = Date.now() + a.ms;
          timer ??= setTimeout(onTimer, a.ms);
        } else if (a.type === "drop") {
          this.drop(a.reason, client, a.detail, log);
        } else {
          this.metrics.transfers.inc({ result: a.result });
          const ms = Date.now() - started;
          // OVMF asks for tsize, then aborts with error 8 before the real download: normal.
          if (a.result === "done") log.info({ bytes: size, ms }, "sent");
          else if (a.result === "aborted") log.debug({ detail: a.detail }, "client ended the transfer");
          else log.warn({ detail: a.detail }, `transfer ${a.result}`);
          // Let the last packet leave before the socket closes.
          setImmediate(handle.close);
        }
      }
      if (unreported >= 1 << 20) report();
    };
    sock.on("error", (err) => fail(err, "transfer socket error"));
    sock.on(
      "message",
      guarded((msg: Buffer, rinfo: RemoteInfo) => {
        if (rinfo.address !== client.address || rinfo.port !== client.port) return this.drop("unknown-tid", rinfo, "not this transfer's client", log);
        apply(t.onPacket(msg));
      }),
    );
    try {
      sock.bind(
        0,
        this.o.address === "0.0.0.0" ? undefined : this.o.address,
        guarded(() => apply(t.start())),
      );
    } catch (err) {
      handle.close();
      throw err;
    }
  }
}

/** The TFTP service of `lifeboat serve`. */
export function tftpService(ctx: ServerContext, generate?: Generator): Service {
  const cfg = ctx.config;
  const server = new TftpServer({
    root: cfg.tftp.root,
    address: cfg.listen.address,
    port: cfg.tftp.port,
    log: ctx.log.child({ svc: "tftp" }),
    metrics: ctx.metrics,
    generate,
    limits: {
      maxTimeoutSeconds: cfg.tftp.maxTimeoutSeconds,
      maxTransfers: cfg.tftp.maxTransfers,
      maxTransfersPerClient: cfg.tftp.maxTransfersPerClient,
    },
  });
  return {
    name: "tftp",
    async start() {
      const port = await server.listen();
      return `tftp://${cfg.listen.address}:${port} root ${cfg.tftp.root}`;
    },
    stop: (graceMs) => server.close(graceMs),
  };
}
