/**
 * The DHCP decision layer: given a decoded request (and, in full mode, the lease the pool
 * picked), what to send and where. Pure: no sockets, no store. The server (server.ts) is a
 * pipeline decode → decide → send, and each skip carries a reason it logs.
 */
import {
  type DhcpPacket,
  MessageType,
  Opt,
  encodeSubOptions,
  ipBytes,
  messageType,
  messageTypeName,
  optIp,
  replyTo,
  u32Bytes,
} from "./codec.ts";
import type { UefiLoader } from "../config/schema.ts";
import { type BootChoice, type Machine, chooseBoot, identify } from "./firmware.ts";

export interface DhcpEnv {
  /** This server's address on the boot interface (server identifier, siaddr). */
  serverIp: string;
  /** Base URL booting machines reach the HTTP service at, e.g. http://10.0.0.5:8080 */
  httpBase: string;
  hasLoader: (name: string) => boolean;
  /** What x64 UEFI PXE clients get (config dhcp.uefiLoader as effectiveUefiLoader resolves it for the mode). */
  uefiLoader: UefiLoader;
}

export interface Destination {
  address: string;
  port: number;
}

export type Answer =
  | { send: true; kind: string; packet: DhcpPacket; to: Destination | "source"; machine: Machine; choice?: BootChoice }
  | {
      send: false;
      reason: string;
      /** worth an info line (a boot client we could not serve), not just debug */
      notable: boolean;
      machine?: Machine;
      /** The drop's reason in lifeboat_dhcp_dropped_total, when not "no-boot" / "ignored". */
      counted?: string;
    };

const BROADCAST_FLAG = 0x8000;
const skip = (reason: string, notable = false, machine?: Machine): Answer => ({ send: false, reason, notable, machine });

/** RFC 2131 4.1: via the relay if any, else unicast to a configured client, else broadcast. */
function destinationFor(req: DhcpPacket, type: number): Destination {
  if (req.giaddr !== "0.0.0.0") return { address: req.giaddr, port: 67 };
  if (type !== MessageType.NAK && req.ciaddr !== "0.0.0.0") return { address: req.ciaddr, port: 68 };
  return { address: "255.255.255.255", port: 68 };
}

/** Adds what a PXE / HTTP-boot client needs to boot from `choice` to reply `r`. */
function addBoot(r: DhcpPacket, m: Machine, choice: Extract<BootChoice, { boot: true }>, env: DhcpEnv, proxy: boolean): void {
  r.file = choice.file;
  // iPXE only takes a proxy reply with a non-zero siaddr and a file name ("has PXE options",
  // iPXE dhcp.c), even when the file is an http:// URL.
  r.siaddr = env.serverIp;
  if (choice.via === "tftp") r.sname = env.serverIp;
  // UEFI HTTP boot only accepts an offer that says HTTPClient back (and takes the URL from `file`).
  if (m.http) r.options.set(Opt.VENDOR_CLASS, Buffer.from("HTTPClient"));
  else if (proxy) r.options.set(Opt.VENDOR_CLASS, Buffer.from("PXEClient"));
  // Echo option 97 only when the client sent it: some ROMs reject a reply with a UUID they did not send.
  if (proxy && m.uuidOption) r.options.set(Opt.CLIENT_UUID, Buffer.from(m.uuidOption));
  // PXE option 43: discovery control 8 = "boot the file in this packet, skip boot-server
  // discovery", for BIOS PXE ROMs only. Left out for iPXE: given any PXE menu it ignores
  // the file name (pxe-lab pitfall 6). Left out for UEFI: edk2 ignores proxy offers that
  // bypass discovery and instead follows up on port 4011 (Pixiecore's finding, seen in the lab).
  if (proxy && m.pxe && !m.ipxe && m.arch === 0)
    r.options.set(Opt.VENDOR_SPECIFIC, encodeSubOptions(new Map([[6, Buffer.from([8])]])));
}

/** A NAK with our server identifier and a reason (broadcast: the client may have no address). */
function nak(req: DhcpPacket, message: string, env: DhcpEnv, m: Machine, kind: string): Answer {
  const r = replyTo(req, MessageType.NAK);
  r.options.set(Opt.SERVER_ID, ipBytes(env.serverIp));
  r.options.set(Opt.MESSAGE, Buffer.from(message));
  r.flags |= req.giaddr !== "0.0.0.0" ? BROADCAST_FLAG : 0;
  return { send: true, kind, packet: r, to: destinationFor(req, MessageType.NAK), machine: m };
}

/**
 * proxyDHCP (port 67 and 4011): only PXE and HTTP-boot clients, no address. On 67 a
 * DISCOVER gets an OFFER with no yiaddr; on 4011 a REQUEST (or INFORM) gets an ACK sent
 * back to where it came from. The BIOS iPXE ROM sends only "PXEClient" as option 60 on
 * 4011 (no arch) and any client got there because we sent it: 4011 does not require 60.
 */
export function proxyAnswer(req: DhcpPacket, port: 67 | 4011, env: DhcpEnv): Answer {
  const type = messageType(req);
  const m = identify(req);
  if (port === 67) {
    // An OS client that sent a PXE vendor class and took our address-less OFFER for a lease asks us for
    // "its" address (ISC dhclient, udhcpc). Only a NAK from us makes it start over at once: it ignores the
    // LAN server's NAK and would retry for 10 s or give up. A PXE ROM never names us on 67.
    if (type === MessageType.REQUEST && optIp(req, Opt.SERVER_ID) === env.serverIp && (optIp(req, Opt.REQUESTED_IP) ?? "0.0.0.0") === "0.0.0.0")
      return nak(req, "Lifeboat is a PXE proxy: ask the LAN's DHCP server for an address", env, m, "proxy-nak");
    if (type !== MessageType.DISCOVER) return skip(`${messageTypeName(type) ?? `type ${type}`} on 67 is for the LAN's DHCP server`);
    if (!m.pxe && !m.http) return skip(`not a network-boot client (option 60 ${JSON.stringify(m.vendorClass ?? "")})`);
  } else if (type !== MessageType.REQUEST && type !== MessageType.INFORM) {
    return skip(`${messageTypeName(type) ?? `type ${type}`} on 4011`);
  }
  const choice = chooseBoot(m, env.httpBase, env.hasLoader, env.uefiLoader);
  if (!choice.boot) return skip(choice.reason, true, m);
  const r = replyTo(req, port === 67 ? MessageType.OFFER : MessageType.ACK);
  r.options.set(Opt.SERVER_ID, ipBytes(env.serverIp));
  addBoot(r, m, choice, env, true);
  if (port === 67) {
    r.flags |= BROADCAST_FLAG;
    return { send: true, kind: "proxy-offer", packet: r, to: destinationFor(req, MessageType.OFFER), machine: m, choice };
  }
  return { send: true, kind: "proxy-ack", packet: r, to: req.giaddr !== "0.0.0.0" ? { address: req.giaddr, port: 67 } : "source", machine: m, choice };
}

export interface LeaseOffer {
  ip: string;
  leaseSeconds: number;
  netmask: string;
  router: string;
  dns: string[];
  hostname?: string;
}

/** The pool's verdict for one full-mode request, computed by the server from the lease store. */
export type LeaseVerdict =
  | { kind: "offer"; lease: LeaseOffer }
  | { kind: "ack"; lease: LeaseOffer }
  | { kind: "inform"; lease: Omit<LeaseOffer, "ip" | "leaseSeconds"> }
  | { kind: "nak"; message: string }
  | { kind: "none"; reason: string };

/**
 * Full DHCP: the reply for a DISCOVER / REQUEST / INFORM once the pool has decided, with
 * the same PXE answer as proxy mode for boot clients (in the same packet).
 */
export function fullAnswer(req: DhcpPacket, verdict: LeaseVerdict, env: DhcpEnv): Answer {
  const m = identify(req);
  if (verdict.kind === "none") return skip(verdict.reason, false, m);
  if (verdict.kind === "nak") return nak(req, verdict.message, env, m, "nak");
  const type = verdict.kind === "offer" ? MessageType.OFFER : MessageType.ACK;
  const r = replyTo(req, type);
  const l = verdict.lease;
  r.options.set(Opt.SERVER_ID, ipBytes(env.serverIp));
  r.options.set(Opt.SUBNET_MASK, ipBytes(l.netmask));
  if (l.router) r.options.set(Opt.ROUTER, ipBytes(l.router));
  if (l.dns.length) r.options.set(Opt.DNS, Buffer.concat(l.dns.map(ipBytes)));
  if (l.hostname) r.options.set(Opt.HOSTNAME, Buffer.from(l.hostname));
  if (verdict.kind === "inform") {
    r.ciaddr = req.ciaddr;
  } else {
    const lease = verdict.lease as LeaseOffer;
    r.yiaddr = lease.ip;
    r.options.set(Opt.LEASE_TIME, u32Bytes(lease.leaseSeconds));
    r.options.set(Opt.RENEWAL_TIME, u32Bytes(Math.floor(lease.leaseSeconds / 2)));
    r.options.set(Opt.REBINDING_TIME, u32Bytes(Math.floor((lease.leaseSeconds * 7) / 8)));
  }
  let choice: BootChoice | undefined;
  if (m.pxe || m.http) {
    choice = chooseBoot(m, env.httpBase, env.hasLoader, env.uefiLoader);
    if (choice.boot) addBoot(r, m, choice, env, false);
  }
  const kind = verdict.kind === "offer" ? "offer" : verdict.kind === "ack" ? "ack" : "inform-ack";
  return { send: true, kind, packet: r, to: destinationFor(req, type), machine: m, choice };
}

/** What dhcp.mode reserved knows of a MAC: its static lease, and its active job (by MAC, host or SMBIOS UUID). */
export interface Reservation {
  staticLease: boolean;
  /** The id of the machine's active job, if any. */
  job: string | undefined;
}

/**
 * dhcp.mode reserved: full DHCP, but only for a MAC the admin named (an active job, a static
 * lease); everyone else hears nothing, on 67 and 4011 alike, so Lifeboat can sit on a LAN where a
 * second DHCP server is forbidden. The reason for silence, or undefined to answer. Pure.
 */
export function reservedSilence(mac: string, r: Reservation): string | undefined {
  if (r.staticLease || r.job) return undefined;
  return `reserved mode: ${mac} has no active job and no static lease`;
}

/** The address a REQUEST asks for: option 50 (SELECTING / INIT-REBOOT) or ciaddr (RENEWING). */
export const requestedAddress = (req: DhcpPacket): string | undefined =>
  optIp(req, Opt.REQUESTED_IP) ?? (req.ciaddr !== "0.0.0.0" ? req.ciaddr : undefined);
