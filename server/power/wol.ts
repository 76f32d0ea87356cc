/**
 * Wake-on-LAN: a magic packet (6 bytes of 0xff, then the MAC 16 times) broadcast to UDP port
 * 9 on the boot interface (the one Lifeboat serves DHCP on, listen.interface), tied to it with
 * SO_BINDTOIFINDEX so it leaves by that NIC whatever the routes say. It can only power on,
 * and cannot tell whether the machine is on (a machine that is on ignores the packet).
 */
import { createSocket } from "node:dgram";
import { normalizeMac } from "../mac.ts";
import { bindToInterface, interfaceInfo } from "../netif.ts";
import { type PowerDriver, PowerError } from "./power.ts";

export const WOL_PORT = 9;

/** The magic packet for `mac` (pure). */
export function magicPacket(mac: string): Buffer {
  const bytes = Buffer.from(normalizeMac(mac).replaceAll(":", ""), "hex");
  return Buffer.concat([Buffer.alloc(6, 0xff), ...Array.from({ length: 16 }, () => bytes)]);
}

export class WolDriver implements PowerDriver {
  readonly kind = "wol";
  readonly can = { status: false, off: false, cycle: false, oneTimeBoot: false };

  constructor(
    private readonly mac: string,
    /** The boot interface (listen.interface). */
    private readonly iface: string,
  ) {}

  async status(): Promise<"unknown"> {
    return "unknown";
  }

  async on(): Promise<void> {
    if (!this.iface) throw new PowerError("unsupported", "Wake-on-LAN goes out on the boot interface: set listen.interface (--interface)");
    const { index } = interfaceInfo(this.iface);
    const sock = createSocket("udp4");
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once("error", reject);
        sock.bind({ address: "0.0.0.0", port: 0 }, () => resolve());
      });
      bindToInterface(sock, index);
      sock.setBroadcast(true);
      await new Promise<void>((resolve, reject) => sock.send(magicPacket(this.mac), WOL_PORT, "255.255.255.255", (err) => (err ? reject(err) : resolve())));
    } catch (err) {
      throw new PowerError("refused", `Wake-on-LAN on ${this.iface}: ${(err as Error).message}`);
    } finally {
      sock.close();
    }
  }

  private cannot(what: string): never {
    throw new PowerError("unsupported", `Wake-on-LAN can only power on, not ${what}: configure IPMI or Redfish (lifeboat hosts power-config)`);
  }

  async off(): Promise<void> {
    this.cannot("off");
  }

  async cycle(): Promise<void> {
    this.cannot("cycle");
  }

  async setOneTimeBoot(): Promise<void> {
    this.cannot("set a one-time boot");
  }

  async clearOneTimeBoot(): Promise<void> {
    this.cannot("clear a one-time boot");
  }
}
