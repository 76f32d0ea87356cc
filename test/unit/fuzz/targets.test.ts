/**
 * CI's size of bench/fuzz.ts (issue 16 item 5): every target of test/helpers/fuzz-targets.ts,
 * the same generators, no escape and every server still answering. 100,000 inputs per target
 * unless noted, so each takes a few seconds on this machine kind.
 */
import { describe, expect, it } from "vitest";
import { FUZZ_TARGETS, runFuzz } from "../../helpers/fuzz-targets.ts";

/** Fewer inputs where 100,000 would take far more than a few seconds (rates measured with bench/fuzz.ts, 2 cores). */
const RUNS: Record<string, number> = {
  // ~18k/s: every full-mode DISCOVER and REQUEST writes a lease row.
  "dhcp full receive()": 50_000,
  // ~7k/s: each input is a 32 KiB header block.
  "amanda header parseHeader": 20_000,
  // ~17k/s: each input is a whole disklayout.conf through the layout schema.
  "rear import layoutFromRear": 50_000,
  // ~1.1k/s: each input is a whole capture document (tens of KiB) cloned, edited and parsed.
  "capture parser (parseCapture, layoutFromCapture, layoutProblem)": 5_000,
};

describe("fuzz targets at CI size (bench/fuzz.ts runs them at 1,000,000)", () => {
  for (const t of FUZZ_TARGETS) {
    const n = RUNS[t.name] ?? 100_000;
    it(`${t.name}: ${n} inputs, no escape, still answering`, async () => {
      const r = await runFuzz(t, n);
      expect(r.escapes).toEqual([]);
      expect(r.inputs).toBe(n);
    }, 120_000);
  }
});
