import type { AgentEvent, Hello } from "../plan/agent-api.ts";
import { DEFAULT_END_STATE, type EndState, type StepName } from "../plan/steps.ts";
import type { ServedPlan } from "../plan/plan.ts";
import type { JobRecord, JobState } from "../store/types.ts";

/**
 * The job state machine, as a pure function:
 *
 *   armed → booted → planning → running(step n of m, bytes) → done | failed | cancelled
 *   armed → expired            (nobody booted it in time: a forgotten job never wipes a machine later)
 *   booted|planning|running → stalled (agent silent past the heartbeat timeout) → back on its next call
 *   stalled → failed           (silent past the stall limit: it ends instead of waiting for a boot)
 *   running → done             when the plan's last call (plan_done) ended, even if the agent's own
 *                              "done" is lost: a plan that ran to its end is never served again
 *
 * Each input gives the fields to change and the event to record, or an error naming
 * why the transition is not allowed. The job service applies them to the store, each in one
 * transaction that holds only while the job is still in the state the transition was computed
 * from.
 */
export type JobInput =
  | { kind: "hello"; hello: Hello }
  /** `servedTo`: the hash of the boot token that fetched it (LUKS keys go to that boot only). */
  | { kind: "plan-served"; plan: ServedPlan; servedTo: string }
  | { kind: "plan-refused"; reason: string }
  /** `doneBytes`: bytes of the streams already finished (streams run one after another). */
  | { kind: "agent"; event: AgentEvent; doneBytes: number }
  | { kind: "heartbeat" }
  | { kind: "cancel"; by: string }
  /** The server itself gives up on an active job (a drill whose VM could not run, or whose plan was refused before any VM started). */
  | { kind: "fail"; reason: string; by: string }
  | { kind: "tick"; heartbeatTimeoutMs: number; stalledFailMs: number };

export interface Transition {
  patch: Partial<JobRecord>;
  /** Events to append to the job's history, in order; none for quiet updates (bytes, heartbeats). */
  events: Array<{ type: string; data: unknown }>;
}

export type TransitionResult = { ok: true; t: Transition } | { ok: false; error: string };

/**
 * The job states by what may happen in them: the one list the store, service, routes and page use.
 * ACTIVE: the job may still act on its machine (at most one per MAC). TICKED: the ticker looks at
 * them (expiry, stall, stall limit). STREAMING: its token may stream the dumps its plan names.
 * MAPPABLE: the admin's disk mapping may still change (no plan has run yet).
 */
export const ACTIVE_STATES: readonly JobState[] = ["armed", "booted", "planning", "running", "stalled"];
export const TERMINAL_STATES: readonly JobState[] = ["done", "failed", "cancelled", "expired"];
export const TICKED_STATES: readonly JobState[] = ACTIVE_STATES;
export const STREAMING_STATES: readonly JobState[] = ["running", "stalled"];
export const MAPPABLE_STATES: readonly JobState[] = ["armed", "booted", "planning"];
/** States in which the agent may fetch its plan (a retry while running is allowed until the first step starts). */
const PLANNABLE_STATES: readonly JobState[] = ["booted", "planning"];

/** The last call of every plan: when it has ended, the plan ran to its end. */
const LAST_STEP: StepName = "plan_done";

/** What the machine does now that its job is done: its served plan's end state (migration 0501 gave older plans reboot). */
function endStateOf(job: JobRecord): EndState {
  return job.plan?.endState ?? DEFAULT_END_STATE;
}

export function isActive(state: JobState): boolean {
  return ACTIVE_STATES.includes(state);
}

/**
 * Has the agent started the plan's last call? It runs a call only after every earlier one ended
 * well, so from here nothing on the disks is written any more: the plan must not run again.
 */
export function planReachedEnd(job: JobRecord): boolean {
  return job.steps > 0 && job.step >= job.steps;
}

/**
 * May a network boot of this job's machine get the rescue system? Only while the job is active
 * and its plan has not run to its end. Asked by whatever decides what a booting machine gets.
 */
export function isBootable(job: JobRecord): boolean {
  return isActive(job.state) && !planReachedEnd(job);
}

/** The state this job is in for what the agent does next: a stalled job's, the one it resumes to. */
function effectiveState(job: JobRecord): JobState {
  return job.state === "stalled" ? resumedState(job) : job.state;
}

/** May the admin change this job's disk mapping? Only before a plan runs. */
export function isMappable(job: JobRecord): boolean {
  return MAPPABLE_STATES.includes(effectiveState(job));
}

/** Why this job's agent may not be handed a plan now, or undefined when it may. */
export function planRefusal(job: JobRecord): string | undefined {
  const state = effectiveState(job);
  if (!isActive(job.state)) return `job ${job.id} is ${job.state}`;
  if (planReachedEnd(job)) return `job ${job.id}: its plan ran to its end; it is not served again`;
  if (PLANNABLE_STATES.includes(state) || (state === "running" && job.step === 0)) return undefined;
  return `job ${job.id} is ${state} at step ${job.step} of ${job.steps}: the plan is served once, after hello`;
}

type JobEventDraft = Transition["events"][number];
const ok = (patch: Partial<JobRecord>, ...events: Array<JobEventDraft | undefined>): TransitionResult => ({
  ok: true,
  t: { patch, events: events.filter((e) => e !== undefined) },
});
const no = (error: string): TransitionResult => ({ ok: false, error });

/** Where a stalled job goes back to when its agent speaks again. */
function resumedState(job: JobRecord): JobState {
  if (job.step > 0) return "running";
  return job.plan ? "planning" : "booted";
}

export function transition(job: JobRecord, input: JobInput, now: Date): TransitionResult {
  const at = now.toISOString();
  if (input.kind === "tick") return tick(job, input, now);
  if (input.kind === "cancel") {
    if (!isActive(job.state)) return no(`job ${job.id} is ${job.state}, not active: nothing to cancel`);
    // The token stays: the agent must hear "cancelled" (not "unauthorized") to stop before its next step.
    return ok({ state: "cancelled" }, { type: "cancelled", data: { by: input.by, from: job.state } });
  }
  if (input.kind === "fail") {
    if (!isActive(job.state)) return no(`job ${job.id} is ${job.state}, not active: nothing to fail`);
    return ok({ state: "failed", error: input.reason }, { type: "failed", data: { error: input.reason, by: input.by, from: job.state } });
  }
  if (!isActive(job.state)) {
    // An agent that did not hear the answer to its "done" says it again: acknowledged, nothing changes.
    if (job.state === "done" && input.kind === "agent" && input.event.type === "done") return ok({});
    return no(`job ${job.id} is ${job.state}`);
  }
  const alive: Partial<JobRecord> = { lastHeartbeatAt: at, ...(job.state === "stalled" ? { state: resumedState(job) } : {}) };
  const r = agentCall(job, input, alive);
  // Whatever call of its agent brings a stalled job back (a heartbeat, a retried report), its history says so.
  if (r.ok && job.state === "stalled" && input.kind !== "hello") r.t.events.unshift({ type: "resumed", data: { by: input.kind === "agent" ? input.event.type : input.kind } });
  return r;
}

/** A call from the job's agent (or the boot service on its behalf), on an active job; ALIVE is what any of them records. */
function agentCall(job: JobRecord, input: Exclude<JobInput, { kind: "tick" | "cancel" | "fail" }>, alive: Partial<JobRecord>): TransitionResult {
  switch (input.kind) {
    case "heartbeat":
      return ok(alive);
    case "hello":
      if (planReachedEnd(job)) return no(`job ${job.id}: its plan ran to its end; it does not start again`);
      // A machine that reboots mid-job says hello again: the plan is resumable, so start over from planning.
      return ok({ ...alive, state: "booted", step: 0, hello: input.hello }, { type: "booted", data: { from: job.state } });
    case "plan-served": {
      const refused = planRefusal(job);
      if (refused) return no(refused);
      return ok(
        { ...alive, state: "running", step: 0, steps: input.plan.steps, bytesTotal: input.plan.bytesTotal, bytesDone: 0, error: null, plan: input.plan, planTokenHash: input.servedTo },
        { type: "plan", data: { steps: input.plan.steps, bytesTotal: input.plan.bytesTotal } },
      );
    }
    case "plan-refused": {
      const refused = planRefusal(job);
      if (refused) return no(refused);
      return ok({ ...alive, state: "planning", error: input.reason }, { type: "plan-refused", data: { reason: input.reason } });
    }
    case "agent":
      return agentEvent(job, input.event, input.doneBytes, alive);
  }
}

function tick(job: JobRecord, input: Extract<JobInput, { kind: "tick" }>, now: Date): TransitionResult {
  if (job.state === "armed") {
    if (now.getTime() < Date.parse(job.expiresAt)) return ok({});
    return ok({ state: "expired", tokenHash: null }, { type: "expired", data: { expiresAt: job.expiresAt } });
  }
  if (!isActive(job.state)) return ok({});
  const silentSince = job.lastHeartbeatAt ?? job.updatedAt;
  const silentMs = now.getTime() - Date.parse(silentSince);
  if (silentMs <= input.heartbeatTimeoutMs) return ok({});
  // Its last call started and the agent went quiet (its "done" lost, or the machine rebooted into itself).
  if (planReachedEnd(job))
    return ok({ state: "done" }, { type: "done", data: { reason: `the plan ran to ${LAST_STEP}; the agent's own "done" was not heard`, silentSince, endState: endStateOf(job) } });
  if (job.state !== "stalled") return ok({ state: "stalled" }, { type: "stalled", data: { silentSince } });
  if (silentMs <= input.stalledFailMs) return ok({});
  const error = `stalled: no word from the agent since ${silentSince}; given up after ${Number((input.stalledFailMs / 3600_000).toFixed(2))} h (jobs.stalledFailHours; the plan is not served again)`;
  return ok({ state: "failed", error }, { type: "failed", data: { error, silentSince } });
}

function agentEvent(job: JobRecord, e: AgentEvent, doneBytes: number, alive: Partial<JobRecord>): TransitionResult {
  if (job.state === "armed") return no(`job ${job.id} has not booted yet (hello first)`);
  switch (e.type) {
    case "step-start":
      return ok({ ...alive, state: "running", step: e.step, steps: e.of }, { type: "step-start", data: e });
    case "step-end":
      // The last call ended well: the plan ran to its end, whether or not the agent's "done" arrives.
      if (e.name === LAST_STEP && e.step === job.steps && e.exitStatus === 0)
        return ok({ ...alive, state: "done", step: e.step }, { type: "step-end", data: e }, { type: "done", data: { reason: `the plan ran to ${LAST_STEP}`, endState: endStateOf(job) } });
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
      if (!planReachedEnd(job)) return no(`job ${job.id}: done reported at step ${job.step} of ${job.steps}`);
      return ok({ ...alive, state: "done" }, { type: "done", data: { endState: endStateOf(job) } });
    case "failed":
      return ok({ ...alive, state: "failed", error: e.error }, { type: "failed", data: e });
  }
}
