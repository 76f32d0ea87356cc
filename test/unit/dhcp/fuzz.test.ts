import { mkdirSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { decode, encode } from "../../../server/dhcp/codec.ts";
import { DhcpService } from "../../../server/dhcp/server.ts";
import { loadConfig } from "../../../server/config/load.ts";
import type { ServerContext } from "../../../server/context.ts";
import { createLogger } from "../../../server/log.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { fixtureBytes, pxeDiscover } from "./packets.ts";

const seeds = [fixtureBytes("bios-ipxe-rom-discover"), fixtureBytes("uefi-pxe-discover"), fixtureBytes("uefi-httpboot-discover")];

/** Real packets with bytes flipped, cut short or stretched, plus headers with random option soup and plain noise. */
const hostile = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
  fc
    .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }), fc.nat({ max: 700 }))
    .map(([seed, flips, len]) => {
      const b = Buffer.from(seed);
      for (const [at, v] of flips) b[240 + (at % Math.max(1, b.length - 240))] = v;
      return len < b.length ? b.subarray(0, len) : Buffer.concat([b, Buffer.alloc(len - b.length, 0xff)]);
    }),
  fc.tuple(fc.constantFrom(...seeds), fc.uint8Array({ maxLength: 400 })).map(([seed, tail]) => Buffer.concat([seed.subarray(0, 240), Buffer.from(tail)])),
);

function service(mode: "proxy" | "full"): { svc: DhcpService; metrics: Registry } {
  const dataDir = tempDir();
  const base = loadConfig({ overrides: { dataDir } });
  const config = {
    ...base,
    dhcp: { ...base.dhcp, mode, pool: { ...base.dhcp.pool, start: "10.231.7.100", end: "10.231.7.199" } },
  };
  const ctx = {
    config,
    store: new SqliteStore(":memory:"),
    log: createLogger("silent", { pretty: false }),
    metrics: new Registry(),
  } as unknown as ServerContext;
  mkdirSync(config.tftp.root, { recursive: true });
  writeFileSync(`${config.tftp.root}/snponly.efi`, "stand-in loader");
  const svc = new DhcpService(ctx, { httpPort: () => 8080 });
  svc.configure("10.231.7.1");
  return { svc, metrics: ctx.metrics };
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

  it("the server's handle() never rejects, drops and counts, and keeps answering (proxy and full, 50k each)", async () => {
    for (const mode of ["proxy", "full"] as const) {
      const { svc, metrics } = service(mode);
      await fc.assert(
        fc.asyncProperty(hostile, fc.constantFrom(67 as const, 4011 as const), async (b, port) => {
          await svc.handle(b, port);
        }),
        { numRuns: 50_000 },
      );
      const reply = await svc.handle(encode(pxeDiscover(7)), 67);
      expect(reply?.bytes.length).toBeGreaterThan(240);
      const drops = (await metrics.getSingleMetric("lifeboat_dhcp_dropped_total")!.get()).values;
      expect(drops.find((v) => v.labels.reason === "malformed")?.value).toBeGreaterThan(1000);
    }
  });
});
