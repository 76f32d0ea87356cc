/** Real DHCP packets captured from QEMU firmware (fixtures/capture.ts) and builders for crafted ones. */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type DhcpPacket, MessageType, Opt, decode, encode } from "../../../server/dhcp/codec.ts";

const here = dirname(fileURLToPath(import.meta.url));

export type Fixture = "bios-ipxe-rom-discover" | "uefi-pxe-discover" | "uefi-httpboot-discover";

export function fixtureBytes(name: Fixture): Buffer {
  return Buffer.from(readFileSync(join(here, "fixtures", `${name}.hex`), "utf8").trim(), "hex");
}

export function fixture(name: Fixture): DhcpPacket {
  const d = decode(fixtureBytes(name));
  if (!d.ok) throw new Error(`${name}: ${d.error}`);
  return d.packet;
}

/** A client request with the given options (code → bytes or string). */
export function request(type: number, opts: Record<number, Buffer | string | undefined> = {}, over: Partial<DhcpPacket> = {}): DhcpPacket {
  const chaddr = Buffer.alloc(16);
  Buffer.from([0x52, 0x54, 0x00, 0x07, 0x00, 0x42]).copy(chaddr);
  const options = new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([type])]]);
  for (const [k, v] of Object.entries(opts)) if (v !== undefined) options.set(Number(k), typeof v === "string" ? Buffer.from(v) : v);
  return {
    op: 1, htype: 1, hlen: 6, hops: 0, xid: 0x1234abcd, secs: 0, flags: 0,
    ciaddr: "0.0.0.0", yiaddr: "0.0.0.0", siaddr: "0.0.0.0", giaddr: "0.0.0.0",
    chaddr, sname: "", file: "", options, ...over,
  };
}

export const arch = (n: number) => Buffer.from([n >> 8, n & 255]);
export const pxeDiscover = (a: number, extra: Record<number, Buffer | string | undefined> = {}) =>
  request(MessageType.DISCOVER, { [Opt.CLIENT_ARCH]: arch(a), [Opt.VENDOR_CLASS]: `PXEClient:Arch:${String(a).padStart(5, "0")}:UNDI:003000`, ...extra });

/** OVMF's follow-up on 4011 (its PXE DISCOVER as a REQUEST from 10.231.7.9): answered back to its source address and port. */
export const pxeRequest = (() => {
  const p = fixture("uefi-pxe-discover");
  p.options.set(Opt.MESSAGE_TYPE, Buffer.from([MessageType.REQUEST]));
  p.ciaddr = "10.231.7.9";
  return encode(p);
})();
