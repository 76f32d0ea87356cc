import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ackPacket, decodeTftp, requestPacket } from "../../../server/tftp/packets.ts";
import { DEFAULT_LIMITS, ReadTransfer, negotiate } from "../../../server/tftp/transfer.ts";

const requestLike = fc
  .tuple(fc.string({ maxLength: 40 }), fc.dictionary(fc.constantFrom("blksize", "BLKSIZE", "tsize", "timeout", "windowsize", "x"), fc.string({ maxLength: 12 })))
  .map(([name, opts]) => requestPacket("RRQ", name || "f", opts));

const hostile = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.tuple(requestLike, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, at, v]) => {
    const c = Buffer.from(b);
    c[at % c.length] = v;
    return c;
  }),
  fc.tuple(fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 30 })).map(([op, rest]) => Buffer.concat([Buffer.from([0, op]), Buffer.from(rest)])),
);

describe("TFTP decoder and transfer under hostile input", () => {
  it("decodeTftp never throws (100k inputs)", () => {
    fc.assert(fc.property(hostile, (b) => void decodeTftp(b)), { numRuns: 100_000 });
  });

  it("negotiation and a running transfer take any packet without throwing, and a valid ACK still advances (20k)", () => {
    fc.assert(
      fc.property(hostile, fc.array(hostile, { maxLength: 5 }), (req, junk) => {
        const d = decodeTftp(req);
        const opts = d.ok && d.packet.op === "RRQ" ? d.packet.options : {};
        const n = negotiate(opts, 5000, DEFAULT_LIMITS);
        expect(n.blksize).toBeGreaterThanOrEqual(8);
        expect(n.blksize).toBeLessThanOrEqual(65464);
        const t = new ReadTransfer(5000, n, (into, at, _o, len) => into.fill(0, at, at + len) && len, 3);
        t.start();
        for (const j of junk) t.onPacket(j);
        if (!t.ended) t.onPacket(ackPacket(0));
      }),
      { numRuns: 20_000 },
    );
  });
});
