import { describe, expect, it } from "vitest";
import type { JobState } from "../../../server/store/types.ts";
import { type PowerWaveEntry, type WaveStatus, holdsSlot, planWaves, waveWords } from "../../../server/power/waves.ts";

/** A job of a batch: its state and its place in the batch. */
function member(n: number, state: JobState, status: WaveStatus, wave = "wave-a", queuedAt = "2026-12-05T10:00:00.000Z", of = 20) {
  const powerWave: PowerWaveEntry = { wave, position: n, of, queuedAt, status, force: false, note: null };
  return { id: `${wave}-${n}`, state, powerWave };
}
const batch = (n: number, f: (i: number) => [JobState, WaveStatus]) => Array.from({ length: n }, (_, i) => member(i + 1, ...f(i + 1)));
const powered = (actions: ReturnType<typeof planWaves>) => actions.filter((a) => a.do === "power").map((a) => a.job);

describe("the wave scheduler (pure): clones powered a bounded number at a time", () => {
  it("a new batch of 20 with 8 slots: the first 8, in turn order", () => {
    const jobs = batch(20, () => ["armed", "waiting"]).reverse();
    expect(powered(planWaves(jobs, 8))).toEqual(Array.from({ length: 8 }, (_, i) => `wave-a-${i + 1}`));
  });

  it("a slot is held while the machine boots, plans and restores; it frees when its job ends or stalls", () => {
    const loading = batch(8, (i) => [(["armed", "booted", "planning", "running"] as const)[i % 4]!, "powered"]);
    const rest = Array.from({ length: 4 }, (_, i) => member(9 + i, "armed", "waiting"));
    expect(planWaves([...loading, ...rest], 8)).toEqual([]);
    for (const ended of ["done", "failed", "cancelled", "expired", "stalled"] as const) {
      const one = [{ ...loading[0]!, state: ended }, ...loading.slice(1)];
      expect(powered(planWaves([...one, ...rest], 8)), ended).toEqual(["wave-a-9"]);
    }
  });

  it("an armed job holds a slot only once powered; one whose BMC failed does not (its machine is off)", () => {
    expect(holdsSlot(member(1, "armed", "powered"))).toBe(true);
    expect(holdsSlot(member(1, "armed", "waiting"))).toBe(false);
    expect(holdsSlot(member(1, "armed", "failed"))).toBe(false);
    expect(holdsSlot({ id: "x", state: "running", powerWave: null })).toBe(false);
    const failed = batch(8, (i) => (i <= 2 ? ["armed", "failed"] : ["running", "powered"]));
    expect(powered(planWaves([...failed, member(9, "armed", "waiting"), member(10, "armed", "waiting"), member(11, "armed", "waiting")], 8))).toEqual(["wave-a-9", "wave-a-10"]);
  });

  it("a waiting machine whose job is no longer armed is skipped, never powered; one booted by hand holds a slot", () => {
    const jobs = [member(1, "cancelled", "waiting"), member(2, "expired", "waiting"), member(3, "booted", "waiting"), member(4, "armed", "waiting"), member(5, "armed", "waiting")];
    expect(planWaves(jobs, 2)).toEqual([
      { job: "wave-a-1", do: "skip", note: "its job was cancelled at its turn: not powered by Lifeboat" },
      { job: "wave-a-2", do: "skip", note: "its job was expired at its turn: not powered by Lifeboat" },
      { job: "wave-a-3", do: "skip", note: "its job was booted at its turn: not powered by Lifeboat" },
      { job: "wave-a-4", do: "power" },
    ]);
  });

  it("the bound is the server's, across batches; an earlier batch goes first", () => {
    const later = [1, 2, 3].map((n) => member(n, "armed", "waiting", "wave-b", "2026-12-05T11:00:00.000Z"));
    const earlier = [member(1, "running", "powered"), member(2, "armed", "waiting"), member(3, "armed", "waiting")];
    expect(powered(planWaves([...later, ...earlier], 3))).toEqual(["wave-a-2", "wave-a-3"]);
    expect(powered(planWaves([...later, ...earlier], 4))).toEqual(["wave-a-2", "wave-a-3", "wave-b-1"]);
  });

  it("a job's place in words, for jobs list", () => {
    expect(waveWords(member(3, "armed", "waiting").powerWave)).toBe("waiting 3/20");
    expect(waveWords(null)).toBe("");
  });
});
