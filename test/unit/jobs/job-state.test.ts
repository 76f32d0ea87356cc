import { describe, expect, it } from "vitest";
import { type JobInput, isBootable, transition } from "../../../server/jobs/job-state.ts";

import type { JobRecord } from "../../../server/store/types.ts";
import { job, plan, t0 } from "./job-fixture.ts";

const later = (ms: number) => new Date(t0.getTime() + ms);
const hello: Extract<JobInput, { kind: "hello" }> = { kind: "hello", hello: { disks: [], hardware: { macs: [] } } };
const served = (steps: number, bytesTotal = 0): JobInput => ({ kind: "plan-served", plan: plan(steps, bytesTotal), servedTo: "h" });
const tick = (heartbeatTimeoutMs: number, stalledFailMs = 3600_000): JobInput => ({ kind: "tick", heartbeatTimeoutMs, stalledFailMs });
const stepEnd = (step: number, of: number, name: string, exitStatus = 0): JobInput => ({
  kind: "agent",
  event: { type: "step-end", step, of, name, exitStatus, output: "", skipped: false },
  doneBytes: 0,
});
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
    let j = apply(job(), hello);
    expect(j.state).toBe("booted");
    j = apply(j, served(3, 1000));
    // The boot token that fetched the plan is the one that may fetch the LUKS keys.
    expect([j.state, j.steps, j.bytesTotal, j.planTokenHash]).toEqual(["running", 3, 1000, "h"]);
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
    // The token stays with the finished job: it can only be told the job ended (and repeat its "done").
    expect(j.tokenHash).toBe("h");
    expect(transition(j, { kind: "agent", event: { type: "done" }, doneBytes: 0 }, later(3000))).toEqual({ ok: true, t: { patch: {}, events: [] } });
  });

  it("an armed job nobody booted expires; before its time it stays armed", () => {
    const j = job();
    const before = transition(j, tick(60_000), later(23 * 3600_000));
    expect(before.ok && before.t.patch).toEqual({});
    const after = transition(j, tick(60_000), later(24 * 3600_000));
    expect(after.ok && after.t.patch.state).toBe("expired");
    expect(after.ok && after.t.patch.tokenHash).toBeNull();
  });

  it("a silent running job becomes stalled, and its next call brings it back", () => {
    const running = job({ state: "running", step: 2, steps: 5, lastHeartbeatAt: t0.toISOString() });
    const quiet = transition(running, tick(60_000), later(59_000));
    expect(quiet.ok && quiet.t.patch.state).toBeUndefined();
    const stalled = transition(running, tick(60_000), later(61_000));
    expect(stalled.ok && stalled.t.patch.state).toBe("stalled");
    const back = transition({ ...running, state: "stalled" }, { kind: "heartbeat" }, later(70_000));
    expect(back.ok && back.t.patch.state).toBe("running");
    expect(back.ok && back.t.events).toEqual([{ type: "resumed", data: { by: "heartbeat" } }]);
    // A report that arrives first (the agent retried it) brings it back just the same, and says so.
    const report = transition({ ...running, state: "stalled" }, { kind: "agent", event: { type: "step-end", step: 2, of: 5, name: "restore_dump", exitStatus: 0 } as never, doneBytes: 0 }, later(70_000));
    expect(report.ok && report.t.patch.state).toBe("running");
    expect(report.ok && report.t.events.map((e) => [e.type, e.data])).toEqual([["resumed", { by: "step-end" }], ["step-end", expect.objectContaining({ step: 2 })]]);
    // A machine that rebooted says hello: that is a new boot, not a resumption.
    const hello = transition({ ...running, state: "stalled" }, { kind: "hello", hello: {} as never }, later(70_000));
    expect(hello.ok && hello.t.events.map((e) => e.type)).toEqual(["booted"]);
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

  it("cancel keeps the token, so the agent is told the job was cancelled instead of being locked out", () => {
    const j = apply(job({ state: "running", step: 2, steps: 5 }), { kind: "cancel", by: "admin" });
    expect([j.state, j.tokenHash]).toEqual(["cancelled", "h"]);
    for (const input of [{ kind: "heartbeat" }, stepEnd(3, 5, "wipe_disk")] as JobInput[])
      expect(transition(j, input, t0)).toEqual({ ok: false, error: "job job-1 is cancelled" });
  });

  it("the plan is served after hello only (a lost answer may be fetched again until the first step starts)", () => {
    const booted = apply(job(), hello);
    const running = apply(booted, served(5));
    expect(transition(running, served(5), t0).ok).toBe(true);
    const started = apply(running, { kind: "agent", event: { type: "step-start", step: 1, of: 5, name: "plan_begin" }, doneBytes: 0 });
    expect(transition(started, served(5), t0)).toEqual({ ok: false, error: "job job-1 is running at step 1 of 5: the plan is served once, after hello" });
    expect(transition(job(), served(5), t0)).toEqual({ ok: false, error: "job job-1 is armed at step 0 of 0: the plan is served once, after hello" });
  });

  it("the end of plan_done is the end of the job, even when the agent's own done is lost", () => {
    const last = job({ state: "running", step: 5, steps: 5, plan: plan(5) });
    const r = transition(last, stepEnd(5, 5, "plan_done"), later(1000));
    expect(r.ok && r.t.patch.state).toBe("done");
    expect(r.ok && r.t.events.map((e) => e.type)).toEqual(["step-end", "done"]);
    // The done event says what the machine does now: its served plan's end state.
    expect(r.ok && r.t.events[1]!.data).toEqual({ reason: "the plan ran to plan_done", endState: "reboot" });
    const held = transition({ ...last, plan: { ...plan(5), endState: "hold" } }, stepEnd(5, 5, "plan_done"), later(1000));
    expect(held.ok && held.t.events[1]!.data).toEqual({ reason: "the plan ran to plan_done", endState: "hold" });
    // A failed plan_done, or a step-end that is not the plan's last call, does not finish it.
    for (const input of [stepEnd(5, 5, "plan_done", 1), stepEnd(4, 5, "unmount_all"), stepEnd(5, 5, "unmount_all")]) {
      const other = transition(last, input, later(1000));
      expect(other.ok && other.t.patch.state, JSON.stringify(input)).toBeUndefined();
    }
  });

  it("a job whose plan reached its last call is never booted or planned again; silent, it is done", () => {
    const last = job({ state: "running", step: 5, steps: 5, plan: plan(5), lastHeartbeatAt: t0.toISOString() });
    expect(isBootable(last)).toBe(false);
    expect(isBootable({ ...last, state: "stalled" })).toBe(false);
    expect(isBootable({ ...last, step: 4 })).toBe(true);
    expect(transition(last, hello, later(1000))).toEqual({ ok: false, error: "job job-1: its plan ran to its end; it does not start again" });
    expect(transition({ ...last, state: "stalled" }, served(5), later(1000))).toEqual({ ok: false, error: "job job-1: its plan ran to its end; it is not served again" });
    const r = transition(last, tick(60_000), later(61_000));
    expect(r.ok && r.t.patch.state).toBe("done");
    expect(r.ok && r.t.events[0]).toMatchObject({ type: "done", data: { reason: 'the plan ran to plan_done; the agent\'s own "done" was not heard' } });
  });

  it("a stalled job ends as failed, with the reason, after the stall limit", () => {
    const stalled = job({ state: "stalled", step: 2, steps: 5, plan: plan(5), lastHeartbeatAt: t0.toISOString() });
    const before = transition(stalled, tick(60_000, 3600_000), later(3599_000));
    expect(before.ok && before.t.patch).toEqual({});
    const after = transition(stalled, tick(60_000, 3600_000), later(3601_000));
    expect(after.ok && after.t.patch.state).toBe("failed");
    expect(after.ok && after.t.patch.error).toBe(`stalled: no word from the agent since ${t0.toISOString()}; given up after 1 h (jobs.stalledFailHours; the plan is not served again)`);
    expect(isBootable({ ...stalled, state: "failed" })).toBe(false);
  });
});
