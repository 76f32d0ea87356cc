/**
 * A tiny DHCP test client run inside a namespace: sends packets (hex, comma-separated, on
 * argv) from 0.0.0.0:<listenPort> to <dest>:<destPort> and prints every reply heard within
 * <ms> after the last one as a JSON line. Send errors go to stderr and fail the run.
 *   node --import tsx dhcp-client.ts <hex,hex,...|-> <dest> <destPort> <listenPort> <ms>     (-: read the list from stdin)
 */
import { createSocket } from "node:dgram";
import { Opt, decode, messageType, optIp, optString } from "../../../server/dhcp/codec.ts";

import { readFileSync } from "node:fs";

const [arg, dest, destPort, listenPort, ms] = process.argv.slice(2);
const hex = arg === "-" ? readFileSync(0, "utf8").trim() : arg!;
const sock = createSocket({ type: "udp4", reuseAddr: true });
sock.on("message", (msg, r) => {
  const d = decode(msg);
  if (!d.ok || d.packet.op !== 2) return;
  const p = d.packet;
  process.stdout.write(
    `${JSON.stringify({
      from: `${r.address}:${r.port}`,
      type: messageType(p),
      xid: p.xid,
      yiaddr: p.yiaddr,
      siaddr: p.siaddr,
      file: p.file,
      serverId: optIp(p, Opt.SERVER_ID),
      vendorClass: optString(p, Opt.VENDOR_CLASS) ?? null,
      uuid: p.options.get(Opt.CLIENT_UUID)?.toString("hex") ?? null,
      opt43: p.options.get(Opt.VENDOR_SPECIFIC)?.toString("hex") ?? null,
    })}\n`,
  );
});
sock.bind(Number(listenPort), "0.0.0.0", () => {
  sock.setBroadcast(true);
  const packets = hex.split(",").map((h) => Buffer.from(h, "hex"));
  let pending = packets.length;
  for (const p of packets)
    sock.send(p, Number(destPort), dest!, (err) => {
      if (err) {
        process.stderr.write(`send: ${err.message}\n`);
        process.exitCode = 1;
      }
      if (--pending === 0) setTimeout(() => sock.close(), Number(ms));
    });
});
