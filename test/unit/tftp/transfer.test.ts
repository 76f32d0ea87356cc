import { describe, expect, it } from "vitest";
import { ackPacket, dataPacket, decodeTftp, errorPacket, oackPacket, requestPacket } from "../../../server/tftp/packets.ts";
import { type Action, DEFAULT_LIMITS, ReadTransfer, negotiate } from "../../../server/tftp/transfer.ts";

const data = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 255));

function transfer(size: number, options: Record<string, string> = {}) {
  const file = data(size);
  const n = negotiate(options, size, DEFAULT_LIMITS);
  return { file, n, t: new ReadTransfer(size, n, (into, at, off, len) => file.copy(into, at, off, off + len), 3) };
}

/** DATA packets in a batch of actions as [block, payload]. */
const sentData = (acts: Action[]) =>
  acts.flatMap((a) => {
    if (a.type !== "send") return [];
    const d = decodeTftp(a.packet);
    return d.ok && d.packet.op === "DATA" ? [[d.packet.block, d.packet.data] as const] : [];
  });
const ended = (acts: Action[]) => acts.find((a) => a.type === "end");

describe("TFTP option negotiation", () => {
  it("accepts blksize/tsize/timeout/windowsize, clamps blksize to 65464, ignores the unknown", () => {
    expect(negotiate({ blksize: "1468", tsize: "0", windowsize: "4", timeout: "3", foo: "1" }, 1000, DEFAULT_LIMITS)).toEqual({
      blksize: 1468, windowsize: 4, timeoutMs: 3000, oack: { blksize: "1468", timeout: "3", tsize: "1000", windowsize: "4" },
    });
    expect(negotiate({ blksize: "99999" }, 1, DEFAULT_LIMITS).blksize).toBe(65464);
    expect(negotiate({ blksize: "4", timeout: "0", windowsize: "x" }, 1, DEFAULT_LIMITS).oack).toEqual({});
  });

  it("grants a timeout up to maxTimeoutSeconds; a larger one (RFC 2349 allows 255) is not acknowledged and the default applies", () => {
    expect(negotiate({ timeout: "10" }, 1, DEFAULT_LIMITS)).toMatchObject({ timeoutMs: 10_000, oack: { timeout: "10" } });
    expect(negotiate({ timeout: "255", blksize: "1468" }, 1, DEFAULT_LIMITS)).toEqual({ blksize: 1468, windowsize: 1, timeoutMs: 1000, oack: { blksize: "1468" } });
    expect(negotiate({ timeout: "5" }, 1, { ...DEFAULT_LIMITS, maxTimeoutSeconds: 3 }).oack).toEqual({});
  });
});

describe("TFTP read transfer state machine", () => {
  it("sends a file in 512-byte blocks without options and ends with a short block", () => {
    const { t, file } = transfer(1300);
    const got: Buffer[] = [];
    let acts = t.start();
    for (;;) {
      const d = sentData(acts);
      expect(d).toHaveLength(1);
      got.push(d[0]![1]);
      acts = t.onPacket(ackPacket(d[0]![0]));
      if (ended(acts)) break;
    }
    expect(Buffer.concat(got)).toEqual(file);
    expect(got.map((b) => b.length)).toEqual([512, 512, 276]);
    expect(ended(acts)).toMatchObject({ result: "done" });
  });

  it("a file that is a multiple of blksize ends with an empty block", () => {
    const { t } = transfer(1024);
    t.start();
    t.onPacket(ackPacket(1));
    const last = sentData(t.onPacket(ackPacket(2)));
    expect(last).toEqual([[3, Buffer.alloc(0)]]);
    expect(ended(t.onPacket(ackPacket(3)))).toMatchObject({ result: "done" });
  });

  it("OACK first, waits for ACK 0, then windows of windowsize blocks", () => {
    const { t } = transfer(10 * 100, { blksize: "100", windowsize: "4", tsize: "0" });
    const first = t.start();
    const oack = decodeTftp((first[0] as { packet: Buffer }).packet);
    expect(oack).toMatchObject({ ok: true, packet: { op: "OACK", options: { blksize: "100", windowsize: "4", tsize: "1000" } } });
    expect(sentData(t.onPacket(ackPacket(0))).map((d) => d[0])).toEqual([1, 2, 3, 4]);
    expect(sentData(t.onPacket(ackPacket(4))).map((d) => d[0])).toEqual([5, 6, 7, 8]);
    // The client lost 7 and 8: it ACKs 6, the next window starts at 7.
    expect(sentData(t.onPacket(ackPacket(6))).map((d) => d[0])).toEqual([7, 8, 9, 10]);
    expect(sentData(t.onPacket(ackPacket(10))).map((d) => d[0])).toEqual([11]);
    expect(ended(t.onPacket(ackPacket(11)))).toMatchObject({ result: "done" });
  });

  it("no Sorcerer's Apprentice: a duplicate ACK sends nothing; only the timer resends", () => {
    const { t } = transfer(2000);
    t.start();
    expect(sentData(t.onPacket(ackPacket(1))).map((d) => d[0])).toEqual([2]);
    expect(t.onPacket(ackPacket(1))).toEqual([]);
    expect(t.onPacket(ackPacket(1))).toEqual([]);
    expect(sentData(t.onTimeout()).map((d) => d[0])).toEqual([2]);
  });

  it("lost DATA and lost ACKs: retransmits on timeout and the file still arrives whole", () => {
    const { t, file } = transfer(5000, { blksize: "700", windowsize: "2" });
    const got = new Map<number, Buffer>();
    let acts = t.start();
    acts = t.onPacket(ackPacket(0));
    let step = 0;
    let highest = 0;
    while (!ended(acts)) {
      step++;
      // Every third batch is lost entirely (data or the ACK for it): the timer fires.
      if (step % 3 === 0) {
        acts = t.onTimeout();
        continue;
      }
      for (const [b, d] of sentData(acts)) {
        if (b === highest + 1) {
          got.set(b, d);
          highest = b;
        }
      }
      acts = t.onPacket(ackPacket(highest));
      if (acts.length === 0) acts = t.onTimeout(); // duplicate ACK ignored: wait for the timer
    }
    expect(ended(acts)).toMatchObject({ result: "done" });
    expect(Buffer.concat([...got.values()])).toEqual(file);
  });

  it("DATA, OACK, requests and junk from the client are dropped unanswered; the transfer goes on", () => {
    const { t } = transfer(1000);
    t.start();
    for (const [p, reason] of [
      [dataPacket(1, Buffer.from("x")), "unexpected-opcode"],
      [oackPacket({ blksize: "8" }), "unexpected-opcode"],
      [requestPacket("RRQ", "x"), "unexpected-opcode"],
      [Buffer.from([0, 3]), "malformed"],
      [Buffer.from([0, 9, 0, 0]), "malformed"],
    ] as const)
      expect(t.onPacket(p)).toEqual([expect.objectContaining({ type: "drop", reason })]);
    expect(t.ended).toBe(false);
    expect(sentData(t.onPacket(ackPacket(1))).map((d) => d[0])).toEqual([2]);
  });

  it("gives up after the retry limit", () => {
    const { t } = transfer(100);
    t.start();
    let acts: Action[] = [];
    for (let i = 0; i < 4; i++) acts = t.onTimeout();
    expect(ended(acts)).toMatchObject({ result: "timeout" });
    expect(t.onTimeout()).toEqual([]);
  });

  it("OVMF's tsize probe: OACK, then error 8 from the client ends the transfer as aborted", () => {
    const { t } = transfer(100_000, { tsize: "0", blksize: "1468", windowsize: "4" });
    t.start();
    expect(ended(t.onPacket(errorPacket(8, "User aborted the transfer")))).toMatchObject({ result: "aborted" });
  });

  it("block numbers roll over past 65535", () => {
    const size = 65536 * 8 + 3;
    const { t, file } = transfer(size, { blksize: "8" });
    t.start();
    let acts = t.onPacket(ackPacket(0));
    const parts: Buffer[] = [];
    let blocks = 0;
    while (!ended(acts)) {
      const [[b, d]] = sentData(acts) as [[number, Buffer]];
      parts.push(d);
      blocks++;
      acts = t.onPacket(ackPacket(b));
    }
    expect(blocks).toBe(65537);
    expect(Buffer.concat(parts)).toEqual(file);
  });
});
