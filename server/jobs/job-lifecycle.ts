import { EventEmitter } from "node:events";
import { ConflictError, NotFoundError, UserError } from "../errors.ts";
import { hashToken, newToken } from "../tokens.ts";
import type { Logger } from "../log.ts";
import type { JobEvent, JobRecord, Store } from "../store/types.ts";
import type { AgentEvent, Hello } from "../plan/agent-api.ts";
import type { ServedPlan } from "../plan/plan.ts";
import { type JobInput, type Transition, STREAMING_STATES, TICKED_STATES, isActive, planRefusal, transition } from "./job-state.ts";
import type { JobPlanResult, Planner } from "./job-plan.ts";
import { keyRefusal, missingKey } from "./job-keys.ts";
import { STORE_LIMITS, agentLogRefusal } from "./retention.ts";
import { deadBefore } from "./servers.ts";

/** What vouched for a boot token's requester, for its job event and the audit log (jobs/boot-service.ts). */
export interface BootGrant {
  requester: string;
  mac: string;
  via: string;
  basis: string;
}

/** The plan a job keeps, without the planner's verdict. */
function servedPlan({ script, steps, bytesTotal, dumps, endState, detail }: ServedPlan): ServedPlan {
  return { script, steps, bytesTotal, dumps, endState, detail };
}

/** The clock's limits (config jobs.*), the log, the planner and the cap on an agent's logs. */
interface JobServiceOptions {
  /** This server's name (config name): the boot tokens it issues claim the job for it. */
  server: string;
  expireHours: number;
  heartbeatTimeoutSeconds: number;
  stalledFailHours: number;
  log: Logger;
  planner: Planner;
  agentLogJobMaxBytes?: number;
}

/**
 * A job once armed: the one way its state changes (every input goes through the pure
 * `transition()`, is stored only against the state it was computed from and recorded as an
 * event), what the booting machine and its agent do to it (boot token, hello, heartbeat,
 * step reports, log, plan, LUKS keys, dump streams) and the clock (`tick`). The admin's side
 * (arm, cancel, map, keys, the clone window) is `JobService` (jobs/job-service.ts).
 * `changes` emits ("job", JobRecord, JobEvent?) for live views.
 */
export class JobLifecycle {
  readonly changes = new EventEmitter();

  constructor(
    protected readonly store: Store,
    protected readonly opts: JobServiceOptions,
  ) {
    this.changes.setMaxListeners(0);
  }

  async get(id: string): Promise<JobRecord> {
    const job = await this.store.jobs.get(id);
    if (!job) throw new NotFoundError(`no job ${id}`);
    return job;
  }

  /**
   * Applies one input to the job as it is now. The change is stored only if the job is still in
   * the state the transition was computed from; if it changed meanwhile (a racing call), the
   * input is judged again against the new record, so it is never applied to a stale one.
   * `transient` is shown to live views when nothing is recorded (stream progress).
   */
  protected async apply(id: string, input: JobInput, transient?: { type: string; data: unknown }): Promise<JobRecord> {
    for (let attempt = 1; ; attempt++) {
      const job = await this.get(id);
      const r = transition(job, input, new Date());
      if (!r.ok) throw new ConflictError(r.error);
      if (Object.keys(r.t.patch).length === 0 && r.t.events.length === 0) return job;
      const next = await this.commit(job, r.t, transient);
      if (next) return next;
      if (attempt === 3) throw new ConflictError(`job ${id} kept changing under this ${input.kind}; nothing applied, try again`);
    }
  }

  /** Stores a transition computed from `job`, if the job is still in that state; undefined otherwise. */
  protected async commit(job: JobRecord, t: Transition, transient?: { type: string; data: unknown }): Promise<JobRecord | undefined> {
    const to = t.patch.state ?? job.state;
    // A finished job keeps no secrets.
    const stored = await this.store.jobs.transition(job.id, job.state, { patch: t.patch, events: t.events, dropKeys: !isActive(to) });
    if (!stored) return undefined;
    if (to !== job.state) this.opts.log.info({ job: job.id, mac: job.mac, from: job.state, to }, `job ${to}`);
    const events = stored.events.length ? stored.events : transient ? [{ id: 0, job: job.id, at: new Date().toISOString(), ...transient }] : [undefined];
    for (const ev of events) this.changes.emit("job", stored.job, ev);
    return stored.job;
  }

  /**
   * May this bearer token stream this dump? Only the current boot token of an active job
   * whose served plan restores that dump (a machine reads its own backups, nobody else's).
   */
  async mayStream(token: string | undefined, dumpId: string): Promise<boolean> {
    if (!token) return false;
    const hash = hashToken(token);
    const job = (await this.store.jobs.list({ state: [...STREAMING_STATES] })).find((j) => j.tokenHash === hash);
    return job?.plan?.dumps.includes(dumpId) ?? false;
  }

  /**
   * A fresh boot token for the job's machine, which booted now (the plaintext goes on the kernel
   * command line only; the previous token stops working). Only the boot service calls this, once
   * the boot policy said who may have it; recorded with the requester in the job and the audit log.
   */
  async issueBootToken(id: string, grant: BootGrant): Promise<string> {
    const token = newToken();
    // The claim: this server serves the boot, unless another live server already does (a ConflictError then).
    const job = await this.store.jobs.claim(id, this.opts.server, hashToken(token), deadBefore(Date.now()));
    if (!job) {
      const holder = (await this.get(id)).server;
      throw new ConflictError(`job ${id} is served by server ${holder ?? "?"}, which is alive: no second server serves it`);
    }
    const ev = await this.store.jobs.addEvent(id, "boot", { state: job.state, server: this.opts.server, ...grant });
    await this.store.audit.append({ actor: `boot:${grant.requester}`, action: "job.boot-token", target: `job:${id}`, detail: grant });
    this.changes.emit("job", job, ev);
    return token;
  }

  /** A boot the policy refused a token: in the job's history and the audit log, with the requester. */
  async bootRefused(id: string, refusal: { requester: string; mac: string; reason: string }): Promise<void> {
    const ev = await this.store.jobs.addEvent(id, "boot-refused", refusal);
    await this.store.audit.append({ actor: `boot:${refusal.requester}`, action: "job.boot-refused", target: `job:${id}`, detail: refusal });
    this.changes.emit("job", await this.get(id), ev);
  }

  /**
   * A LUKS passphrase for the agent: only to the boot the plan was served to, each key once
   * (jobs/job-keys.ts). undefined: never supplied; a ConflictError says why not otherwise.
   * Every hand-out and refusal is in the job's history and the audit log.
   */
  async serveKey(id: string, uuid: string, tokenHash: string, requester: string): Promise<string | undefined> {
    const job = await this.get(id);
    const record = async (type: "key-served" | "key-refused", data: Record<string, unknown>) => {
      const ev = await this.store.jobs.addEvent(id, type, { uuid, requester, ...data });
      await this.store.audit.append({ actor: `agent:${requester}`, action: `job.${type}`, target: `job:${id}`, detail: { uuid, ...data } });
      this.changes.emit("job", job, ev);
    };
    const refused = keyRefusal(job, tokenHash);
    if (refused) {
      await record("key-refused", { reason: refused });
      throw new ConflictError(refused);
    }
    const secret = await this.store.jobs.takeKey(id, uuid);
    if (secret !== undefined) {
      await record("key-served", {});
      return secret;
    }
    const servedBefore = (await this.store.jobs.events(id)).some((e) => e.type === "key-served" && (e.data as { uuid?: string }).uuid === uuid);
    const missing = missingKey(job, uuid, servedBefore);
    await record("key-refused", { reason: missing.message });
    if (missing.served) throw new ConflictError(missing.message);
    return undefined;
  }

  async hello(id: string, hello: Hello): Promise<JobRecord> {
    return this.apply(id, { kind: "hello", hello });
  }

  async heartbeat(id: string): Promise<JobRecord> {
    return this.apply(id, { kind: "heartbeat" });
  }

  /** Stores the agent's whole log (it posts it at the end); refused (TooLargeError) past the job's cap on agent logs. */
  async agentLog(id: string, text: string): Promise<void> {
    const cap = this.opts.agentLogJobMaxBytes ?? STORE_LIMITS.agentLogJobMaxBytes;
    const data = { text };
    const refusal = agentLogRefusal(id, await this.store.jobs.eventBytes(id, "agent-log"), Buffer.byteLength(JSON.stringify(data)), cap);
    if (refusal) throw refusal;
    await this.store.jobs.addEvent(id, "agent-log", data);
  }

  async agentEvent(id: string, event: AgentEvent): Promise<JobRecord> {
    const doneBytes =
      event.type === "stream"
        ? (await this.store.jobs.events(id))
            .filter((e) => e.type === "stream-done" && (e.data as { dumpId: string }).dumpId !== event.dumpId)
            .reduce((n, e) => n + (e.data as { bytes: number }).bytes, 0)
        : 0;
    return this.apply(id, { kind: "agent", event, doneBytes }, event.type === "stream" ? { type: "stream", data: event } : undefined);
  }

  /**
   * Builds the plan for a booted job; refusals leave the job in `planning` with the reason. The
   * plan is served only if the job is still in the state it was built for: a job cancelled (or
   * changed by another call) while the planner ran gets a ConflictError and no plan.
   * `tokenHash`: the boot token that asked; a served plan records it (LUKS keys go to that boot only).
   */
  async plan(id: string, tokenHash: string): Promise<JobPlanResult> {
    const job = await this.get(id);
    const notNow = planRefusal(job);
    if (notNow) throw new ConflictError(notNow);
    if (!job.hello) return { ok: false, reason: `job ${id}: the agent has not reported its disks yet` };
    const profile = await this.store.profiles.get(job.profile);
    if (!profile) return { ok: false, reason: `job ${id}: profile ${job.profile} no longer exists` };
    const result = await this.opts.planner(job, profile);
    const input: JobInput = result.ok
      ? { kind: "plan-served", plan: servedPlan(result), servedTo: tokenHash }
      : { kind: "plan-refused", reason: result.reason };
    const r = transition(job, input, new Date());
    if (!r.ok) throw new ConflictError(r.error);
    if (!(await this.commit(job, r.t))) {
      const now = await this.get(id);
      throw new ConflictError(`job ${id} became ${now.state} while its plan was being built: no plan served`);
    }
    return result;
  }

  /**
   * Expires forgotten armed jobs, marks silent ones stalled, ends those stalled past the limit
   * (failed) and those whose plan reached its last call (done); run on a timer by `serve`.
   */
  async tick(): Promise<void> {
    const input: JobInput = {
      kind: "tick",
      heartbeatTimeoutMs: this.opts.heartbeatTimeoutSeconds * 1000,
      stalledFailMs: this.opts.stalledFailHours * 3600_000,
    };
    for (const job of await this.store.jobs.list({ state: [...TICKED_STATES] })) {
      try {
        await this.apply(job.id, input);
      } catch (err) {
        // A job that ended between the listing and now (an agent's call, a cancel) is not the ticker's.
        if (!(err instanceof UserError)) throw err;
        this.opts.log.debug({ job: job.id, err: err.message }, "tick skipped a job that changed");
      }
    }
  }

  /** Another server changed this job (Store.watchJobs): shown to this server's live views, with its event. */
  async relay(id: string, eventId: number | null): Promise<void> {
    const job = await this.store.jobs.get(id);
    if (!job) return;
    const ev = eventId === null ? undefined : (await this.store.jobs.events(id, { afterId: eventId - 1 })).find((e) => e.id === eventId);
    this.changes.emit("job", job, ev);
  }

  events(id: string, afterId?: number): Promise<JobEvent[]> {
    return this.store.jobs.events(id, { afterId });
  }
}
