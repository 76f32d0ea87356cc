/**
 * A DHCP relay flooding a full-mode server, run inside a namespace: from <relay>:67 (giaddr =
 * <relay>) it takes <clients> machines through DISCOVER/OFFER/REQUEST/ACK over and over for
 * <ms>, all at once, and prints every ACK as a JSON line {mac, ip} the moment it arrives.
 *   node --import tsx dhcp-relay-clients.ts <relay> <server> <clients> <ms>
 * Other arguments: usage, exit 2 (never a run without end: test/unit/helpers/dhcp-load.test.ts).
 */
import { createSocket } from "node:dgram";
import { isIPv4 } from "node:net";
import { type DhcpPacket, MessageType, Opt, decode, encode, ipBytes, macOf, messageType } from "../../../server/dhcp/codec.ts";

const [relay = "", server = "", count, ms] = process.argv.slice(2);
const clients = Number(count);
if (!isIPv4(relay) || !isIPv4(server) || !Number.isInteger(clients) || clients < 1 || clients > 65_535 || !(Number(ms) > 0)) {
  process.stderr.write("usage: dhcp-relay-clients.ts <relay ip> <server ip> <clients> <ms>\n");
  process.exit(2);
}
const chaddr = (n: number) => Buffer.from([0x52, 0x54, 0x00, 0x65, n >> 8, n & 255, ...Array<number>(10).fill(0)]);
const packet = (n: number, type: number, opts: Array<[number, Buffer]> = []): Buffer => {
  const p: DhcpPacket = {
    op: 1, htype: 1, hlen: 6, hops: 1, xid: n, secs: 0, flags: 0,
    ciaddr: "0.0.0.0", yiaddr: "0.0.0.0", siaddr: "0.0.0.0", giaddr: relay,
    chaddr: chaddr(n), sname: "", file: "", options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([type])], ...opts]),
  };
  return encode(p);
};
const sock = createSocket({ type: "udp4" });
const send = (b: Buffer) => sock.send(b, 67, server);
const until = Date.now() + Number(ms);
sock.on("message", (msg) => {
  const d = decode(msg);
  if (!d.ok || d.packet.op !== 2) return;
  const p = d.packet;
  const type = messageType(p);
  if (type === MessageType.OFFER) send(packet(p.xid, MessageType.REQUEST, [[Opt.SERVER_ID, ipBytes(server)], [Opt.REQUESTED_IP, ipBytes(p.yiaddr)]]));
  else if (type === MessageType.ACK) {
    process.stdout.write(`${JSON.stringify({ mac: macOf(p), ip: p.yiaddr })}\n`);
    if (Date.now() < until) send(packet(p.xid, MessageType.DISCOVER));
  }
});
// A machine whose packets were lost starts over every 200 ms (a server under load sheds DISCOVERs).
const tick = setInterval(() => {
  if (Date.now() >= until) {
    clearInterval(tick);
    setTimeout(() => sock.close(), 500);
    return;
  }
  for (let n = 1; n <= clients; n++) send(packet(n, MessageType.DISCOVER));
}, 200);
sock.bind(67, relay, () => {
  for (let n = 1; n <= clients; n++) send(packet(n, MessageType.DISCOVER));
});
