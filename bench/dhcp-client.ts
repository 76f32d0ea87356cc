/**
 * DHCP load client for bench/dhcp.ts, run inside the client namespace: N machines (distinct
 * MACs) one after another do DISCOVER → OFFER → REQUEST → ACK. Prints one JSON line.
 *   node --import tsx bench/dhcp-client.ts <count> <macPrefixByte>
 */
import { createSocket } from "node:dgram";
import { MessageType, Opt, decode, encode, ipBytes, messageType, optIp } from "../server/dhcp/codec.ts";

const count = Number(process.argv[2] ?? 200);
const prefix = Number(process.argv[3] ?? 1);
const sock = createSocket({ type: "udp4", reuseAddr: true });
const waiters = new Map<number, (p: ReturnType<typeof decode>) => void>();
sock.on("message", (m) => {
  const d = decode(m);
  if (d.ok) waiters.get(d.packet.xid)?.(d);
});

function packet(i: number, type: number, extra: Array<[number, Buffer]> = []) {
  const chaddr = Buffer.alloc(16);
  Buffer.from([0x52, 0x54, prefix, 7, i >> 8, i & 255]).copy(chaddr);
  return {
    op: 1, htype: 1, hlen: 6, hops: 0, xid: (prefix << 24) | i, secs: 0, flags: 0x8000,
    ciaddr: "0.0.0.0", yiaddr: "0.0.0.0", siaddr: "0.0.0.0", giaddr: "0.0.0.0", chaddr, sname: "", file: "",
    options: new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([type])], ...extra]),
  };
}

function ask(p: ReturnType<typeof packet>, want: number): Promise<ReturnType<typeof decode> | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      waiters.delete(p.xid);
      resolve(undefined);
    }, 2000);
    waiters.set(p.xid, (d) => {
      if (!d.ok || messageType(d.packet) !== want) return;
      clearTimeout(t);
      waiters.delete(p.xid);
      resolve(d);
    });
    sock.send(encode(p), 67, "255.255.255.255");
  });
}

sock.bind(68, "0.0.0.0", async () => {
  sock.setBroadcast(true);
  let ok = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 1; i <= count; i++) {
    const offer = await ask(packet(i, MessageType.DISCOVER), MessageType.OFFER);
    if (!offer?.ok) continue;
    const sid = optIp(offer.packet, Opt.SERVER_ID)!;
    const ack = await ask(packet(i, MessageType.REQUEST, [[Opt.REQUESTED_IP, ipBytes(offer.packet.yiaddr)], [Opt.SERVER_ID, ipBytes(sid)]]), MessageType.ACK);
    if (ack?.ok) ok++;
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(`${JSON.stringify({ count, ok, ms })}\n`);
  sock.close();
});
