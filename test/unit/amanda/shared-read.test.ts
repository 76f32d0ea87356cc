import type { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { type Cursor, type ResumeAt, SharedReads } from "../../../server/amanda/shared-read.ts";
import { bytes } from "./synthetic.ts";

const CHUNK = 1000;
const data = bytes(40 * CHUNK + 123, 3);

/** A cursor over `data` from an offset; reads complete on a later turn, as fs.read's do. Its mark is its offset. */
function fakeSource(opts: { failAtEnd?: boolean } = {}) {
  const reads: number[] = [];
  let open = 0;
  let closed = 0;
  const cursor = (from: ResumeAt<number> | null): Cursor<number> => {
    let pos = from?.offset ?? 0;
    expect(from?.mark ?? 0).toBe(pos);
    open++;
    return {
      next(cb) {
        setImmediate(() => {
          if (pos >= data.length) return cb(null, null);
          const chunk = Buffer.from(data.subarray(pos, pos + CHUNK));
          reads.push(pos);
          pos += chunk.length;
          if (opts.failAtEnd && pos >= data.length) return cb(new Error("CRC mismatch"), null);
          cb(null, chunk);
        });
      },
      mark: () => pos,
      close: () => void closed++,
    };
  };
  return { cursor, reads, opened: () => open, closed: () => closed };
}

/** Reads `s` to its end, waiting `delayMs` after each chunk (its pace); resolves to the bytes and the error, if any. */
async function drain(s: Readable, delayMs = 0, stopAfter = Infinity): Promise<{ data: Buffer; error: Error | null }> {
  const got: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of s) {
      got.push(c as Buffer);
      if ((n += (c as Buffer).length) >= stopAfter) {
        s.destroy();
        break;
      }
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    }
    return { data: Buffer.concat(got), error: null };
  } catch (err) {
    return { data: Buffer.concat(got), error: err as Error };
  }
}

describe("shared reads (fan-out)", () => {
  it("N subscribers at their own paces get identical bytes from one read of each chunk", async () => {
    const src = fakeSource();
    const shared = new SharedReads({ windowChunks: 64 });
    const subs = [0, 1, 2, 0].map(() => shared.open("d", src.cursor, 2 * CHUNK));
    const results = await Promise.all(subs.map((s, i) => drain(s, [0, 1, 2, 0][i])));
    for (const r of results) {
      expect(r.error).toBeNull();
      expect(r.data.equals(data)).toBe(true);
    }
    expect(src.reads).toEqual([...new Set(src.reads)]);
    expect(src.reads.length).toBe(41);
    expect(src.opened()).toBe(1);
    expect(src.closed()).toBe(1);
    expect(shared.stats("d")).toBeNull();
  });

  it("detaches a subscriber a window behind one that waits: it goes on alone from its offset, the others never stall, memory stays within the window", async () => {
    const src = fakeSource();
    const shared = new SharedReads({ windowChunks: 4 });
    const slow = shared.open("d", src.cursor, CHUNK);
    const fast = shared.open("d", src.cursor, CHUNK);
    let maxWindow = 0;
    const sample = setInterval(() => (maxWindow = Math.max(maxWindow, shared.stats("d")?.windowChunks ?? 0)), 0);
    // The slow one takes one chunk, then nothing until the fast one has everything.
    const first = await new Promise<Buffer>((r) => slow.once("data", (c: Buffer) => (slow.pause(), r(c))));
    const f = await drain(fast);
    clearInterval(sample);
    expect(f.data.equals(data)).toBe(true);
    expect(maxWindow).toBeLessThanOrEqual(4);
    const s = await drain(slow.resume(), 1);
    expect(s.error).toBeNull();
    expect(Buffer.concat([first, s.data]).equals(data)).toBe(true);
    expect(src.opened()).toBe(2);
    // The detached one re-read only from where it was, not from byte 0.
    expect(src.reads.filter((o) => o === 0).length).toBe(1);
    expect(src.reads.length).toBeLessThan(2 * 41);
  });

  it("a subscriber that disconnects does not break the others; the reader closes when the last one leaves", async () => {
    const src = fakeSource();
    const shared = new SharedReads({ windowChunks: 64 });
    const subs = [0, 1, 2].map(() => shared.open("d", src.cursor, CHUNK));
    const [a, gone, b] = await Promise.all([drain(subs[0]!), drain(subs[1]!, 0, 5 * CHUNK), drain(subs[2]!, 1)]);
    expect(gone.data.length).toBeLessThan(data.length);
    for (const r of [a, b]) expect(r.data.equals(data)).toBe(true);
    expect(src.opened()).toBe(1);
    expect(src.closed()).toBe(1);
    expect(subs[1]!.destroyed).toBe(true);
  });

  it("an error instead of the last chunk (a CRC mismatch) truncates every subscriber's stream", async () => {
    const src = fakeSource({ failAtEnd: true });
    const shared = new SharedReads({ windowChunks: 64 });
    const rs = await Promise.all([0, 1, 3].map((pace) => drain(shared.open("d", src.cursor, CHUNK), pace)));
    for (const r of rs) {
      expect(r.error?.message).toBe("CRC mismatch");
      expect(r.data.length).toBeLessThanOrEqual(40 * CHUNK);
      expect(r.data.equals(data.subarray(0, r.data.length))).toBe(true);
    }
    expect(shared.stats("d")).toBeNull();
  });

  it("joins while the window holds byte 0 (kept until the window is full); a later subscriber starts a read of its own", async () => {
    const src = fakeSource();
    const shared = new SharedReads({ windowChunks: 4 });
    const first = shared.open("d", src.cursor, CHUNK);
    const it1 = first[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    for (let i = 0; i < 3; i++) head.push((await it1.next()).value as Buffer);
    // Three chunks taken, the window not full: byte 0 is still held.
    const early = shared.open("d", src.cursor, CHUNK);
    expect(shared.stats("d")?.subscribers).toBe(2);
    for (let i = 0; i < 6; i++) head.push((await it1.next()).value as Buffer);
    await new Promise((r) => setImmediate(r));
    // first is 9 chunks on, early none: early went on alone (a second cursor); byte 0 is gone, so late reads on its own (a third).
    const late = shared.open("d", src.cursor, CHUNK);
    expect(src.opened()).toBe(3);
    const rest = async () => {
      for (let x = await it1.next(); !x.done; x = await it1.next()) head.push(x.value as Buffer);
      return Buffer.concat(head);
    };
    const [a, b, c] = await Promise.all([rest(), drain(early), drain(late)]);
    for (const r of [a, b.data, c.data]) expect(r.equals(data)).toBe(true);
    expect(src.opened()).toBe(3);
  });
});
