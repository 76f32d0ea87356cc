/**
 * Fuzz at scale (issue 16 item 5): N inputs into each target of test/helpers/fuzz-targets.ts
 * (the DHCP receive path in proxy and full mode, the TFTP listener and transfer sockets, the
 * TFTP transfer state machine, Amanda's header, trace log, tapelist and amadmin parsers, the
 * ReaR importer and the capture parser), then a good request each server must still answer.
 * Prints inputs per second, the slowest input, and every escape with its bytes in hex; exits
 * 1 on any escape. Not run by CI (test/unit/fuzz/targets.test.ts runs the same targets smaller).
 *   nice -n 19 npx tsx bench/fuzz.ts [N=1000000] [target-name-substring]
 */
import { FUZZ_TARGETS, runFuzz } from "../test/helpers/fuzz-targets.ts";

const n = Number(process.argv[2] ?? 1_000_000);
const only = process.argv[3];
if (!Number.isInteger(n) || n < 1) {
  console.error(`bench/fuzz: N must be a positive integer, got ${process.argv[2]}`);
  process.exit(2);
}
const targets = FUZZ_TARGETS.filter((t) => !only || t.name.includes(only));
if (targets.length === 0) {
  console.error(`bench/fuzz: no target matches ${JSON.stringify(only)}; targets: ${FUZZ_TARGETS.map((t) => t.name).join(", ")}`);
  process.exit(2);
}
let escapes = 0;
for (const t of targets) {
  const r = await runFuzz(t, n);
  escapes += r.escapes.length;
  console.log(`${r.target}: ${r.inputs} inputs in ${r.seconds.toFixed(1)} s, ${Math.round(r.perSecond)}/s, slowest ${r.slowestMs.toFixed(1)} ms, ${r.escapes.length ? `${r.escapes.length} ESCAPES` : "0 escapes"}`);
  if (r.slowestMs > 20) console.log(`  slowest input: ${r.slowest.slice(0, 400)}${r.slowest.length > 400 ? "…" : ""}`);
  for (const e of r.escapes) console.log(`  ESCAPE ${e.error}\n    input: ${e.input}`);
}
console.log(escapes ? `${escapes} escapes` : "no escapes");
process.exit(escapes ? 1 : 0);
