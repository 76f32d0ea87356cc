import type { Socket } from "node:dgram";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decode, encode } from "../../../server/dhcp/codec.ts";
import { dhcpHostile as hostile, dhcpSource as source } from "../../helpers/fuzz-targets.ts";
import { fixtureBytes, pxeDiscover, pxeRequest } from "./packets.ts";
import { DgramDouble, dhcpService as service, drops, rinfo } from "./service.ts";

/** Runs `fn` and returns every uncaught exception and unhandled rejection seen meanwhile (and for `settleMs` after). */
async function escapes(fn: () => Promise<void>, settleMs: number): Promise<unknown[]> {
  const seen: unknown[] = [];
  const onErr = (e: unknown) => seen.push(e);
  process.on("uncaughtException", onErr);
  process.on("unhandledRejection", onErr);
  try {
    await fn();
    await new Promise((r) => setTimeout(r, settleMs));
  } finally {
    process.off("uncaughtException", onErr);
    process.off("unhandledRejection", onErr);
  }
  return seen;
}

describe("DHCP decoder and server pipeline under hostile input", () => {
  it("decode never throws and what it accepts re-encodes (100k inputs)", () => {
    let accepted = 0;
    fc.assert(
      fc.property(hostile, (b) => {
        const d = decode(b);
        if (!d.ok) return;
        accepted++;
        expect(decode(encode({ ...d.packet, sname: d.packet.sname.slice(0, 63), file: d.packet.file.slice(0, 127) })).ok).toBe(true);
      }),
      { numRuns: 100_000 },
    );
    // The re-encoding check must really have run, on a good share of the inputs.
    expect(accepted).toBeGreaterThan(1000);
  });

  it("a 4011 REQUEST from source port 0 is dropped and counted (it used to end the process: send() threw inside the async handler)", async () => {
    const { svc, metrics } = service("proxy");
    const sock = new DgramDouble();
    const seen = await escapes(() => svc.receive(sock as unknown as Socket, 4011, pxeRequest, rinfo("10.231.7.9", 0)), 20);
    expect(seen).toEqual([]);
    expect(sock.sent).toEqual([]);
    expect(await drops(metrics)).toMatchObject({ "source-port-0": 1 });
    // The same request from a real port is answered to it.
    await svc.receive(sock as unknown as Socket, 4011, pxeRequest, rinfo("10.231.7.9", 4011));
    await new Promise((r) => setImmediate(r));
    expect(sock.sent).toEqual([{ port: 4011, address: "10.231.7.9" }]);
  });

  it("a send that throws (socket closed under a held offer) or fails later is counted, never escapes", async () => {
    const { svc, metrics } = service("proxy", 5);
    const sock = new DgramDouble();
    const seen = await escapes(async () => {
      await svc.receive(sock as unknown as Socket, 67, fixtureBytes("uefi-pxe-discover"), rinfo("0.0.0.0", 68));
      sock.closed = true; // the held OFFER is sent from a timer, into a closed socket
    }, 30);
    expect(seen).toEqual([]);
    expect(await drops(metrics)).toMatchObject({ "send-error": 1 });
  });

  it("receive() never rejects or throws, drops and counts, and keeps answering (proxy, full and reserved, 50k each; port 0 and odd sources)", async () => {
    for (const mode of ["proxy", "full", "reserved"] as const) {
      const { svc, metrics } = service(mode, mode === "proxy" ? 1 : 0);
      const sock = new DgramDouble();
      const seen = await escapes(
        () =>
          fc.assert(
            fc.asyncProperty(hostile, fc.constantFrom(67 as const, 4011 as const), source, async (b, port, from) => {
              await svc.receive(sock as unknown as Socket, port, b, rinfo(from.address, from.port, b.length));
            }),
            { numRuns: 50_000 },
          ),
        50,
      );
      expect(seen).toEqual([]);
      // The flood left full mode shedding DISCOVERs until a turn of the loop finds the queue empty (server/dhcp/shed.ts).
      await new Promise((r) => setTimeout(r, 50));
      const before = sock.sent.length;
      await svc.receive(sock as unknown as Socket, 67, encode(pxeDiscover(7)), rinfo("0.0.0.0", 68));
      await new Promise((r) => setTimeout(r, 20));
      expect(sock.sent.slice(before)).toEqual([{ port: 68, address: "255.255.255.255" }]);
      const d = await drops(metrics);
      expect(d.malformed).toBeGreaterThan(1000);
      expect(d["source-port-0"]).toBeGreaterThan(100);
      // Reserved mode answers random MACs nothing, so no reply is left looking for a source.
      if (mode === "reserved") expect(d["not-reserved"]).toBeGreaterThan(1000);
      else expect(d["bad-source"]).toBeGreaterThan(0);
    }
  });
});
