/**
 * The proxyDHCP follow-up on port 4011 at a fixed offered rate, for bench/dhcp.ts (run inside
 * its client namespace; prints one JSON line): OVMF's own PXE REQUEST (the captured DISCOVER of
 * test/unit/dhcp/fixtures, as the lab's OVMF sent it to dnsmasq on 4011: ciaddr set, no option
 * 43), each from one of `clients` MACs with its own xid, to <server>:4011; counts the ACKs that
 * answer a request within 2 s. `rate` 0: as fast as the socket takes them.
 *   node --import tsx bench/pxe-4011.ts <server ip> <client ip> <rate/s> <seconds> <clients>
 */
import { createSocket } from "node:dgram";
import { MessageType, Opt, decode, encode } from "../server/dhcp/codec.ts";
import { fixture } from "../test/unit/dhcp/packets.ts";

const [server, ciaddr, rateArg, secondsArg, clientsArg] = process.argv.slice(2);
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const clients = Number(clientsArg);
if (!server || !ciaddr || !(rate >= 0) || !(seconds > 0) || !(clients > 0)) {
  process.stderr.write("usage: pxe-4011.ts <server ip> <client ip> <rate/s, 0: max> <seconds> <clients>\n");
  process.exit(2);
}
const DROP_MS = 2000;
const XID = 4;
const CHADDR = 28;

const p = fixture("uefi-pxe-discover");
p.options.set(Opt.MESSAGE_TYPE, Buffer.from([MessageType.REQUEST]));
p.ciaddr = ciaddr;
const template = encode(p);

const sock = createSocket("udp4");
const pending = new Map<number, number>();
let sent = 0;
let acked = 0;
let late = 0;
sock.on("message", (msg) => {
  const d = decode(msg);
  if (!d.ok || d.packet.options.get(Opt.MESSAGE_TYPE)?.[0] !== MessageType.ACK) return;
  const at = pending.get(d.packet.xid);
  if (at === undefined) return;
  pending.delete(d.packet.xid);
  if (performance.now() - at <= DROP_MS) acked++;
  else late++;
});
await new Promise<void>((r) => sock.bind(0, r));

/** Request n: client n % clients (its MAC's last three bytes), xid n + 1. */
function send(n: number): Promise<void> {
  const b = Buffer.from(template);
  b.writeUInt32BE(n + 1, XID);
  b.writeUIntBE(n % clients, CHADDR + 3, 3);
  pending.set(n + 1, performance.now());
  return new Promise((resolve, reject) => sock.send(b, 4011, server, (err) => (err ? reject(err) : resolve())));
}

const start = performance.now();
const end = start + seconds * 1000;
while (performance.now() < end) {
  // Catch up to the offered rate each turn (timers fire at best every ~1 ms).
  const due = rate ? Math.floor(((performance.now() - start) / 1000) * rate) : sent + 64;
  while (sent < due) await send(sent++);
  await new Promise((r) => setTimeout(r, rate ? 1 : 0));
}
await new Promise((r) => setTimeout(r, DROP_MS));
sock.close();
const elapsed = (end - start) / 1000;
process.stdout.write(`${JSON.stringify({ sent, acked, late, offered: sent / elapsed, ackedPerSecond: acked / elapsed })}\n`);
