/**
 * Full-mode address pool: static leases by MAC from the config, dynamic ones from
 * pool.start..pool.end, all kept in the store so they survive a restart. Dynamic leases
 * belong to the client identifier (option 61) when the client sends one, else to the MAC.
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
/** How often expired rows are deleted (on the next request after this long). */
const PRUNE_EVERY_MS = 60_000;
/** An expired bound lease is kept this long, so a machine coming back is offered its old address. */
const BOUND_KEEP_MS = 24 * 3600_000;

/**
 * Who a lease belongs to: `id:<hex>` of option 61 when sent, else the MAC. A client
 * identifier that only restates the hardware address (type = htype, then chaddr: what iPXE
 * and busybox udhcpc send, while the PXE ROM before them sends none) is the MAC, so one
 * machine booting through ROM, iPXE and the rescue system holds one address.
 */
export function clientKey(req: DhcpPacket): string {
  const mac = macOf(req);
  const id = req.options.get(Opt.CLIENT_ID);
  if (!id || id.length === 0) return mac;
  const hw = req.chaddr.subarray(0, req.hlen);
  if (id.length === hw.length + 1 && id[0] === req.htype && id.subarray(1).equals(hw)) return mac;
  return `id:${id.toString("hex")}`;
}

type PoolConfig = Config["dhcp"]["pool"] & { staticLeases: Config["dhcp"]["staticLeases"] };

export class LeasePool {
  private readonly start: number;
  private readonly end: number;
  private readonly mask: number;
  private readonly statics = new Map<string, { ip: string; hostname?: string }>();
  private readonly staticIps = new Set<string>();
  private lastPrune = -Infinity;

  constructor(
    private readonly cfg: PoolConfig,
    private readonly repo: LeaseRepo,
    private readonly serverIp: string,
    /** This Lifeboat server's name (config name): the leases it gives are its own. */
    private readonly server: string,
    private readonly now: () => number = Date.now,
  ) {
    if (!cfg.start || !cfg.end) throw new Error("dhcp.pool.start and dhcp.pool.end are required for dhcp.mode full and reserved");
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

  /**
   * Leases written before leases had a server (store migration 0600 left them to server '') are
   * taken over by the server whose pool range holds their address: that is the LAN they were
   * given on, and only its server finds a client's lease by client (a lease nobody owns would
   * keep its address taken while its client got a second one). Leases of other ranges stay ''
   * for the server of their LAN. Run at start (DHCP service); returns how many were taken.
   */
  async adoptUnowned(): Promise<number> {
    const orphans = (await this.repo.list()).filter((l) => l.server === "" && this.inRange(l.ip));
    for (const l of orphans) await this.repo.put({ ...l, server: this.server });
    return orphans.length;
  }

  /** Does the config give this MAC (normalized) a static lease? */
  hasStatic(mac: string): boolean {
    return this.statics.has(mac);
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

  /** Can `client` have `ip`? In range, not static for someone else, not held by another client, not declined. */
  private async free(ip: string, client: string): Promise<boolean> {
    if (ip === this.serverIp || !this.inRange(ip) || this.staticIps.has(ip)) return false;
    const cur = await this.repo.byIp(ip);
    return !this.live(cur) || (cur.client === client && cur.state !== "declined");
  }

  private async pick(client: string, wanted: string | undefined): Promise<string | undefined> {
    const mine = await this.repo.byClient(client, this.server);
    if (mine && (await this.free(mine.ip, client))) return mine.ip;
    if (wanted && (await this.free(wanted, client))) return wanted;
    // One read of the lease table, then a scan in memory (not a query per address).
    const held = new Map((await this.repo.list()).filter((l) => this.live(l)).map((l) => [l.ip, l]));
    for (let n = this.start; n <= this.end; n++) {
      const ip = intToIp(n);
      if (ip === this.serverIp || this.staticIps.has(ip)) continue;
      const cur = held.get(ip);
      if (!cur || (cur.client === client && cur.state !== "declined")) return ip;
    }
    return undefined;
  }

  private async hold(ip: string, who: { client: string; mac: string }, state: LeaseRecord["state"], ms: number, hostname: string | null = null) {
    await this.repo.put({ ip, ...who, state, hostname, expiresAt: new Date(this.now() + ms).toISOString(), server: this.server });
  }

  /** Deletes expired rows, at most once a minute. */
  private async prune(): Promise<void> {
    const now = this.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    await this.repo.prune(new Date(now).toISOString(), new Date(now - BOUND_KEEP_MS).toISOString());
  }

  /** Decides a full-mode request and records the lease change. */
  async decide(req: DhcpPacket): Promise<LeaseVerdict> {
    const type = messageType(req);
    const mac = macOf(req);
    const who = { client: clientKey(req), mac };
    if (req.giaddr !== "0.0.0.0" && !this.inSubnet(req.giaddr))
      return { kind: "none", reason: `no pool for relay ${req.giaddr}'s subnet` };
    await this.prune();
    const stat = this.statics.get(mac);
    const hostname = stat?.hostname ?? null;
    const base = { netmask: this.cfg.netmask, router: this.cfg.router, dns: this.cfg.dns };
    switch (type) {
      case MessageType.DISCOVER: {
        const ip = stat?.ip ?? (await this.pick(who.client, optIp(req, Opt.REQUESTED_IP)));
        if (!ip) return { kind: "none", reason: `pool ${this.cfg.start}-${this.cfg.end} exhausted` };
        // A bound client asking again keeps its binding until it takes another offer (or its lease runs out).
        const cur = stat ? undefined : await this.repo.byIp(ip);
        if (!stat && !(this.live(cur) && cur.state === "bound" && cur.client === who.client)) await this.hold(ip, who, "offered", OFFER_HOLD_MS);
        return { kind: "offer", lease: this.offerFor(ip, hostname) };
      }
      case MessageType.REQUEST: {
        const sid = optIp(req, Opt.SERVER_ID);
        if (sid && sid !== this.serverIp) {
          // The client took another server's offer: let ours go.
          const mine = await this.repo.byClient(who.client, this.server);
          if (mine?.state === "offered") await this.repo.remove(mine.ip);
          return { kind: "none", reason: `client chose server ${sid}` };
        }
        const ip = requestedAddress(req);
        if (!ip) return { kind: "nak", message: "no requested address" };
        if (stat) return ip === stat.ip ? { kind: "ack", lease: this.offerFor(ip, hostname) } : { kind: "nak", message: `${mac} has static address ${stat.ip}` };
        if (!this.inSubnet(ip)) return { kind: "nak", message: `${ip} is not on this network` };
        if (!sid) {
          // INIT-REBOOT, RENEWING, REBINDING: a client bound here may only confirm its own address (RFC 2131 4.3.2).
          const mine = await this.repo.byClient(who.client, this.server);
          if (this.live(mine) && mine.state === "bound" && mine.ip !== ip) return { kind: "nak", message: `${ip} is not this client's address` };
        }
        if (!(await this.free(ip, who.client))) {
          // INIT-REBOOT for an address we know nothing about: stay silent (RFC 2131 4.3.2) unless it is someone else's.
          const cur = await this.repo.byIp(ip);
          if (!sid && !this.live(cur) && !this.inRange(ip)) return { kind: "none", reason: `unknown address ${ip} outside the pool` };
          return { kind: "nak", message: `${ip} is not available` };
        }
        await this.hold(ip, who, "bound", this.cfg.leaseSeconds * 1000, hostname);
        return { kind: "ack", lease: this.offerFor(ip, hostname) };
      }
      case MessageType.RELEASE: {
        const cur = await this.repo.byIp(req.ciaddr);
        if (cur?.client === who.client && cur.state !== "declined") await this.repo.remove(req.ciaddr);
        return { kind: "none", reason: `released ${req.ciaddr}` };
      }
      case MessageType.DECLINE: {
        // Only the client the address was given to can decline it: a stranger cannot take addresses away.
        const ip = optIp(req, Opt.REQUESTED_IP);
        const cur = ip ? await this.repo.byIp(ip) : undefined;
        if (!ip || cur?.client !== who.client || cur.state === "declined") return { kind: "none", reason: `DECLINE of ${ip ?? "?"}, not this client's address` };
        await this.hold(ip, who, "declined", DECLINE_HOLD_MS);
        return { kind: "none", reason: `declined ${ip}` };
      }
      case MessageType.INFORM:
        return { kind: "inform", lease: base };
      default:
        return { kind: "none", reason: `message type ${type ?? "missing"} is not for a server` };
    }
  }
}
