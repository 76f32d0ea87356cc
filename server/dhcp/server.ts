/**
 * The DHCP service: UDP 67 (and 4011 for PXE follow-ups) on 0.0.0.0, each socket tied to
 * the configured interface with SO_BINDTOIFINDEX. A socket bound to the interface's
 * address would not see broadcast DISCOVERs, and one on 0.0.0.0 without the device binding
 * would hear (and answer on) every NIC. The loop is decode → decide → send; nothing a
 * packet contains can stop it: every failure (a send included) is logged, counted and the
 * packet dropped. In reserved mode a MAC with no active job and no static lease is not answered
 * at all (counted as not-reserved). In proxy mode OFFERs on 67 are held for dhcp.proxyOfferDelayMs, so an OS
 * DHCP client that sends a PXE vendor class takes the LAN server's address offer, not our
 * empty one (a PXE ROM waits for proxy offers; pxe/README.md has the measurements).
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Counter, type Registry } from "prom-client";
import type { ServerContext, Service } from "../context.ts";
import type { Logger } from "../log.ts";
import { type DhcpPacket, MessageType, decode, encode, macOf, messageType, messageTypeName } from "./codec.ts";
import { type Answer, type DhcpEnv, type Destination, fullAnswer, proxyAnswer, requestedAddress, reservedSilence } from "./decision.ts";
import { effectiveUefiLoader, identify } from "./firmware.ts";
import { LEASING_MODES } from "../config/schema.ts";
import { bootBaseUrl } from "../jobs/boot-scripts.ts";
import { type DhcpWitness, activeJobForMachine } from "../jobs/boot-service.ts";
import { LeasePool } from "./pool.ts";
import { type LoopTurns, Shedder } from "./shed.ts";
import { counter } from "../metrics.ts";
import { bindToInterface, interfaceInfo } from "../netif.ts";


export interface DhcpMetrics {
  answers: Counter<"kind">;
  drops: Counter<"reason">;
}


export function dhcpMetrics(reg: Registry): DhcpMetrics {
  return {
    answers: counter(reg, "lifeboat_dhcp_answers_total", "DHCP replies sent, by kind", ["kind"]),
    drops: counter(reg, "lifeboat_dhcp_dropped_total", "DHCP packets dropped, by reason", ["reason"]),
  };
}

/** Binds a UDP socket to 0.0.0.0:port and then to the interface `index`. */
async function boundSocket(port: number, index: number): Promise<Socket> {
  const sock = createSocket({ type: "udp4", reuseAddr: true });
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.bind({ port, address: "0.0.0.0", exclusive: true }, () => {
      sock.off("error", reject);
      resolve();
    });
  });
  bindToInterface(sock, index);
  sock.setBroadcast(true);
  return sock;
}

/** The drop reason of a reserved-mode stranger in lifeboat_dhcp_dropped_total. */
const NOT_RESERVED = "not-reserved";

/**
 * Proxy OFFERs held at once; a flood of boot DISCOVERs beyond this is dropped, not queued.
 * Each held OFFER waits out dhcp.proxyOfferDelayMs, so this caps proxy OFFERs at
 * MAX_HELD_OFFERS / delay: 16384 at the default 500 ms is about 32,000/s (dnsmasq's flat-out
 * proxy rate here is about 28,000/s). A full hold measured 19 MiB (1.2 KiB per OFFER: its timer,
 * key and encoded packet).
 */
export const MAX_HELD_OFFERS = 16384;

/** Where a reply goes, or why it cannot: "source" replies need a real unicast source. */
export function replyDestination(to: Destination | "source", rinfo: Pick<RemoteInfo, "address" | "port">): Destination | { drop: string } {
  if (to !== "source") return to;
  if (rinfo.address === "0.0.0.0" || rinfo.address === "255.255.255.255") return { drop: "bad-source" };
  return { address: rinfo.address, port: rinfo.port };
}

export interface DhcpServiceOptions {
  /** The HTTP port booting machines use (resolved after the HTTP service started). */
  httpPort: () => number;
  /** Told which MACs this server answered and at which address: a boot token goes only to them (jobs/boot-policy.ts). */
  witness: DhcpWitness;
  /** Ports to listen on; tests may move them. */
  ports?: { dhcp: number; pxe: number };
  /** The loop's turns, in which overload shedding counts datagrams (shed.ts); tests drive their own. */
  loop?: LoopTurns;
}

/** The client's address as a reply shows it: the lease (full mode), else the one it already has (ciaddr); null in a proxy OFFER. */
function clientAddress(reply: DhcpPacket, req: DhcpPacket): string | null {
  if (reply.yiaddr !== "0.0.0.0") return reply.yiaddr;
  return req.ciaddr !== "0.0.0.0" ? req.ciaddr : null;
}

export class DhcpService implements Service {
  readonly name = "dhcp";
  private readonly log: Logger;
  private readonly metrics: DhcpMetrics;
  private readonly sockets: Socket[] = [];
  private pool: LeasePool | undefined;
  private env: DhcpEnv | undefined;
  /** Proxy OFFERs waiting out the hold, by client MAC and xid. */
  private readonly held = new Map<string, NodeJS.Timeout>();
  /** Overload shedding of new DISCOVERs (full mode). */
  private readonly shedder: Shedder;
  private shedLogged = false;

  constructor(
    private readonly ctx: ServerContext,
    private readonly opts: DhcpServiceOptions,
  ) {
    this.log = ctx.log.child({ svc: "dhcp" });
    this.metrics = dhcpMetrics(ctx.metrics);
    this.shedder = new Shedder(opts.loop);
  }

  /** Sets the server address the answers use (start() does this from the interface; tests call it directly). */
  configure(serverIp: string): void {
    const cfg = this.ctx.config;
    const root = cfg.tftp.root;
    this.env = {
      serverIp,
      httpBase: bootBaseUrl(cfg.http.publicUrl, `${serverIp}:${this.opts.httpPort()}`),
      hasLoader: (name) => existsSync(join(root, name)),
      uefiLoader: effectiveUefiLoader(cfg.dhcp.mode, cfg.dhcp.uefiLoader),
    };
    this.pool =
      LEASING_MODES.includes(cfg.dhcp.mode)
        ? new LeasePool({ ...cfg.dhcp.pool, staticLeases: cfg.dhcp.staticLeases }, this.ctx.store.leases, serverIp, this.ctx.config.name)
        : undefined;
  }

  async start(): Promise<string> {
    const cfg = this.ctx.config;
    const { ip, index } = interfaceInfo(cfg.listen.interface);
    this.configure(ip);
    const adopted = await this.pool?.adoptUnowned();
    if (adopted) this.log.info({ leases: adopted }, "leases from before leases had a server (server '') in this pool's range are now this server's");
    const ports = this.opts.ports ?? { dhcp: 67, pxe: 4011 };
    for (const port of [ports.dhcp, ports.pxe]) {
      const sock = await boundSocket(port, index).catch(async (err: unknown) => {
        await this.stop(); // the socket bound before this one
        throw err;
      });
      const kind: 67 | 4011 = port === ports.dhcp ? 67 : 4011;
      sock.on("message", (msg, rinfo) => void this.receive(sock, kind, msg, rinfo)); // receive() never rejects
      sock.on("error", (err) => this.log.error({ err, port }, "socket error"));
      this.sockets.push(sock);
    }
    return `${cfg.dhcp.mode} on ${cfg.listen.interface} (${ip}) udp ${ports.dhcp},${ports.pxe}`;
  }

  async stop(): Promise<void> {
    for (const t of this.held.values()) clearTimeout(t);
    this.held.clear();
    for (const s of this.sockets.splice(0)) await new Promise<void>((r) => s.close(() => r()));
  }

  /**
   * A socket's message handler (tests drive it with a socket double): never rejects and
   * never throws. Datagrams from port 0 (which no reply can reach, and which make
   * dgram's send throw) are dropped before decoding.
   */
  async receive(sock: Socket, port: 67 | 4011, msg: Buffer, rinfo: RemoteInfo): Promise<void> {
    try {
      this.shedder.datagram();
      if (rinfo.port === 0) return this.drop("source-port-0", { port, from: rinfo.address });
      const out = await this.handle(msg, port);
      if (!out) return;
      const to = replyDestination(out.to, rinfo);
      if ("drop" in to) return this.drop(to.drop, { port, from: `${rinfo.address}:${rinfo.port}` });
      const delay = out.kind === "proxy-offer" ? this.ctx.config.dhcp.proxyOfferDelayMs : 0;
      if (delay === 0) return this.send(sock, out, to);
      // A retransmitted DISCOVER (same xid) neither postpones nor doubles the OFFER already held for it.
      const key = `${out.mac}/${out.xid}`;
      if (this.held.has(key)) return this.drop("held-already", { port, mac: out.mac });
      if (this.held.size >= MAX_HELD_OFFERS) return this.drop("hold-full", { port, mac: out.mac });
      this.held.set(
        key,
        setTimeout(() => {
          this.held.delete(key);
          this.send(sock, out, to);
        }, delay),
      );
    } catch (err) {
      this.metrics.drops.inc({ reason: "error" });
      this.log.error({ err, port, from: `${rinfo.address}:${rinfo.port}` }, "unexpected error handling a datagram");
    }
  }

  /** Whether a new DISCOVER is shed now (shed.ts); a change of state is logged. */
  private overloaded(): boolean {
    const shed = this.shedder.shedding;
    if (shed !== this.shedLogged) {
      this.shedLogged = shed;
      this.log.warn(shed ? "overloaded: shedding new DISCOVERs, finishing started handshakes" : "load back to normal: answering DISCOVERs again");
    }
    return shed;
  }

  private drop(reason: string, detail: Record<string, unknown>): void {
    this.metrics.drops.inc({ reason });
    this.log.debug(detail, `dropped: ${reason}`);
  }

  /** dgram's send throws synchronously on a bad port or address and on a closed socket, and fails later on a routing error: both are counted. */
  private send(sock: Socket, out: { bytes: Buffer; kind: string }, to: Destination): void {
    const failed = (err: unknown) => {
      this.metrics.drops.inc({ reason: "send-error" });
      this.log.warn({ err, to, kind: out.kind }, "send failed");
    };
    try {
      sock.send(out.bytes, to.port, to.address, (err) => {
        if (err) failed(err);
        else this.metrics.answers.inc({ kind: out.kind });
      });
    } catch (err) {
      failed(err);
    }
  }

  /**
   * One datagram in, at most one reply out. Never throws: a bad packet or a failure in the
   * decision is logged and counted as a drop.
   */
  private async handle(msg: Buffer, port: 67 | 4011): Promise<{ bytes: Buffer; to: Destination | "source"; kind: string; mac: string; xid: number } | undefined> {
    const d = decode(msg);
    if (!d.ok) {
      this.metrics.drops.inc({ reason: "malformed" });
      this.log.debug({ port, error: d.error, bytes: msg.length }, "malformed packet dropped");
      return undefined;
    }
    const req = d.packet;
    if (req.op !== 1 || req.htype !== 1 || req.hlen !== 6) {
      this.metrics.drops.inc({ reason: "not-a-request" });
      return undefined;
    }
    const type = messageType(req);
    // Full mode only: there a DISCOVER costs a store write; a proxy OFFER costs a timer (MAX_HELD_OFFERS bounds those).
    if (this.pool && type === MessageType.DISCOVER && this.overloaded()) {
      this.metrics.drops.inc({ reason: "overload" });
      return undefined;
    }
    try {
      const answer = await this.decide(req, port);
      this.witness(req, answer);
      // The fields every line of this exchange carries, built only for a line that is written (no child logger per packet).
      const who = () => ({ mac: macOf(req), type: messageTypeName(type), port });
      if (!answer.send) {
        this.metrics.drops.inc({ reason: answer.counted ?? (answer.notable ? "no-boot" : "ignored") });
        if (answer.notable) this.log.info({ ...who(), arch: answer.machine?.arch, vendorClass: answer.machine?.vendorClass }, `no answer: ${answer.reason}`);
        else if (this.log.isLevelEnabled("debug")) this.log.debug(who(), `ignored: ${answer.reason}`);
        return undefined;
      }
      const bytes = encode(answer.packet);
      if (this.log.isLevelEnabled("info"))
        this.log.info(
          { ...who(), kind: answer.kind, yiaddr: answer.packet.yiaddr, file: answer.packet.file || undefined, arch: answer.machine.arch },
          `${answer.kind}${answer.packet.file ? ` ${answer.packet.file}` : ""}`,
        );
      return { bytes, to: answer.to, kind: answer.kind, mac: macOf(req), xid: req.xid };
    } catch (err) {
      this.metrics.drops.inc({ reason: "error" });
      this.log.warn({ err, port }, "request failed");
      return undefined;
    }
  }

  /**
   * Tells the boot service what this exchange shows: a boot answer of ours (with the client's
   * address when the reply carries it), or, in proxy mode, a REQUEST to the LAN's server that
   * names the address the client takes after our address-less OFFER.
   */
  private witness(req: DhcpPacket, answer: Answer): void {
    const mac = macOf(req);
    // A stranger in reserved mode vouches for nothing, not even the address it asks for.
    if (!answer.send && answer.counted === NOT_RESERVED) return;
    if (answer.send && answer.choice?.boot) return this.opts.witness.dhcpAnswered(mac, clientAddress(answer.packet, req));
    const address = messageType(req) === MessageType.REQUEST ? requestedAddress(req) : undefined;
    if (!answer.send && address) this.opts.witness.dhcpRequested(mac, address);
  }

  private async decide(req: DhcpPacket, port: 67 | 4011): Promise<Answer> {
    const env = this.env!;
    if (this.ctx.config.dhcp.mode === "reserved") {
      // Any active job, not only one that may still boot: the rescue system renews its lease all through the restore.
      const m = identify(req);
      const found = await activeJobForMachine(this.ctx.store, m.mac, m.smbiosUuid);
      const silence = reservedSilence(m.mac, { staticLease: this.pool!.hasStatic(m.mac), job: found?.job.id });
      if (silence) return { send: false, reason: silence, notable: false, machine: m, counted: NOT_RESERVED };
    }
    if (port === 4011 || !this.pool) return proxyAnswer(req, port, env);
    return fullAnswer(req, await this.pool.decide(req), env);
  }
}
