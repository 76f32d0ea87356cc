/**
 * Hostile TFTP peers run inside a namespace by tftp-interop.test.ts; each prints one JSON line.
 *
 *   node --import tsx tftp-peer.ts echo-errors <server> <port> <ms>
 *     A peer that answers every ERROR with an ERROR (what two such servers do to each
 *     other): sends one ERROR to the server, then for <ms> echoes every ERROR it gets.
 *     Prints {"received": N}.
 *   node --import tsx tftp-peer.ts flood <server> <port> <ms> <per-second> <file> <address>...
 *     Sends <per-second> RRQs a second for <file> during <ms>, round-robin from one socket per
 *     <address> (addresses of this namespace), never ACKing anything. Prints {"sent": N,
 *     "busy": N (ERROR "Server busy" replies), "started": N (transfers: distinct server ports that sent DATA)}.
 */
import { createSocket, type Socket } from "node:dgram";
import { decodeTftp, errorPacket, requestPacket } from "../../../server/tftp/packets.ts";

const [mode, server, portArg, msArg, ...rest] = process.argv.slice(2);
const port = Number(portArg);
const ms = Number(msArg);
const bound = (address?: string) =>
  new Promise<Socket>((resolve, reject) => {
    const s = createSocket("udp4");
    s.once("error", reject);
    s.bind(0, address, () => resolve(s));
  });

if (mode === "echo-errors") {
  const s = await bound();
  let received = 0;
  s.on("message", (msg, r) => {
    const d = decodeTftp(msg);
    if (!d.ok || d.packet.op !== "ERROR") return;
    received++;
    s.send(errorPacket(4, "Illegal TFTP operation"), r.port, r.address);
  });
  s.send(errorPacket(4, "Illegal TFTP operation"), port, server!);
  await new Promise((r) => setTimeout(r, ms));
  s.close();
  process.stdout.write(`${JSON.stringify({ received })}\n`);
} else if (mode === "flood") {
  const [perSecond, file, ...addresses] = rest;
  const socks = await Promise.all(addresses.map((a) => bound(a)));
  const rrq = requestPacket("RRQ", file!);
  let sent = 0;
  let busy = 0;
  const transfers = new Set<number>();
  for (const s of socks)
    s.on("message", (msg, r) => {
      const d = decodeTftp(msg);
      if (!d.ok) return;
      if (d.packet.op === "ERROR" && d.packet.message.startsWith("Server busy")) busy++;
      else if (d.packet.op === "DATA") transfers.add(r.port);
    });
  const started = Date.now();
  // Every 10 ms, as many as the rate says should have gone by now.
  while (Date.now() - started < ms) {
    const due = Math.floor(((Date.now() - started) * Number(perSecond)) / 1000);
    while (sent < due) socks[sent++ % socks.length]!.send(rrq, port, server!);
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 300));
  for (const s of socks) s.close();
  process.stdout.write(`${JSON.stringify({ sent, busy, started: transfers.size })}\n`);
} else {
  process.stderr.write("usage: tftp-peer.ts echo-errors|flood <server> <port> <ms> [<file> <address>...]\n");
  process.exit(2);
}
