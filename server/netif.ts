/**
 * The boot interface, as the DHCP server and Wake-on-LAN use it: its IPv4 address and kernel
 * index, and a UDP socket tied to it with SO_BINDTOIFINDEX (a socket on 0.0.0.0 without the
 * device binding would hear, and send broadcasts out of, whichever NIC routing picks).
 */
import type { Socket } from "node:dgram";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { hostname, networkInterfaces } from "node:os";
import { UserError } from "./errors.ts";

const SOL_SOCKET = 1;
const SO_BINDTOIFINDEX = 62;
const require = createRequire(import.meta.url);
const { setsockopt } = require("sockopt") as { setsockopt(s: Socket, level: number, name: number, value: number): void };

/** The first IPv4 address of `iface`, and its kernel index. */
export function interfaceInfo(iface: string): { ip: string; index: number } {
  const addr = networkInterfaces()[iface]?.find((a) => a.family === "IPv4");
  if (!addr) throw new UserError(`listen.interface ${iface}: no such interface with an IPv4 address (ip -br addr lists them)`, 2);
  const index = Number(readFileSync(`/sys/class/net/${iface}/ifindex`, "utf8").trim());
  return { ip: addr.address, index };
}

/** The host part of the address booting machines reach this server at: the boot interface's, else the listen address, else the host name. */
export function bootHost(listen: { interface: string; address: string }): string {
  return listen.interface ? interfaceInfo(listen.interface).ip : listen.address === "0.0.0.0" ? hostname() : listen.address;
}

/** Ties a bound UDP socket to the interface `index` (after bind(): the socket needs its handle). */
export function bindToInterface(sock: Socket, index: number): void {
  setsockopt(sock, SOL_SOCKET, SO_BINDTOIFINDEX, index);
}
