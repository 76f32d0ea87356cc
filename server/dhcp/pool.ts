/**
 * Full-mode address pool: static leases by MAC from the config, dynamic ones from
 * pool.start..pool.end, all kept in the store so they survive a restart.
 */
import type { Config } from "../config/schema.ts";
import { normalizeMac } from "../mac.ts";
import type { LeaseRecord, LeaseRepo } from "../store/types.ts";
import { type DhcpPacket, MessageType, Opt, intToIp, ipToInt, macOf, messageType, optIp } from "./codec.ts";
import { type LeaseOffer, type LeaseVerdict, requestedAddress } from "./decision.ts";

/** How long an offered address is held for the client's REQUEST. */
const OFFER_HOLD_MS = 60_000;
/** How long an address a client DECLINEd (in use by someone else) is left alone. */
const DECLINE_HOLD_MS = 10 * 60_000;

type PoolConfig = Config["dhcp"]["pool"] & { staticLeases: Config["dhcp"]["staticLeases"] };

export class LeasePool {
  private readonly start: number;
  private readonly end: number;
  private readonly mask: number;
  private readonly statics = new Map<string, { ip: string; hostname?: string }>();
  private readonly staticIps = new Set<string>();

  constructor(
    private readonly cfg: PoolConfig,
    private readonly repo: LeaseRepo,
    private readonly serverIp: string,
    private readonly now: () => number = Date.now,
  ) {
    if (!cfg.start || !cfg.end) throw new Error("dhcp.pool.start and dhcp.pool.end are required for dhcp.mode full");
    this.start = ipToInt(cfg.start);
    this.end = ipToInt(cfg.end);
    this.mask = ipToInt(cfg.netmask);
    if (this.end < this.start) throw new Error(`dhcp.pool: end ${cfg.end} is before start ${cfg.start}`);
    if (((this.start ^ this.end) & this.mask) !== 0) throw new Error(`dhcp.pool: ${cfg.start}..${cfg.end} spans more than one ${cfg.netmask} subnet`);
    for (const s of cfg.staticLeases) {
      const mac = normalizeMac(s.mac);
      this.statics.set(mac, { ip: s.ip, hostname: s.hostname });
      this.staticIps.add(s.ip);
    }
  }

  private inSubnet(ip: string): boolean {
    return ((ipToInt(ip) ^ this.start) & this.mask) === 0;
  }

  private inRange(ip: string): boolean {
    const n = ipToInt(ip);
    return n >= this.start && n <= this.end;
  }

  private offerFor(ip: string, hostname?: string | null): LeaseOffer {
    return {
      ip,
      leaseSeconds: this.cfg.leaseSeconds,
      netmask: this.cfg.netmask,
      router: this.cfg.router,
      dns: this.cfg.dns,
      ...(hostname ? { hostname } : {}),
    };
  }

  private live(l: LeaseRecord | undefined): l is LeaseRecord {
    return l !== undefined && Date.parse(l.expiresAt) > this.now();
  }

  /** Can `mac` have `ip`? In range, not static for someone else, not held by another MAC. */
  private async free(ip: string, mac: string): Promise<boolean> {
    if (ip === this.serverIp || !this.inRange(ip) || this.staticIps.has(ip)) return false;
    const cur = await this.repo.byIp(ip);
    return !this.live(cur) || (cur.mac === mac && cur.state !== "declined");
  }

  private async pick(mac: string, wanted: string | undefined): Promise<string | undefined> {
    const mine = await this.repo.byMac(mac);
    if (mine && (await this.free(mine.ip, mac))) return mine.ip;
    if (wanted && (await this.free(wanted, mac))) return wanted;
    // One read of the lease table, then a scan in memory (not a query per address).
    const held = new Map((await this.repo.list()).filter((l) => this.live(l)).map((l) => [l.ip, l]));
    for (let n = this.start; n <= this.end; n++) {
      const ip = intToIp(n);
      if (ip === this.serverIp || this.staticIps.has(ip)) continue;
      const cur = held.get(ip);
      if (!cur || (cur.mac === mac && cur.state !== "declined")) return ip;
    }
    return undefined;
  }

  private async hold(ip: string, mac: string, state: LeaseRecord["state"], ms: number, hostname: string | null = null) {
    await this.repo.put({ ip, mac, state, hostname, expiresAt: new Date(this.now() + ms).toISOString() });
  }

  /** Decides a full-mode request and records the lease change. */
  async decide(req: DhcpPacket): Promise<LeaseVerdict> {
    const type = messageType(req);
    const mac = macOf(req);
    if (req.giaddr !== "0.0.0.0" && !this.inSubnet(req.giaddr))
      return { kind: "none", reason: `no pool for relay ${req.giaddr}'s subnet` };
    const stat = this.statics.get(mac);
    const hostname = stat?.hostname ?? null;
    const base = { netmask: this.cfg.netmask, router: this.cfg.router, dns: this.cfg.dns };
    switch (type) {
      case MessageType.DISCOVER: {
        const ip = stat?.ip ?? (await this.pick(mac, optIp(req, Opt.REQUESTED_IP)));
        if (!ip) return { kind: "none", reason: `pool ${this.cfg.start}-${this.cfg.end} exhausted` };
        if (!stat) await this.hold(ip, mac, "offered", OFFER_HOLD_MS);
        return { kind: "offer", lease: this.offerFor(ip, hostname) };
      }
      case MessageType.REQUEST: {
        const sid = optIp(req, Opt.SERVER_ID);
        if (sid && sid !== this.serverIp) {
          // The client took another server's offer: let ours go.
          const mine = await this.repo.byMac(mac);
          if (mine?.state === "offered") await this.repo.remove(mine.ip);
          return { kind: "none", reason: `client chose server ${sid}` };
        }
        const ip = requestedAddress(req);
        if (!ip) return { kind: "nak", message: "no requested address" };
        if (stat) return ip === stat.ip ? { kind: "ack", lease: this.offerFor(ip, hostname) } : { kind: "nak", message: `${mac} has static address ${stat.ip}` };
        if (!this.inSubnet(ip)) return { kind: "nak", message: `${ip} is not on this network` };
        if (!(await this.free(ip, mac))) {
          // INIT-REBOOT for an address we know nothing about: stay silent (RFC 2131 4.3.2) unless it is someone else's.
          const cur = await this.repo.byIp(ip);
          if (!sid && !this.live(cur) && !this.inRange(ip)) return { kind: "none", reason: `unknown address ${ip} outside the pool` };
          return { kind: "nak", message: `${ip} is not available` };
        }
        await this.hold(ip, mac, "bound", this.cfg.leaseSeconds * 1000, hostname);
        return { kind: "ack", lease: this.offerFor(ip, hostname) };
      }
      case MessageType.RELEASE: {
        const cur = await this.repo.byIp(req.ciaddr);
        if (cur?.mac === mac) await this.repo.remove(req.ciaddr);
        return { kind: "none", reason: `released ${req.ciaddr}` };
      }
      case MessageType.DECLINE: {
        const ip = optIp(req, Opt.REQUESTED_IP);
        if (ip && this.inRange(ip)) await this.hold(ip, mac, "declined", DECLINE_HOLD_MS);
        return { kind: "none", reason: `declined ${ip ?? "?"}` };
      }
      case MessageType.INFORM:
        return { kind: "inform", lease: base };
      default:
        return { kind: "none", reason: `message type ${type ?? "missing"} is not for a server` };
    }
  }
}
