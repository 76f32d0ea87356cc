import fc from "fast-check";
import { Registry } from "prom-client";
import { describe, expect, it, vi } from "vitest";
import { createLogger } from "../../../server/log.ts";
import { Op, ackPacket, decodeTftp, toNetascii } from "../../../server/tftp/packets.ts";
import { TftpServer } from "../../../server/tftp/server.ts";
import { type Action, DEFAULT_LIMITS, ReadTransfer, negotiate } from "../../../server/tftp/transfer.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { TFTP_LISTEN, tftpHostile, tftpPayload, tftpSource, writeTftpRoot } from "../../helpers/fuzz-targets.ts";
import { UdpNet } from "../../helpers/udp-double.ts";

const opcode = (b: Buffer) => (b.length >= 2 ? b.readUInt16BE(0) : -1);

/** Block numbers of the DATA packets among a transfer's actions. */
const dataBlocks = (acts: Action[]) =>
  acts.flatMap((a) => {
    const d = a.type === "send" ? decodeTftp(a.packet) : undefined;
    return d?.ok && d.packet.op === "DATA" ? [d.packet.block] : [];
  });

describe("TFTP decoder and transfer under hostile input", () => {
  it("decodeTftp never throws (100k inputs)", () => {
    fc.assert(fc.property(tftpHostile, (b) => void decodeTftp(b)), { numRuns: 100_000 });
  });

  it("negotiation and a running transfer take any packet without throwing, and a valid ACK still advances (20k)", () => {
    let advanced = 0;
    fc.assert(
      fc.property(tftpHostile, fc.array(tftpHostile, { maxLength: 5 }), (req, junk) => {
        const d = decodeTftp(req);
        const opts = d.ok && d.packet.op === "RRQ" ? d.packet.options : {};
        const n = negotiate(opts, 5000, DEFAULT_LIMITS);
        expect(n.blksize).toBeGreaterThanOrEqual(8);
        expect(n.blksize).toBeLessThanOrEqual(65464);
        expect(n.timeoutMs).toBeLessThanOrEqual(DEFAULT_LIMITS.maxTimeoutSeconds * 1000);
        const t = new ReadTransfer(5000, n, (into, at, _o, len) => into.fill(0, at, at + len) && len, 3);
        // The highest DATA block sent so far (0: only the OACK): ACKing it is always valid.
        let sent = 0;
        const track = (acts: Action[]) => (sent = Math.max(sent, ...dataBlocks(acts)));
        track(t.start());
        for (const j of junk) {
          // A transfer never answers what its client sends with a packet of its own: only the timer resends.
          const acts = t.onPacket(j);
          if (opcode(j) !== Op.ACK) expect(acts.filter((a) => a.type === "send")).toEqual([]);
          track(acts);
        }
        // Junk may end the transfer (an ERROR from the client): then there is nothing to advance.
        if (t.ended) return;
        const next = t.onPacket(ackPacket(sent));
        if (sent === t.lastBlock) expect(next).toContainEqual(expect.objectContaining({ type: "end", result: "done" }));
        else expect(dataBlocks(next)[0], `after ACK ${sent}`).toBe(sent + 1);
        advanced++;
      }),
      { numRuns: 20_000 },
    );
    expect(advanced, "runs where junk left the transfer open and the ACK was checked").toBeGreaterThan(2000);
  });

  it("netascii: a receiver that undoes CR LF → LF and CR NUL → CR gets every byte back (10k)", () => {
    const undo = (w: Buffer) => {
      const out: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (w[i] === 13 && (w[i + 1] === 10 || w[i + 1] === 0)) out.push(w[++i] === 10 ? 10 : 13);
        else out.push(w[i]!);
      }
      return Buffer.from(out);
    };
    const textish = fc.array(fc.constantFrom(0, 10, 13, 65, 255), { maxLength: 300 }).map((a) => Buffer.from(a));
    fc.assert(
      fc.property(fc.oneof(textish, fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a))), (b) => {
        const w = toNetascii(b);
        expect(w.length).toBe(b.length + b.filter((c) => c === 10 || c === 13).length);
        expect(undo(w)).toEqual(b);
      }),
      { numRuns: 10_000 },
    );
  });
});

/*
 * The server's real receive paths (the listener's request handler, each transfer's socket)
 * on the in-memory network of test/helpers/udp-double.ts (a stand-in for dgram that throws
 * as dgram does), fed packets from odd sources: port 0, 0.0.0.0, broadcast, multicast, the
 * server's own address and port, strangers on a transfer's port, the transfer's own client.
 */
describe("TFTP server receive paths under hostile input (dgram double)", () => {
  const root = tempDir("lbtf-fuzz-");
  writeTftpRoot(root);
  const LISTEN = TFTP_LISTEN;
  const log = createLogger("silent", { pretty: false });
  const limits = { maxTransfers: 4, maxTransfersPerClient: 2 };

  const event = fc.oneof(
    fc.record({ from: tftpSource, packet: tftpPayload, to: fc.option(fc.nat(), { nil: undefined }) }),
    fc.record({ tick: fc.integer({ min: 0, max: 3000 }) }),
  );

  it("nothing escapes, nothing is sent to port 0, only requests get an answer on port 69, transfers never send ERROR, caps hold, no loop (10k sequences)", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "clearImmediate", "Date"] });
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(event, { maxLength: 25 }), async (events) => {
          vi.clearAllTimers(); // what a failed run left behind must not fail the next
          const net = new UdpNet(LISTEN.address);
          const server = new TftpServer({ root, address: "0.0.0.0", port: 69, log, metrics: new Registry(), limits, createSocket: net.createSocket });
          const listening = server.listen();
          vi.advanceTimersByTime(10);
          await listening;
          for (const e of events) {
            if ("tick" in e) vi.advanceTimersByTime(e.tick);
            else {
              const tids = [...new Set(net.sent.filter((d) => d.from.port !== 69).map((d) => d.from.port))];
              const to = e.to === undefined || tids.length === 0 ? LISTEN : { ...LISTEN, port: tids[e.to % tids.length]! };
              net.inject(e.packet, e.from, to);
              vi.advanceTimersByTime(10);
            }
            expect(server.transfersInFlight).toBeLessThanOrEqual(limits.maxTransfers);
          }
          // Every transfer ends by itself; a packet loop would make this give up after 10,000 timers.
          vi.runAllTimers();
          expect(server.transfersInFlight).toBe(0);
          expect(net.thrown.filter((e) => (e as { code?: string }).code === "ERR_SOCKET_BAD_PORT")).toEqual([]);
          const requests = net.delivered.filter((d) => d.to.port === 69 && (opcode(d.packet) === Op.RRQ || opcode(d.packet) === Op.WRQ));
          expect(net.sentFrom(69).length).toBeLessThanOrEqual(requests.length);
          expect(net.sent.filter((d) => d.from.port !== 69 && opcode(d.packet) === Op.ERROR)).toEqual([]);
          const closing = server.close();
          vi.runAllTimers();
          await closing;
        }),
        { numRuns: 10_000 },
      );
    } finally {
      vi.useRealTimers();
    }
  });
});
