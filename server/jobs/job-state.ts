import type { AgentEvent } from "../plan/agent-api.ts";
import { ACTIVE_JOB_STATES, type JobRecord, type JobState } from "../store/types.ts";

/**
 * The job state machine, as a pure function:
 *
 *   armed → booted → planning → running(step n of m, bytes) → done | failed | cancelled
 *   armed → expired            (nobody booted it in time: a forgotten job never wipes a machine later)
 *   booted|planning|running → stalled (agent silent past the heartbeat timeout) → back on its next call
 *
 * Each input gives the fields to change and the event to record, or an error naming
 * why the transition is not allowed. The job service applies them to the store.
 */
export type JobInput =
  | { kind: "hello" }
  | { kind: "plan-served"; steps: number; bytesTotal: number }
  | { kind: "plan-refused"; reason: string }
  /** `doneBytes`: bytes of the streams already finished (streams run one after another). */
  | { kind: "agent"; event: AgentEvent; doneBytes: number }
  | { kind: "heartbeat" }
  | { kind: "cancel"; by: string }
  | { kind: "tick"; heartbeatTimeoutMs: number };

export interface Transition {
  patch: Partial<JobRecord>;
  /** Event type and data to append to the job's history; none for quiet updates (bytes, heartbeats). */
  event?: { type: string; data: unknown };
}

export type TransitionResult = { ok: true; t: Transition } | { ok: false; error: string };

export const TERMINAL_STATES: readonly JobState[] = ["done", "failed", "cancelled", "expired"];

export function isActive(state: JobState): boolean {
  return ACTIVE_JOB_STATES.includes(state);
}

const ok = (patch: Partial<JobRecord>, event?: Transition["event"]): TransitionResult => ({ ok: true, t: { patch, event } });
const no = (error: string): TransitionResult => ({ ok: false, error });

/** Where a stalled job goes back to when its agent speaks again. */
function resumedState(job: JobRecord): JobState {
  if (job.step > 0) return "running";
  return job.plan ? "planning" : "booted";
}

export function transition(job: JobRecord, input: JobInput, now: Date): TransitionResult {
  const at = now.toISOString();
  if (input.kind === "tick") {
    if (job.state === "armed" && now.getTime() >= Date.parse(job.expiresAt))
      return ok({ state: "expired", tokenHash: null }, { type: "expired", data: { expiresAt: job.expiresAt } });
    if (["booted", "planning", "running"].includes(job.state)) {
      const last = Date.parse(job.lastHeartbeatAt ?? job.updatedAt);
      if (now.getTime() - last > input.heartbeatTimeoutMs)
        return ok({ state: "stalled" }, { type: "stalled", data: { silentSince: job.lastHeartbeatAt ?? job.updatedAt } });
    }
    return ok({});
  }
  if (input.kind === "cancel") {
    if (!isActive(job.state)) return no(`job ${job.id} is ${job.state}, not active: nothing to cancel`);
    return ok({ state: "cancelled", tokenHash: null }, { type: "cancelled", data: { by: input.by, from: job.state } });
  }
  if (!isActive(job.state)) return no(`job ${job.id} is ${job.state}`);
  const alive: Partial<JobRecord> = { lastHeartbeatAt: at, ...(job.state === "stalled" ? { state: resumedState(job) } : {}) };
  switch (input.kind) {
    case "heartbeat":
      return ok(alive, job.state === "stalled" ? { type: "resumed", data: {} } : undefined);
    case "hello":
      // A machine that reboots mid-job says hello again: the plan is resumable, so start over from planning.
      return ok({ ...alive, state: "booted", step: 0 }, { type: "booted", data: { from: job.state } });
    case "plan-served":
      return ok(
        { ...alive, state: "running", step: 0, steps: input.steps, bytesTotal: input.bytesTotal, bytesDone: 0, error: null },
        { type: "plan", data: { steps: input.steps, bytesTotal: input.bytesTotal } },
      );
    case "plan-refused":
      return ok({ ...alive, state: "planning", error: input.reason }, { type: "plan-refused", data: { reason: input.reason } });
    case "agent":
      return agentEvent(job, input.event, input.doneBytes, alive);
  }
}

function agentEvent(job: JobRecord, e: AgentEvent, doneBytes: number, alive: Partial<JobRecord>): TransitionResult {
  if (job.state === "armed") return no(`job ${job.id} has not booted yet (hello first)`);
  switch (e.type) {
    case "step-start":
      return ok({ ...alive, state: "running", step: e.step, steps: e.of }, { type: "step-start", data: e });
    case "step-end":
      return ok({ ...alive, step: e.step, steps: e.of }, { type: "step-end", data: e });
    case "stream":
      // Byte counts arrive often: recorded on the job, an event only when a stream ends.
      return ok(
        { ...alive, bytesDone: doneBytes + e.bytes },
        e.done ? { type: "stream-done", data: e } : undefined,
      );
    case "log":
      return ok(alive, { type: "log", data: { message: e.message } });
    case "done":
      if (job.step < job.steps) return no(`job ${job.id}: done reported at step ${job.step} of ${job.steps}`);
      return ok({ ...alive, state: "done", tokenHash: null }, { type: "done", data: {} });
    case "failed":
      return ok({ ...alive, state: "failed", error: e.error }, { type: "failed", data: e });
  }
}
