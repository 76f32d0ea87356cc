import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ackPacket, decodeTftp, requestPacket } from "../../../server/tftp/packets.ts";
import { type Action, DEFAULT_LIMITS, ReadTransfer, negotiate } from "../../../server/tftp/transfer.ts";

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

/** Block numbers of the DATA packets among a transfer's actions. */
const dataBlocks = (acts: Action[]) =>
  acts.flatMap((a) => {
    const d = a.type === "send" ? decodeTftp(a.packet) : undefined;
    return d?.ok && d.packet.op === "DATA" ? [d.packet.block] : [];
  });

describe("TFTP decoder and transfer under hostile input", () => {
  it("decodeTftp never throws (100k inputs)", () => {
    fc.assert(fc.property(hostile, (b) => void decodeTftp(b)), { numRuns: 100_000 });
  });

  it("negotiation and a running transfer take any packet without throwing, and a valid ACK still advances (20k)", () => {
    let advanced = 0;
    fc.assert(
      fc.property(hostile, fc.array(hostile, { maxLength: 5 }), (req, junk) => {
        const d = decodeTftp(req);
        const opts = d.ok && d.packet.op === "RRQ" ? d.packet.options : {};
        const n = negotiate(opts, 5000, DEFAULT_LIMITS);
        expect(n.blksize).toBeGreaterThanOrEqual(8);
        expect(n.blksize).toBeLessThanOrEqual(65464);
        const t = new ReadTransfer(5000, n, (into, at, _o, len) => into.fill(0, at, at + len) && len, 3);
        // The highest DATA block sent so far (0: only the OACK): ACKing it is always valid.
        let sent = 0;
        const track = (acts: Action[]) => (sent = Math.max(sent, ...dataBlocks(acts)));
        track(t.start());
        for (const j of junk) track(t.onPacket(j));
        // Junk may end the transfer (an ERROR, a foreign opcode): then there is nothing to advance.
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
});
