import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { ConflictError, NotFoundError, UserError } from "../errors.ts";
import { hashToken, newToken } from "../tokens.ts";
import type { Logger } from "../log.ts";
import type { JobEvent, JobKind, JobRecord, PlanChoices, ProfileRecord, Store } from "../store/types.ts";
import type { AgentEvent, Hello } from "../plan/agent-api.ts";
import type { ServedPlan } from "../plan/plan.ts";
import { type JobInput, type Transition, STREAMING_STATES, TICKED_STATES, isActive, isMappable, planRefusal, transition } from "./job-state.ts";
import { type StoredMapping, resolveMapping } from "../plan/disks.ts";
import { keyRefusal, missingKey } from "./job-keys.ts";
import { STORE_LIMITS, agentLogRefusal } from "./retention.ts";

/** What the planner returns for a job: the plan it would serve, or why there is none yet. */
export type JobPlanResult = ({ ok: true } & ServedPlan) | { ok: false; reason: string };

/**
 * Builds a job's plan from its profile, the host's layout, the disks the agent saw
 * (job.hello; null before boot: a dry run against the captured disks) and the catalog.
 */
export type Planner = (job: JobRecord, profile: ProfileRecord) => Promise<JobPlanResult>;

/** The plan a job keeps, without the planner's verdict. */
function servedPlan({ script, steps, bytesTotal, dumps, detail }: ServedPlan): ServedPlan {
  return { script, steps, bytesTotal, dumps, detail };
}

export interface ArmRequest {
  mac: string;
  kind?: JobKind;
  /** Profile to use; default: the MAC's assignment, else the host that owns the MAC. */
  profile?: string;
  /** Restore point (Amanda datestamp) overriding the profile's. */
  at?: string;
  expiresHours?: number;
  hostname?: string;
  /** Plan choices overriding the profile's. */
  options?: PlanChoices;
  /**
   * The admin's say-so that this job's machine may get its boot token without an answer from
   * Lifeboat's DHCP (dhcp.mode off, a DHCP relay, a URL typed into the firmware): whoever asks
   * for its MAC's boot script gets a fresh token (jobs/boot-policy.ts; the README says the trade).
   */
  trustHttpBoot?: boolean;
  actor: string;
}

/** Expands `{n}` (the clone's number from 1) and `{mac}` (its MAC without colons) in a clone hostname pattern. */
export function cloneHostname(pattern: string, n: number, macAddr: string): string {
  return pattern.replaceAll("{n}", String(n)).replaceAll("{mac}", macAddr.replaceAll(":", ""));
}

/** "Any unknown machine that network-boots before `until` becomes a clone of `profile`" (off unless opened). */
export interface CloneWindow {
  profile: string;
  until: string;
  hostnamePattern: string | null;
  openedBy: string;
  /** Only MACs under these prefixes (vendor OUI, a rack's range) or these whole MACs; empty: any MAC. */
  only: string[];
  /** Clones armed through the window so far (the next one is number armed + 1). */
  armed: number;
}

export interface CloneWindowRequest {
  profile: string;
  minutes: number;
  hostnamePattern?: string;
  /** MACs or MAC prefixes, normalised (server/mac.ts normalizeMacPrefix). */
  only?: string[];
}

/** What vouched for a boot token's requester, for its job event and the audit log (jobs/boot-service.ts). */
export interface BootGrant {
  requester: string;
  mac: string;
  via: string;
  basis: string;
}

const CLONE_WINDOW_KEY = "clone-window";

function jobId(): string {
  return `job-${randomBytes(5).toString("hex")}`;
}

/**
 * Jobs: arming, the agent's calls, cancelling, expiry and stall detection. Every state
 * change goes through the pure `transition()` and is recorded as an event; admin actions
 * are audited. `changes` emits ("job", JobRecord, JobEvent?) for live views.
 */
export class JobService {
  readonly changes = new EventEmitter();

  constructor(
    private readonly store: Store,
    private readonly opts: { expireHours: number; heartbeatTimeoutSeconds: number; stalledFailHours: number; log: Logger; planner: Planner; agentLogJobMaxBytes?: number },
  ) {
    this.changes.setMaxListeners(0);
  }

  async arm(req: ArmRequest): Promise<JobRecord> {
    const { draft, profile, layoutVersion } = await this.draft(req);
    const job = await this.store.jobs.create(draft);
    const ev = await this.store.jobs.addEvent(job.id, "armed", { by: req.actor, profile: profile.name, kind: job.kind, layoutVersion, at: job.at, options: job.options });
    await this.store.audit.append({
      actor: req.actor,
      action: "job.arm",
      target: `job:${job.id}`,
      detail: { mac: req.mac, profile: profile.name, kind: job.kind, ...(job.trustHttpBoot ? { trustHttpBoot: true } : {}) },
    });
    this.opts.log.info({ job: job.id, mac: job.mac, profile: profile.name, kind: job.kind }, "job armed");
    this.changes.emit("job", job, ev);
    return job;
  }

  /**
   * The plan a job for this request would get, before it is armed: the planner run on a
   * job that is never stored (no agent has reported disks: a dry run against the captured
   * ones). Refuses like `arm` would (unknown profile, no layout).
   */
  async preview(req: ArmRequest): Promise<JobPlanResult> {
    const { draft, profile } = await this.draft(req);
    const now = new Date().toISOString();
    return this.opts.planner({ ...draft, createdAt: now, updatedAt: now }, profile);
  }

  /** The job `arm` would store, with its profile; refuses with what to do when one is missing. */
  private async draft(req: ArmRequest) {
    const profileName = req.profile ?? (await this.profileForMac(req.mac));
    const profile = await this.store.profiles.get(profileName);
    if (!profile) throw new NotFoundError(`no profile named ${profileName}`);
    const host = await this.store.hosts.get(profile.host);
    if (!host) throw new UserError(`profile ${profile.name}: no host named ${profile.host}`, 2);
    const layout = await this.store.layouts.get(profile.host, profile.layoutVersion ?? undefined);
    if (!layout)
      throw new UserError(
        `profile ${profile.name}: host ${profile.host} has no ${profile.layoutVersion ? `layout version ${profile.layoutVersion}` : "captured layout"} (run capture.sh on it first)`,
        2,
      );
    const kind = req.kind ?? "recover";
    const expiresMs = (req.expiresHours ?? this.opts.expireHours) * 3600_000;
    const draft: Omit<JobRecord, "createdAt" | "updatedAt"> = {
      id: jobId(),
      mac: req.mac,
      kind,
      profile: profile.name,
      state: "armed",
      step: 0,
      steps: 0,
      bytesDone: 0,
      bytesTotal: 0,
      tokenHash: null,
      planTokenHash: null,
      trustHttpBoot: req.trustHttpBoot ?? false,
      hostname: req.hostname ?? (kind === "recover" ? host.name : null),
      at: req.at ?? profile.at,
      hello: null,
      mapping: profile.options.mapping ?? null,
      options: req.options ?? {},
      plan: null,
      error: null,
      armedBy: req.actor,
      expiresAt: new Date(Date.now() + expiresMs).toISOString(),
      lastHeartbeatAt: null,
    };
    return { draft, profile, layoutVersion: layout.version };
  }

  private async profileForMac(mac: string): Promise<string> {
    const assigned = await this.store.assignments.get(mac);
    if (assigned) return assigned;
    const host = await this.store.hosts.byMac(mac);
    if (!host) throw new UserError(`${mac} is not assigned to a profile and belongs to no host (lifeboat hosts assign ${mac} PROFILE)`, 2);
    // A host's own MAC recovers that host: its profile is made on first use.
    if (!(await this.store.profiles.get(host.name)))
      await this.store.profiles.put({ name: host.name, host: host.name, layoutVersion: null, at: null, options: {} });
    return host.name;
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
  private async apply(id: string, input: JobInput, transient?: { type: string; data: unknown }): Promise<JobRecord> {
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
  private async commit(job: JobRecord, t: Transition, transient?: { type: string; data: unknown }): Promise<JobRecord | undefined> {
    const to = t.patch.state ?? job.state;
    // A finished job keeps no secrets.
    const stored = await this.store.jobs.transition(job.id, job.state, { patch: t.patch, events: t.events, dropKeys: !isActive(to) });
    if (!stored) return undefined;
    if (to !== job.state) this.opts.log.info({ job: job.id, mac: job.mac, from: job.state, to }, `job ${to}`);
    const events = stored.events.length ? stored.events : transient ? [{ id: 0, job: job.id, at: new Date().toISOString(), ...transient }] : [undefined];
    for (const ev of events) this.changes.emit("job", stored.job, ev);
    return stored.job;
  }

  async cancel(id: string, actor: string): Promise<JobRecord> {
    const job = await this.apply(id, { kind: "cancel", by: actor });
    await this.store.audit.append({ actor, action: "job.cancel", target: `job:${id}`, detail: null });
    return job;
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

  async openCloneWindow(req: CloneWindowRequest, actor: string): Promise<CloneWindow> {
    const profile = await this.store.profiles.get(req.profile);
    if (!profile) throw new NotFoundError(`no profile named ${req.profile}`);
    const w: CloneWindow = {
      profile: profile.name,
      until: new Date(Date.now() + req.minutes * 60_000).toISOString(),
      hostnamePattern: req.hostnamePattern ?? profile.options.hostnamePattern ?? null,
      openedBy: actor,
      only: req.only ?? [],
      armed: 0,
    };
    await this.store.settings.set(CLONE_WINDOW_KEY, JSON.stringify(w));
    await this.store.audit.append({ actor, action: "clone-window.open", target: `profile:${profile.name}`, detail: { until: w.until, only: w.only } });
    const who = w.only.length ? `an unknown machine under ${w.only.join(", ")}` : "any unknown machine";
    this.opts.log.warn({ profile: profile.name, until: w.until, only: w.only }, `clone window open: ${who} that network-boots becomes a clone`);
    return w;
  }

  async closeCloneWindow(actor: string): Promise<void> {
    await this.store.settings.set(CLONE_WINDOW_KEY, "null");
    await this.store.audit.append({ actor, action: "clone-window.close", target: "clone-window", detail: null });
  }

  /** The open clone window, or undefined (never opened, closed, or past its time). */
  async cloneWindow(): Promise<CloneWindow | undefined> {
    const w = JSON.parse((await this.store.settings.get(CLONE_WINDOW_KEY)) ?? "null") as CloneWindow | null;
    // A window stored before `only` existed has no limits.
    return w && Date.parse(w.until) > Date.now() ? { ...w, only: w.only ?? [] } : undefined;
  }

  /**
   * Does Lifeboat know this machine: a host owns its MAC, a profile is assigned to it, or it had
   * a job (so a finished clone that reboots goes to its own disk)? A known machine never becomes a clone.
   */
  async isKnownMachine(mac: string): Promise<boolean> {
    if ((await this.store.hosts.byMac(mac)) || (await this.store.assignments.get(mac))) return true;
    return (await this.store.jobs.list({ mac, limit: 1 })).length > 0;
  }

  /**
   * Arms an unknown machine as the next clone of the open window (the boot policy decided it
   * may: jobs/boot-policy.ts); undefined when the window closed meanwhile.
   */
  async armFromCloneWindow(mac: string): Promise<JobRecord | undefined> {
    const w = await this.cloneWindow();
    if (!w) return undefined;
    const n = w.armed + 1;
    await this.store.settings.set(CLONE_WINDOW_KEY, JSON.stringify({ ...w, armed: n }));
    return this.arm({
      mac,
      kind: "clone",
      profile: w.profile,
      hostname: w.hostnamePattern ? cloneHostname(w.hostnamePattern, n, mac) : undefined,
      actor: "clone-window",
    });
  }

  /** A LUKS passphrase for container UUID, used by create_luks; kept only while the job is active. */
  async setKey(id: string, uuid: string, secret: string, actor: string): Promise<void> {
    const job = await this.get(id);
    if (!isActive(job.state)) throw new ConflictError(`job ${id} is ${job.state}: keys go to active jobs only`);
    if (!secret) throw new UserError("empty passphrase", 2);
    await this.store.jobs.setKey(id, uuid, secret);
    const ev = await this.store.jobs.addEvent(id, "key", { uuid, by: actor });
    await this.store.audit.append({ actor, action: "job.key", target: `job:${id}`, detail: { uuid } });
    this.changes.emit("job", job, ev);
  }

  /**
   * The admin's explicit disk mapping (captured disk → target disk), for new hardware or
   * ambiguity. Each target is stored as the identity it has among the disks the machine
   * reported (a kernel name means nothing at the next boot); before it reported any, only
   * serial:, wwn:, by-id: or none are taken.
   */
  async map(id: string, pairs: Record<string, string>, actor: string): Promise<JobRecord> {
    const job = await this.get(id);
    if (!isMappable(job)) throw new ConflictError(`job ${id} is ${job.state}: the mapping can only change before the plan runs`);
    let mapping: StoredMapping;
    try {
      mapping = resolveMapping(pairs, job.hello?.disks ?? null);
    } catch (err) {
      throw new UserError(`job ${id}: mapping ${(err as Error).message}`, 2);
    }
    const next = await this.commit(job, { patch: { mapping: { ...(job.mapping ?? {}), ...mapping }, error: null }, events: [{ type: "mapped", data: { by: actor, mapping: pairs, resolved: mapping } }] });
    if (!next) throw new ConflictError(`job ${id} changed while being mapped; nothing applied, look again`);
    await this.store.audit.append({ actor, action: "job.map", target: `job:${id}`, detail: { mapping: pairs, resolved: mapping } });
    return next;
  }

  /**
   * A fresh boot token for the job's machine, which booted now (the plaintext goes on the kernel
   * command line only; the previous token stops working). Only the boot service calls this, once
   * the boot policy said who may have it; recorded with the requester in the job and the audit log.
   */
  async issueBootToken(id: string, grant: BootGrant): Promise<string> {
    const token = newToken();
    const job = await this.store.jobs.update(id, { tokenHash: hashToken(token) });
    const ev = await this.store.jobs.addEvent(id, "boot", { state: job.state, ...grant });
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
   * The plan the job would get, with no state change: against the disks its agent reported,
   * or before it booted, against the captured disks (same hardware assumed; the planner says so).
   */
  async dryRun(id: string): Promise<JobPlanResult> {
    const job = await this.get(id);
    const profile = await this.store.profiles.get(job.profile);
    if (!profile) return { ok: false, reason: `job ${id}: profile ${job.profile} no longer exists` };
    return this.opts.planner(job, profile);
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

  events(id: string, afterId?: number): Promise<JobEvent[]> {
    return this.store.jobs.events(id, { afterId });
  }
}
