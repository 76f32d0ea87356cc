/**
 * The read-only TFTP service: requests on the listen port, each transfer on its own
 * ephemeral port (RFC 1350's TID) driven by the pure ReadTransfer. Nothing a client sends
 * can stop it: bad packets are dropped and counted, WRQ gets an error packet.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { Counter, Registry } from "prom-client";
import type { ServerContext, Service } from "../context.ts";
import { counter } from "../metrics.ts";
import type { Logger } from "../log.ts";
import { type Generator, openSource } from "./files.ts";
import { ErrorCode, decodeTftp, errorPacket } from "./packets.ts";
import { type Action, DEFAULT_LIMITS, ReadTransfer, type TransferLimits, negotiate } from "./transfer.ts";

export interface TftpMetrics {
  bytes: Counter;
  transfers: Counter<"result">;
  drops: Counter<"reason">;
}

export function tftpMetrics(reg: Registry): TftpMetrics {
  return {
    bytes: counter(reg, "lifeboat_tftp_bytes_sent_total", "TFTP payload bytes sent (retransmissions included)", []),
    transfers: counter(reg, "lifeboat_tftp_transfers_total", "TFTP transfers finished, by result", ["result"]),
    drops: counter(reg, "lifeboat_tftp_dropped_total", "TFTP packets dropped or refused, by reason", ["reason"]),
  };
}

export interface TftpServerOptions {
  root: string;
  address: string;
  port: number;
  log: Logger;
  metrics: Registry;
  generate?: Generator;
  limits?: Partial<TransferLimits>;
}

export class TftpServer {
  private sock: Socket | undefined;
  private readonly active = new Set<{ close(): void }>();
  private readonly metrics: TftpMetrics;
  private readonly limits: TransferLimits;

  constructor(private readonly o: TftpServerOptions) {
    this.metrics = tftpMetrics(o.metrics);
    this.limits = { ...DEFAULT_LIMITS, ...o.limits };
  }

  /** Listens; resolves to the bound port. */
  async listen(): Promise<number> {
    const sock = createSocket("udp4");
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

  private refuse(rinfo: RemoteInfo, code: number, message: string, reason: string): void {
    this.metrics.drops.inc({ reason });
    this.sock?.send(errorPacket(code, message), rinfo.port, rinfo.address);
  }

  private request(msg: Buffer, rinfo: RemoteInfo): void {
    const d = decodeTftp(msg);
    if (!d.ok) {
      this.metrics.drops.inc({ reason: "malformed" });
      this.o.log.debug({ client: rinfo.address, error: d.error }, "malformed packet dropped");
      return;
    }
    const p = d.packet;
    if (p.op === "WRQ") return this.refuse(rinfo, ErrorCode.ACCESS_VIOLATION, "Access violation: read-only server", "write");
    if (p.op !== "RRQ") return this.refuse(rinfo, ErrorCode.ILLEGAL_OPERATION, "Illegal TFTP operation", "not-a-request");
    const log = this.o.log.child({ client: `${rinfo.address}:${rinfo.port}`, file: p.filename });
    if (p.mode !== "octet" && p.mode !== "netascii") return this.refuse(rinfo, ErrorCode.ILLEGAL_OPERATION, `unsupported mode ${p.mode}`, "mode");
    const src = openSource(this.o.root, p.filename, rinfo, this.o.generate);
    if (!src.ok) {
      log.info({ code: src.code }, `refused: ${src.message}`);
      return this.refuse(rinfo, src.code, src.message, src.code === ErrorCode.FILE_NOT_FOUND ? "not-found" : "denied");
    }
    const n = negotiate(p.options, src.size, this.limits);
    const t = new ReadTransfer(src.size, n, src.readInto, this.limits.retries);
    this.run(t, rinfo, log, src.close, src.size);
  }

  /** Drives one transfer on its own socket (its TID) until it ends. */
  private run(t: ReadTransfer, client: RemoteInfo, log: Logger, closeSource: () => void, size: number): void {
    const sock = createSocket("udp4");
    let timer: NodeJS.Timeout | undefined;
    const started = Date.now();
    let closed = false;
    const handle = {
      close: () => {
        if (closed) return;
        closed = true;
        clearTimeout(timer);
        this.active.delete(handle);
        closeSource();
        try {
          sock.close();
        } catch {
          // already closed
        }
      },
    };
    this.active.add(handle);
    const apply = (actions: Action[]) => {
      let bytes = 0;
      for (const a of actions) {
        if (a.type === "send") {
          bytes += a.payload;
          sock.send(a.packet, client.port, client.address);
        } else if (a.type === "timer") {
          clearTimeout(timer);
          timer = setTimeout(() => apply(t.onTimeout()), a.ms);
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
      if (bytes) this.metrics.bytes.inc(bytes);
    };
    sock.on("error", (err) => {
      log.warn({ err }, "transfer socket error");
      handle.close();
    });
    sock.on("message", (msg, rinfo) => {
      if (rinfo.address !== client.address || rinfo.port !== client.port) {
        sock.send(errorPacket(ErrorCode.UNKNOWN_TID, "Unknown transfer ID"), rinfo.port, rinfo.address);
        return;
      }
      apply(t.onPacket(msg));
    });
    sock.bind(0, this.o.address === "0.0.0.0" ? undefined : this.o.address, () => apply(t.start()));
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
