/**
 * The TFTP server's receive paths (the listener's request handler and each transfer's
 * socket) on an in-memory UDP network that behaves like dgram (test/helpers/udp-double.ts,
 * a stand-in: nothing here can send from port 0 or from the server's own address for real;
 * test/integration/netboot/tftp-interop.test.ts does what can be done with real clients).
 * Fake timers: deliveries, retransmissions and give-ups run on demand, and a packet loop
 * shows up as vi.runAllTimers() giving up after 10,000 timers. Under fake timers each
 * setImmediate hop (a delivery, a bind) takes 1 ms, so settle() lets 10 ms pass.
 */
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../../server/log.ts";
import { type Generator, NETASCII_MAX_BYTES } from "../../../server/tftp/files.ts";
import { type TftpPacket, ackPacket, dataPacket, decodeTftp, errorPacket, oackPacket, requestPacket, toNetascii } from "../../../server/tftp/packets.ts";
import { DROP_REASONS, TftpServer } from "../../../server/tftp/server.ts";
import type { TransferLimits } from "../../../server/tftp/transfer.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { type Peer, UdpNet } from "../../helpers/udp-double.ts";

const root = tempDir("lbtf-unit-");
const loader = randomBytes(70_000);
writeFileSync(join(root, "undionly.kpxe"), loader);
const text = Buffer.from("line 1\r\nline 2\nbare\rcr\r\n\n");
writeFileSync(join(root, "text.cfg"), text);

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const LISTEN: Peer = { address: "10.231.40.1", port: 69 };
const client = (last: number, port = 40_000 + last): Peer => ({ address: `10.231.40.${last}`, port });

const settle = () => vi.advanceTimersByTime(10);

let net: UdpNet;
let metrics: Registry;
let server: TftpServer;

async function start(limits: Partial<TransferLimits> = {}, generate?: Generator): Promise<void> {
  metrics = new Registry();
  server = new TftpServer({ root, address: "0.0.0.0", port: 69, log: createLogger("silent", { pretty: false }), metrics, limits, generate, createSocket: net.createSocket });
  const listening = server.listen();
  settle();
  expect(await listening).toBe(69);
}

async function drops(): Promise<Record<string, number>> {
  const values = (await metrics.getSingleMetric("lifeboat_tftp_dropped_total")!.get()).values;
  return Object.fromEntries(values.map((v) => [String(v.labels.reason), v.value]));
}

async function transfers(): Promise<Record<string, number>> {
  const values = (await metrics.getSingleMetric("lifeboat_tftp_transfers_total")!.get()).values;
  return Object.fromEntries(values.map((v) => [String(v.labels.result), v.value]));
}

/** The packets the server sent to `to` since `from` (an index into net.sent), decoded. */
function received(to: Peer, from = 0): Array<TftpPacket & { port: number }> {
  return net.sent.slice(from).flatMap((d) => {
    if (d.to.address !== to.address || d.to.port !== to.port) return [];
    const p = decodeTftp(d.packet);
    return p.ok ? [{ ...p.packet, port: d.from.port }] : [];
  });
}

/** A lock-step client on the double: RRQ, ACK 0 after an OACK, ACK each block; only deliveries run, never the retransmission timers. */
function download(from: Peer, name: string, options: Record<string, string> = {}, mode = "octet") {
  let seen = net.sent.length;
  net.inject(requestPacket("RRQ", name, options, mode), from, LISTEN);
  const parts: Buffer[] = [];
  let oack: Record<string, string> | undefined;
  for (;;) {
    settle();
    const fresh = received(from, seen);
    seen = net.sent.length;
    const p = fresh[0];
    if (!p) return { data: Buffer.concat(parts), oack, error: undefined, stalled: true };
    if (p.op === "ERROR") return { data: Buffer.concat(parts), oack, error: p };
    const tid = { ...LISTEN, port: p.port };
    if (p.op === "OACK") {
      oack = p.options;
      net.inject(ackPacket(0), from, tid);
    } else if (p.op === "DATA") {
      parts.push(p.data);
      net.inject(ackPacket(p.block), from, tid);
      if (p.data.length < Number(oack?.blksize ?? 512)) {
        settle();
        return { data: Buffer.concat(parts), oack, error: undefined };
      }
    }
  }
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "clearImmediate", "Date"] });
  net = new UdpNet(LISTEN.address);
});
afterEach(async () => {
  vi.runOnlyPendingTimers();
  const closing = server.close();
  vi.runAllTimers();
  await closing;
  vi.useRealTimers();
});

describe("TFTP: files generated asynchronously (a machine's GRUB configuration, decided by the boot service)", () => {
  it("waits for the generator, sends what it made, and answers a retransmitted RRQ meanwhile not at all (one decision per request)", async () => {
    let release!: (b: Buffer) => void;
    const asked: string[] = [];
    await start({}, (name, c) => {
      if (!name.startsWith("grub/lifeboat/")) return undefined;
      asked.push(`${name} ${c.address}`);
      return new Promise<Buffer>((r) => (release = r));
    });
    const c = client(31);
    net.inject(requestPacket("RRQ", "/grub/lifeboat/52:54:00:07:00:21.cfg", {}), c, LISTEN);
    settle();
    net.inject(requestPacket("RRQ", "/grub/lifeboat/52:54:00:07:00:21.cfg", {}), c, LISTEN);
    settle();
    expect(received(c)).toEqual([]);
    expect(asked).toEqual(["grub/lifeboat/52:54:00:07:00:21.cfg 10.231.40.31"]);
    expect((await drops()).duplicate).toBe(1);
    release(Buffer.from("set lifeboat_local=1\n"));
    await Promise.resolve();
    settle();
    const data = received(c).filter((p) => p.op === "DATA");
    expect(data).toHaveLength(1);
    expect(data[0]!.op === "DATA" && data[0]!.data.toString()).toBe("set lifeboat_local=1\n");
  });

  it("a generator that fails gets the client an ERROR, counted, and the server goes on", async () => {
    await start({}, (name) => (name === "boom.cfg" ? Promise.reject(new Error("store closed")) : undefined));
    const c = client(32);
    net.inject(requestPacket("RRQ", "boom.cfg", {}), c, LISTEN);
    settle();
    await Promise.resolve();
    await Promise.resolve();
    settle();
    expect(received(c)).toMatchObject([{ op: "ERROR", code: 0, message: "Server error" }]);
    expect((await drops()).error).toBe(1);
    expect(sha(download(client(33), "undionly.kpxe").data)).toBe(sha(loader));
  });
});

describe("TFTP listener: only requests are answered", () => {
  it("ERROR, ACK, DATA and OACK on port 69 are dropped unanswered and counted; an unknown opcode is malformed; WRQ is refused", async () => {
    await start();
    const c = client(9);
    for (const p of [errorPacket(0, "x"), ackPacket(1), dataPacket(1, Buffer.from("x")), oackPacket({ blksize: "512" })]) net.inject(p, c, LISTEN);
    net.inject(Buffer.from([0, 9, 1, 2]), c, LISTEN);
    vi.runAllTimers();
    expect(net.delivered).toHaveLength(5);
    expect(net.sent).toEqual([]);
    expect(await drops()).toMatchObject({ "unexpected-opcode": 4, malformed: 1 });
    net.inject(requestPacket("WRQ", "x"), c, LISTEN);
    vi.runAllTimers();
    expect(received(c)).toMatchObject([{ op: "ERROR", code: 2 }]);
  });

  it("tftp-hpa's ACK to port 69 after an error gets no answer", async () => {
    await start();
    const c = client(9);
    net.inject(requestPacket("RRQ", "nope", {}, "netascii"), c, LISTEN);
    vi.runAllTimers();
    expect(received(c)).toMatchObject([{ op: "ERROR", code: 1, port: 69 }]);
    net.inject(ackPacket(1), c, LISTEN);
    vi.runAllTimers();
    expect(received(c)).toHaveLength(1);
    expect((await drops())["unexpected-opcode"]).toBe(1);
  });

  it("one ERROR spoofed from the server's own address and port 69 to itself is one packet, not a loop", async () => {
    await start();
    net.inject(errorPacket(4, "Illegal TFTP operation"), LISTEN, LISTEN);
    // Before the fix each ERROR was answered with an ERROR to itself: runAllTimers gave up after 10,000.
    vi.runAllTimers();
    expect(net.delivered).toHaveLength(1);
    expect(net.sent).toEqual([]);
  });

  it("a spoofed RRQ from the server's own port 69 costs a few unanswered DATA packets, then the transfer gives up", async () => {
    await start();
    net.inject(requestPacket("RRQ", "undionly.kpxe"), LISTEN, LISTEN);
    vi.runAllTimers();
    // The first DATA and its 5 retransmissions reach our own listener, which drops them.
    expect(net.sent).toHaveLength(6);
    expect(await drops()).toMatchObject({ "unexpected-opcode": 6 });
    expect(server.transfersInFlight).toBe(0);
    expect(await transfers()).toMatchObject({ timeout: 1 });
  });
});

describe("TFTP: odd sources and failing sends never end the process", () => {
  it("the RRQ of issue 16 from source port 0, and sources 0.0.0.0, broadcast and multicast: dropped, counted, nothing sent", async () => {
    await start();
    const rrq = Buffer.from("0001756e64696f6e6c792e6b707865006f6374657400", "hex");
    expect(decodeTftp(rrq)).toMatchObject({ ok: true, packet: { op: "RRQ", filename: "undionly.kpxe", mode: "octet" } });
    for (const from of [client(9, 0), { address: "0.0.0.0", port: 1234 }, { address: "255.255.255.255", port: 68 }, { address: "224.0.0.1", port: 5000 }, { address: "240.1.2.3", port: 5000 }])
      net.inject(rrq, from, LISTEN);
    vi.runAllTimers();
    expect(net.sent).toEqual([]);
    expect((await drops())["bad-source"]).toBe(5);
    expect(server.transfersInFlight).toBe(0);
    expect(sha(download(client(9), "undionly.kpxe").data)).toBe(sha(loader));
  });

  it("a send that throws or fails in its callback is counted; the transfer retransmits and completes", async () => {
    await start();
    const c = client(9);
    net.faults.push("throw", "callback");
    net.inject(requestPacket("WRQ", "x"), c, LISTEN);
    net.inject(requestPacket("WRQ", "y"), c, LISTEN);
    vi.runAllTimers();
    expect((await drops())["send-failed"]).toBe(2);
    expect(received(c)).toEqual([]);
    // The first DATA of a transfer is lost to a throwing send: the timer resends it.
    net.faults.push("throw");
    net.inject(requestPacket("RRQ", "undionly.kpxe"), c, LISTEN);
    settle();
    expect(received(c)).toEqual([]);
    vi.advanceTimersByTime(1000);
    const [first] = received(c);
    expect(first).toMatchObject({ op: "DATA", block: 1 });
    expect((await drops())["send-failed"]).toBe(3);
  });

  it("a client at a subnet broadcast address: every send fails with EACCES in the callback, counted, and the transfer times out", async () => {
    await start();
    net.inject(requestPacket("RRQ", "undionly.kpxe"), { address: "10.231.40.255", port: 4000 }, LISTEN);
    vi.runAllTimers();
    expect((await drops())["send-failed"]).toBe(6);
    expect(await transfers()).toMatchObject({ timeout: 1 });
    expect(server.transfersInFlight).toBe(0);
  });

  it("a read error in a callback ends that transfer only", async () => {
    const broken = Object.assign(Buffer.alloc(5000), {
      copy: () => {
        throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
      },
    });
    await start({}, (name) => (name === "broken" ? broken : undefined));
    const c = client(9);
    expect(download(c, "broken").stalled).toBe(true);
    vi.runAllTimers();
    expect(await transfers()).toMatchObject({ error: 1 });
    expect(server.transfersInFlight).toBe(0);
    expect(sha(download(client(10), "undionly.kpxe").data)).toBe(sha(loader));
  });
});

describe("TFTP transfer sockets", () => {
  it("a stranger on a transfer's port is dropped unanswered (unknown TID); DATA, OACK and requests from the client too; the transfer goes on", async () => {
    await start();
    const c = client(9);
    net.inject(requestPacket("RRQ", "undionly.kpxe", { blksize: "1024" }), c, LISTEN);
    settle();
    const [oack] = received(c);
    expect(oack).toMatchObject({ op: "OACK", options: { blksize: "1024" } });
    const tid = { ...LISTEN, port: oack!.port };
    const stranger = client(66);
    for (const p of [errorPacket(0, "x"), ackPacket(0), requestPacket("RRQ", "x")]) net.inject(p, stranger, tid);
    net.inject(ackPacket(0), { ...c, port: c.port + 1 }, tid);
    for (const p of [dataPacket(1, Buffer.from("x")), oackPacket({}), requestPacket("RRQ", "x"), Buffer.from([0, 4])]) net.inject(p, c, tid);
    settle();
    expect(received(stranger)).toEqual([]);
    expect(received({ ...c, port: c.port + 1 })).toEqual([]);
    expect(received(c)).toHaveLength(1);
    expect(await drops()).toMatchObject({ "unknown-tid": 4, "unexpected-opcode": 3, malformed: 1 });
    // Still waiting for ACK 0 from the real client.
    let seen = net.sent.length;
    net.inject(ackPacket(0), c, tid);
    const parts: Buffer[] = [];
    for (let block = 1; ; block++) {
      settle();
      const [d] = received(c, seen);
      seen = net.sent.length;
      expect(d).toMatchObject({ op: "DATA", block, port: tid.port });
      parts.push((d as { data: Buffer }).data);
      net.inject(ackPacket(block), c, tid);
      if ((d as { data: Buffer }).data.length < 1024) break;
    }
    expect(sha(Buffer.concat(parts))).toBe(sha(loader));
    vi.runAllTimers();
    expect(net.sentFrom(tid.port).every((d) => decodeTftp(d.packet).ok && [3, 6].includes(d.packet[1]!))).toBe(true);
    expect(await transfers()).toMatchObject({ done: 1 });
  });
});

describe("TFTP limits", () => {
  it("transfers per client and in total are capped: beyond them a TFTP ERROR and a count; freed when transfers end", async () => {
    await start({ maxTransfersPerClient: 2, maxTransfers: 3 });
    const a = [client(9, 1001), client(9, 1002), client(9, 1003)];
    for (const c of a) net.inject(requestPacket("RRQ", "undionly.kpxe"), c, LISTEN);
    net.inject(requestPacket("RRQ", "undionly.kpxe"), client(10), LISTEN);
    net.inject(requestPacket("RRQ", "undionly.kpxe"), client(11), LISTEN);
    settle();
    expect(received(a[0]!)).toMatchObject([{ op: "DATA", block: 1 }]);
    expect(received(a[1]!)).toMatchObject([{ op: "DATA", block: 1 }]);
    expect(received(a[2]!)).toMatchObject([{ op: "ERROR", code: 0, message: "Server busy: 2 transfers from your address in flight", port: 69 }]);
    expect(received(client(10))).toMatchObject([{ op: "DATA", block: 1 }]);
    expect(received(client(11))).toMatchObject([{ op: "ERROR", code: 0, message: "Server busy: 3 transfers in flight" }]);
    expect(server.transfersInFlight).toBe(3);
    expect(await drops()).toMatchObject({ "busy-client": 1, "busy-total": 1 });
    // Nobody ACKs: after 5 retransmissions 1 s apart every transfer gives up, and the slots are free again.
    vi.advanceTimersByTime(6100);
    expect(server.transfersInFlight).toBe(0);
    expect(sha(download(a[2]!, "undionly.kpxe").data)).toBe(sha(loader));
  });

  it("a timeout option above tftp.maxTimeoutSeconds is not acknowledged and the server's 1 s applies; one within it is granted", async () => {
    await start({ maxTimeoutSeconds: 10 });
    const c = client(9);
    net.inject(requestPacket("RRQ", "undionly.kpxe", { timeout: "255", blksize: "1468" }), c, LISTEN);
    settle();
    expect(received(c)).toMatchObject([{ op: "OACK", options: { blksize: "1468" } }]);
    expect((received(c)[0] as { options: object }).options).not.toHaveProperty("timeout");
    vi.advanceTimersByTime(6100);
    expect(server.transfersInFlight).toBe(0);
    const d = client(10);
    net.inject(requestPacket("RRQ", "undionly.kpxe", { timeout: "10" }), d, LISTEN);
    settle();
    expect(received(d)).toMatchObject([{ op: "OACK", options: { timeout: "10" } }]);
    vi.advanceTimersByTime(9900);
    expect(received(d)).toHaveLength(1);
    vi.advanceTimersByTime(100);
    expect(received(d)).toHaveLength(2);
  });
});

describe("TFTP netascii", () => {
  it("is converted (LF → CR LF, CR → CR NUL) and tsize is the converted size", async () => {
    await start();
    const r = download(client(9), "text.cfg", { tsize: "0" }, "netascii");
    const wire = Buffer.from("line 1\r\0\r\nline 2\r\nbare\r\0cr\r\0\r\n\r\n");
    expect(toNetascii(text)).toEqual(wire);
    expect(r.data).toEqual(wire);
    expect(r.oack).toEqual({ tsize: String(wire.length) });
    // Octet is left alone.
    expect(download(client(10), "text.cfg", { tsize: "0" }).data).toEqual(text);
  });

  it("a file above NETASCII_MAX_BYTES is refused with a hint to use octet", async () => {
    const big = Buffer.alloc(NETASCII_MAX_BYTES + 1, 10);
    await start({}, (name) => (name === "big" ? big : undefined));
    const r = download(client(9), "big", {}, "netascii");
    expect(r.error).toMatchObject({ code: 0, message: "netascii is limited to 1 MiB: use octet (binary) mode" });
    expect((await drops()).mode).toBe(1);
  });
});

it("every drop reason has its series from the start", async () => {
  net = new UdpNet();
  await start();
  expect(Object.keys(await drops()).sort()).toEqual([...DROP_REASONS].sort());
});
