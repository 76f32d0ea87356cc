/**
 * A small TFTP read client for tests and the bench: speaks the options curl and tftp-hpa
 * do not (windowsize) and shows the raw packets (OACK, ERROR) they hide.
 */
import { createSocket } from "node:dgram";
import { ackPacket, decodeTftp, requestPacket } from "../../../server/tftp/packets.ts";

export interface FetchResult {
  data: Buffer;
  oack?: Record<string, string>;
  error?: { code: number; message: string };
}

export async function tftpGet(port: number, name: string, options: Record<string, string> = {}, host = "127.0.0.1", timeoutMs = 10_000): Promise<FetchResult> {
  const sock = createSocket("udp4");
  const parts: Buffer[] = [];
  let expected = 1;
  let sinceAck = 0;
  let oack: Record<string, string> | undefined;
  try {
    return await new Promise<FetchResult>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tftp ${name}: no progress in ${timeoutMs} ms`)), timeoutMs);
      sock.on("message", (msg, r) => {
        const d = decodeTftp(msg);
        if (!d.ok) return;
        const p = d.packet;
        const ack = (n: number) => sock.send(ackPacket(n & 0xffff), r.port, r.address);
        if (p.op === "ERROR") {
          clearTimeout(timer);
          resolve({ data: Buffer.concat(parts), oack, error: { code: p.code, message: p.message } });
        } else if (p.op === "OACK") {
          oack = p.options;
          ack(0);
        } else if (p.op === "DATA") {
          if (p.block !== (expected & 0xffff)) return ack(expected - 1); // out of order: say where we are
          parts.push(p.data);
          expected++;
          sinceAck++;
          const bs = Number(oack?.blksize ?? 512);
          if (p.data.length < bs) {
            ack(expected - 1);
            clearTimeout(timer);
            resolve({ data: Buffer.concat(parts), oack });
          } else if (sinceAck >= Number(oack?.windowsize ?? 1)) {
            sinceAck = 0;
            ack(expected - 1);
          }
        }
      });
      sock.send(requestPacket("RRQ", name, options), port, host);
    });
  } finally {
    sock.close();
  }
}
