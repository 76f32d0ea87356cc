import { describe, expect, it } from "vitest";
import { transition } from "../../../server/jobs/job-state.ts";
import type { JobRecord } from "../../../server/store/types.ts";

const t0 = new Date("2026-11-30T10:00:00Z");
function job(patch: Partial<JobRecord> = {}): JobRecord {
  return {
    id: "job-1",
    mac: "52:54:00:00:00:01",
    kind: "recover",
    profile: "web1",
    state: "armed",
    step: 0,
    steps: 0,
    bytesDone: 0,
    bytesTotal: 0,
    tokenHash: "h",
    hostname: "web1",
    at: null,
    hello: null,
    mapping: null,
    plan: null,
    error: null,
    armedBy: "test",
    createdAt: t0.toISOString(),
    updatedAt: t0.toISOString(),
    expiresAt: new Date(t0.getTime() + 24 * 3600_000).toISOString(),
    lastHeartbeatAt: null,
    ...patch,
  };
}
const later = (ms: number) => new Date(t0.getTime() + ms);
function apply(j: JobRecord, ...inputs: Parameters<typeof transition>[1][]): JobRecord {
  for (const input of inputs) {
    const r = transition(j, input, later(1000));
    if (!r.ok) throw new Error(r.error);
    j = { ...j, ...r.t.patch };
  }
  return j;
}

describe("job state machine", () => {
  it("walks armed → booted → running(step n of m, bytes) → done", () => {
    let j = apply(job(), { kind: "hello" });
    expect(j.state).toBe("booted");
    j = apply(j, { kind: "plan-served", steps: 3, bytesTotal: 1000 });
    expect([j.state, j.steps, j.bytesTotal]).toEqual(["running", 3, 1000]);
    j = apply(
      j,
      { kind: "agent", event: { type: "step-start", step: 1, of: 3, name: "check_disk" }, doneBytes: 0 },
      { kind: "agent", event: { type: "stream", dumpId: "d1", bytes: 400, totalBytes: 600, done: false }, doneBytes: 0 },
    );
    expect([j.step, j.bytesDone]).toEqual([1, 400]);
    j = apply(j, { kind: "agent", event: { type: "stream", dumpId: "d2", bytes: 100, totalBytes: 400, done: false }, doneBytes: 600 });
    expect(j.bytesDone).toBe(700);
    const early = transition(j, { kind: "agent", event: { type: "done" }, doneBytes: 0 }, later(2000));
    expect(early).toEqual({ ok: false, error: "job job-1: done reported at step 1 of 3" });
    j = apply(j, { kind: "agent", event: { type: "step-start", step: 3, of: 3, name: "plan_done" }, doneBytes: 0 }, { kind: "agent", event: { type: "done" }, doneBytes: 0 });
    expect(j.state).toBe("done");
    expect(j.tokenHash).toBeNull();
  });

  it("an armed job nobody booted expires; before its time it stays armed", () => {
    const j = job();
    const before = transition(j, { kind: "tick", heartbeatTimeoutMs: 60_000 }, later(23 * 3600_000));
    expect(before.ok && before.t.patch).toEqual({});
    const after = transition(j, { kind: "tick", heartbeatTimeoutMs: 60_000 }, later(24 * 3600_000));
    expect(after.ok && after.t.patch.state).toBe("expired");
    expect(after.ok && after.t.patch.tokenHash).toBeNull();
  });

  it("a silent running job becomes stalled, and its next call brings it back", () => {
    const running = job({ state: "running", step: 2, steps: 5, lastHeartbeatAt: t0.toISOString() });
    const quiet = transition(running, { kind: "tick", heartbeatTimeoutMs: 60_000 }, later(59_000));
    expect(quiet.ok && quiet.t.patch.state).toBeUndefined();
    const stalled = transition(running, { kind: "tick", heartbeatTimeoutMs: 60_000 }, later(61_000));
    expect(stalled.ok && stalled.t.patch.state).toBe("stalled");
    const back = transition({ ...running, state: "stalled" }, { kind: "heartbeat" }, later(70_000));
    expect(back.ok && back.t.patch.state).toBe("running");
    expect(back.ok && back.t.event?.type).toBe("resumed");
  });

  it("cancel works from any active state and nowhere else", () => {
    for (const state of ["armed", "booted", "planning", "running", "stalled"] as const)
      expect(transition(job({ state }), { kind: "cancel", by: "t" }, t0).ok).toBe(true);
    for (const state of ["done", "failed", "cancelled", "expired"] as const) {
      const r = transition(job({ state }), { kind: "cancel", by: "t" }, t0);
      expect(r).toEqual({ ok: false, error: `job job-1 is ${state}, not active: nothing to cancel` });
    }
  });

  it("a finished job takes no more agent calls; an armed one none before hello", () => {
    expect(transition(job({ state: "done" }), { kind: "heartbeat" }, t0)).toEqual({ ok: false, error: "job job-1 is done" });
    expect(transition(job(), { kind: "agent", event: { type: "log", message: "x" }, doneBytes: 0 }, t0)).toEqual({
      ok: false,
      error: "job job-1 has not booted yet (hello first)",
    });
  });

  it("a failure records the error and stops the job", () => {
    const j = apply(job({ state: "running", steps: 4, step: 2 }), { kind: "agent", event: { type: "failed", step: 2, error: "make_fs: exit 1" }, doneBytes: 0 });
    expect([j.state, j.error]).toEqual(["failed", "make_fs: exit 1"]);
  });

  it("a refused plan leaves the job planning with the reason", () => {
    const j = apply(job({ state: "booted" }), { kind: "plan-refused", reason: "disk sda: ambiguous" });
    expect([j.state, j.error]).toEqual(["planning", "disk sda: ambiguous"]);
  });
});
