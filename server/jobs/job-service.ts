import { randomBytes } from "node:crypto";
import { ConflictError, NotFoundError, UserError } from "../errors.ts";
import type { JobKind, JobRecord, PlanChoices, ProfileRecord, StaticAddress } from "../store/types.ts";
import type { RescueNet } from "../plan/cmdline.ts";
import { ACTIVE_STATES, isActive, isMappable } from "./job-state.ts";
import { cloneStaticAddress } from "../plan/clone-address.ts";
import { type StoredMapping, resolveMapping } from "../plan/disks.ts";
import type { JobPlanResult } from "./job-plan.ts";
import { JobLifecycle } from "./job-lifecycle.ts";

/** A job's place in a batch powered in waves (power/waves.ts, which schedules them). */
type PowerWaveEntry = NonNullable<JobRecord["powerWave"]>;

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
  /** Its place in a batch powered in waves (power/waves.ts); the wave scheduler powers it at its turn. */
  powerWave?: PowerWaveEntry;
  /** Clones: its number in the batch or window, from 1 ({n} of the hostname and address patterns). */
  cloneNumber?: number;
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

const CLONE_WINDOW_KEY = "clone-window";

function jobId(): string {
  return `job-${randomBytes(5).toString("hex")}`;
}

/** The job's plan choices with the profile's rescue network when the job names none. */
function withRescueNet(options: PlanChoices, fromProfile: RescueNet | undefined): PlanChoices {
  const rescueNet = options.rescueNet ?? fromProfile;
  return rescueNet ? { ...options, rescueNet } : options;
}

/**
 * Jobs as the admin drives them: arming (and its preview), cancelling, the disk mapping, LUKS
 * keys, dry runs and the clone window; audited. Everything after arming, and the one way a
 * job's state changes, is `JobLifecycle` (jobs/job-lifecycle.ts), which this extends.
 */
export class JobService extends JobLifecycle {
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
    const address = await this.staticAddress(req, kind, profile);
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
      // The rescue network is fixed when armed (the job's, else the profile's): the page and `jobs plan` show what the machine gets.
      options: { ...withRescueNet(req.options ?? {}, profile.options.rescueNet), ...(address ? { address } : {}) },
      plan: null,
      powerWave: req.powerWave ?? null,
      server: null,
      error: null,
      armedBy: req.actor,
      expiresAt: new Date(Date.now() + expiresMs).toISOString(),
      lastHeartbeatAt: null,
    };
    return { draft, profile, layoutVersion: layout.version };
  }

  /**
   * The restored system's own address: the request's, else a clone's from its profile's pattern
   * (plan/clone-address.ts). Refused while another active job's machine is to have it: two
   * clones must never come up on one address.
   */
  private async staticAddress(req: ArmRequest, kind: JobKind, profile: ProfileRecord): Promise<StaticAddress | undefined> {
    const fromProfile = profile.options.cloneAddress;
    if (req.options?.address || kind !== "clone" || !fromProfile) return req.options?.address;
    const n = req.cloneNumber ?? 1;
    let address: StaticAddress;
    try {
      address = cloneStaticAddress(fromProfile, n);
    } catch (err) {
      throw new UserError(`profile ${profile.name}: ${(err as Error).message}`, 2);
    }
    const ip = address.address.split("/")[0];
    const taken = (await this.store.jobs.list({ state: [...ACTIVE_STATES] })).find((j) => j.mac !== req.mac && j.options.address?.address.split("/")[0] === ip);
    if (taken) throw new UserError(`clone ${n} of profile ${profile.name}: ${ip} is already the address of job ${taken.id} (${taken.mac}, ${taken.state}); cancel it or change the profile's address pattern`, 2);
    return address;
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

  async cancel(id: string, actor: string): Promise<JobRecord> {
    const job = await this.apply(id, { kind: "cancel", by: actor });
    await this.store.audit.append({ actor, action: "job.cancel", target: `job:${id}`, detail: null });
    return job;
  }

  /** The server gives up on an active job, saying why (a drill that could not run): in its history and the audit log. */
  async fail(id: string, reason: string, actor: string): Promise<JobRecord> {
    const job = await this.apply(id, { kind: "fail", reason, by: actor });
    await this.store.audit.append({ actor, action: "job.fail", target: `job:${id}`, detail: { reason } });
    return job;
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
      cloneNumber: n,
      actor: "clone-window",
    });
  }

  /** Something done to the job's machine from outside its plan (a power action): in its history and the audit log. */
  async recordAction(id: string, type: string, data: Record<string, unknown>, actor: string): Promise<void> {
    const ev = await this.store.jobs.addEvent(id, type, { by: actor, ...data });
    await this.store.audit.append({ actor, action: `job.${type}`, target: `job:${id}`, detail: data });
    this.changes.emit("job", await this.get(id), ev);
  }

  /** A job's place in its powered batch changed (the wave scheduler's doing): stored, and shown to live views. */
  async setPowerWave(id: string, entry: PowerWaveEntry): Promise<JobRecord> {
    const job = await this.store.jobs.update(id, { powerWave: entry });
    this.changes.emit("job", job);
    return job;
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
   * The plan the job would get, with no state change: against the disks its agent reported,
   * or before it booted, against the captured disks (same hardware assumed; the planner says so).
   */
  async dryRun(id: string): Promise<JobPlanResult> {
    const job = await this.get(id);
    const profile = await this.store.profiles.get(job.profile);
    if (!profile) return { ok: false, reason: `job ${id}: profile ${job.profile} no longer exists` };
    return this.opts.planner(job, profile);
  }
}
