/**
 * Hostile-load helper for dhcp-interop.test.ts, run inside a namespace; prints one JSON line.
 *   node --import tsx dhcp-flood.ts blast <server ip> <ms>   64 KB datagrams of one option repeated (e0 01 41…)
 *                                                            to <ip>:67 and :4011, one every 5 ms, for <ms>
 *                                                            (each one cost the old decoder ~258 ms)
 *   node --import tsx dhcp-flood.ts probe <url> <ms>         GET <url> every 10 ms for <ms>: median, 95th percentile
 *                                                            and slowest answer
 * Two processes, so the prober's own loop is never busy sending. Other arguments: usage, exit 2 (never a
 * run without end: test/unit/helpers/dhcp-load.test.ts).
 */
import { createSocket } from "node:dgram";
import { get } from "node:http";
import { MessageType, encode } from "../../../server/dhcp/codec.ts";
import { request } from "../../unit/dhcp/packets.ts";

const [mode, target, msArg] = process.argv.slice(2);
if ((mode !== "blast" && mode !== "probe") || !target || !(Number(msArg) > 0)) {
  process.stderr.write("usage: dhcp-flood.ts blast <server ip> <ms> | probe <url> <ms>\n");
  process.exit(2);
}
const until = Date.now() + Number(msArg);

async function blast(ip: string): Promise<void> {
  const head = encode(request(MessageType.DISCOVER)).subarray(0, 240);
  const datagram = Buffer.concat([head, Buffer.alloc(65_507 - 240, Buffer.from([0xe0, 1, 0x41]))]);
  const sock = createSocket("udp4");
  let sent = 0;
  while (Date.now() < until) {
    await new Promise<void>((resolve, reject) => sock.send(datagram, sent % 2 ? 4011 : 67, ip, (err) => (err ? reject(err) : resolve())));
    sent++;
    await new Promise((r) => setTimeout(r, 5));
  }
  sock.close();
  process.stdout.write(`${JSON.stringify({ sent })}\n`);
}

async function probe(url: string): Promise<void> {
  const times: number[] = [];
  let failures = 0;
  while (Date.now() < until) {
    const t = performance.now();
    const ok = await new Promise<boolean>((resolve) => {
      const req = get(url, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode === 200));
      });
      req.on("error", () => resolve(false));
      req.setTimeout(2000, () => req.destroy());
    });
    if (ok) times.push(performance.now() - t);
    else failures++;
    await new Promise((r) => setTimeout(r, 10));
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  process.stdout.write(`${JSON.stringify({ probes: times.length, failures, medianMs: at(0.5), p95Ms: at(0.95), maxMs: times.at(-1) })}\n`);
}

await (mode === "blast" ? blast(target) : probe(target));
