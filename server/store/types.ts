/**
 * The store's repository interface. Callers depend on these types only, so a PostgreSQL
 * implementation can sit beside the SQLite one for multi-server sites. Every method is
 * async for that reason, although better-sqlite3 answers synchronously.
 */

import type { AmandaKey, AmandaKeyInfo } from "../amanda/decrypt.ts";
import type { RescueNet } from "../plan/cmdline.ts";
import type { CatalogDump } from "../amanda/model.ts";
import type { Hello } from "../plan/agent-api.ts";
import type { StoredMapping } from "../plan/disks.ts";
import type { ServedPlan } from "../plan/plan.ts";
import type { EndState } from "../plan/steps.ts";
import type { PowerConfig } from "../power/power.ts";
import type { PowerWaveEntry } from "../power/waves.ts";

export interface HostRecord {
  name: string;
  /** SHA-256 of the host's capture token (the token itself is shown once). */
  tokenHash: string;
  smbiosUuid: string | null;
  macs: string[];
  amandaConfig: string | null;
  /** DLE (Amanda disk name) → mount point it restores to. */
  dleMap: Record<string, string>;
  createdAt: string;
}

export interface LayoutRecord {
  host: string;
  version: number;
  capturedAt: string;
  document: unknown;
}

export interface HostRepo {
  add(h: Omit<HostRecord, "createdAt">): Promise<HostRecord>;
  get(name: string): Promise<HostRecord | undefined>;
  byMac(mac: string): Promise<HostRecord | undefined>;
  list(): Promise<HostRecord[]>;
  update(name: string, patch: Partial<Omit<HostRecord, "name" | "createdAt">>): Promise<HostRecord>;
  remove(name: string): Promise<boolean>;
}

export interface LayoutRepo {
  /** Stores a new version and returns it (versions count from 1 per host). */
  add(host: string, document: unknown, capturedAt?: string): Promise<LayoutRecord>;
  get(host: string, version?: number): Promise<LayoutRecord | undefined>;
  versions(host: string): Promise<Array<Omit<LayoutRecord, "document">>>;
  /** Deletes all but the newest `keep` versions of each host, never a version a profile pins; returns how many went. */
  prune(keep: number): Promise<number>;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  detail: unknown;
}

export interface AuditRepo {
  append(e: Omit<AuditEntry, "id" | "at">): Promise<AuditEntry>;
  list(opts?: { target?: string; limit?: number }): Promise<AuditEntry[]>;
}

/** A generic key/value table for small pieces of server state (last refresh times and the like). */
export interface SettingsRepo {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
}

export interface Store {
  readonly hosts: HostRepo;
  readonly layouts: LayoutRepo;
  readonly audit: AuditRepo;
  readonly settings: SettingsRepo;
  readonly profiles: ProfileRepo;
  readonly assignments: AssignmentRepo;
  readonly jobs: JobRepo;
  readonly leases: LeaseRepo;
  readonly catalog: CatalogRepo;
  readonly power: PowerRepo;
  readonly amandaKeys: AmandaKeyRepo;
  readonly servers: ServerRepo;
  /**
   * Calls `onJob` when another server (another process) changed a job in this store: its id and
   * the event it recorded, if one. PostgreSQL: LISTEN/NOTIFY; SQLite (one server per file): never.
   * Resolves to the function that stops watching.
   */
  watchJobs(onJob: (id: string, eventId: number | null) => void): Promise<() => Promise<void>>;
  /** Versions of the migrations applied, in order. */
  migrations(): Promise<string[]>;
  /**
   * A consistent copy of the whole store in `file` (a new file), taken while it is in use,
   * without sealed secrets: the jobs' LUKS keys are dropped from the copy and their bytes
   * overwritten (a recovery bundle travels; docs/bundle-format.md, "Secrets").
   */
  snapshot(file: string): Promise<void>;
  close(): Promise<void>;
}

/** What a machine becomes: a host's layout (latest or pinned) and restore point, or a clone template. */
export interface ProfileRecord {
  name: string;
  host: string;
  /** null: the host's latest layout at plan time. */
  layoutVersion: number | null;
  /** Amanda datestamp to restore to; null: newest. */
  at: string | null;
  options: ProfileOptions;
  createdAt: string;
}

/** The plan builder's choices a profile or a job may make (the job's win); PlanOptions in plan/plan.ts. */
export interface PlanChoices {
  /** New UUIDs for every table, partition, filesystem and swap; fstab/crypttab rewritten (fix_fstab). */
  newUuids?: boolean;
  /** Captured partition path that takes the rest of its (bigger) disk; default: the last resizable one. */
  grow?: string;
  /** What the machine does once its job is done: reboot (default), poweroff or hold (plan/steps.ts END_STATES). */
  endState?: EndState;
  /** How the rescue system reaches Lifeboat (plan/cmdline.ts); absent: DHCP on the NIC that booted. */
  rescueNet?: RescueNet;
  /** Captured NIC name → the new machine's NIC (MAC) that takes its name and configuration (plan/nics.ts); else by MAC, then by order. */
  nicMap?: Record<string, string>;
  /** The restored system's own static address on its captured default-route NIC (set_address); clones get it from their profile's cloneAddress. */
  address?: StaticAddress;
}

/** A static address as the restored system is to configure it: 10.0.5.21/24, a gateway, DNS servers. */
export interface StaticAddress {
  address: string;
  gateway?: string;
  dns?: string[];
}

export interface ProfileOptions extends PlanChoices {
  /** Captured disk name → the target's identity (serial:, wwn:, by-id: as the admin gave it), or null: left out. */
  mapping?: StoredMapping;
  /** Removable and USB disks: restored when captured, and possible targets (default: neither). */
  includeRemovable?: boolean;
  migration?: "proportional" | "exact";
  bootloader?: "auto" | "none";
  /** Clone identity template: hostname pattern with {n} / {mac}. */
  hostnamePattern?: string;
  /** Clones' own addresses: `pattern` like 10.0.5.{n+20}/24 (plan/clone-address.ts), with the gateway and DNS they share. */
  cloneAddress?: { pattern: string; gateway?: string; dns?: string[] };
  /** A host's own profile: how often its drill runs (7d, 12h, off), over config drill.every (drill/schedule.ts). */
  drillEvery?: string;
  /** A host's own profile: its drills' checks (tcp:PORT, ssh:COMMAND: drill/checks.ts) and the restored system's address they reach (ADDR/PREFIX). */
  drillChecks?: string[];
  drillAddress?: string;
}

/** The kinds of job, the one list: a drill is a recovery into a throwaway VM on the server (server/drill/). */
export const JOB_KINDS = ["recover", "clone", "drill"] as const;
export type JobKind = (typeof JOB_KINDS)[number];
export type JobState = "armed" | "booted" | "planning" | "running" | "stalled" | "done" | "failed" | "cancelled" | "expired";

export interface JobRecord {
  id: string;
  mac: string;
  kind: JobKind;
  profile: string;
  state: JobState;
  /** Current step (1-based) and how many; 0 before the plan runs. */
  step: number;
  steps: number;
  bytesDone: number;
  bytesTotal: number;
  /** Hash of the current boot token (a new one is issued each time the machine boots). */
  tokenHash: string | null;
  /** Hash of the token the plan was served to: LUKS keys go to that boot only (jobs/job-keys.ts). */
  planTokenHash: string | null;
  /** The admin's say-so: a boot token may go to a request Lifeboat's DHCP did not answer (jobs/boot-policy.ts). */
  trustHttpBoot: boolean;
  /** For clones: the identity this machine gets. */
  hostname: string | null;
  /** Restore point (Amanda datestamp) for this job; null: the profile's, else the newest. */
  at: string | null;
  /** What the agent reported (disks, hardware); null before it booted. */
  hello: Hello | null;
  /** The admin's disk mapping: each target as the identity it had when mapped (plan/disks.ts). */
  mapping: StoredMapping | null;
  /** The plan choices given when it was armed, over the profile's. */
  options: PlanChoices;
  /** The plan served to its agent; null before. */
  plan: ServedPlan | null;
  /** Its place in a batch powered in waves (`jobs arm --macs … --power`, power/waves.ts); null: in none. */
  powerWave: PowerWaveEntry | null;
  /** The Lifeboat server that serves its machine's boot (claimed with the boot token, JobRepo.claim); null before. */
  server: string | null;
  error: string | null;
  armedBy: string;
  createdAt: string;
  updatedAt: string;
  expiresAt: string;
  lastHeartbeatAt: string | null;
}

export interface JobEvent {
  id: number;
  job: string;
  at: string;
  type: string;
  data: unknown;
}

export interface ProfileRepo {
  put(p: Omit<ProfileRecord, "createdAt">): Promise<ProfileRecord>;
  get(name: string): Promise<ProfileRecord | undefined>;
  list(): Promise<ProfileRecord[]>;
  remove(name: string): Promise<boolean>;
}

export interface AssignmentRepo {
  set(mac: string, profile: string): Promise<void>;
  get(mac: string): Promise<string | undefined>;
  list(): Promise<Array<{ mac: string; profile: string; createdAt: string }>>;
  remove(mac: string): Promise<boolean>;
}

export interface JobRepo {
  /** Inserts a job; refuses a second active job for the same MAC. */
  create(j: Omit<JobRecord, "createdAt" | "updatedAt" | "server"> & { server?: string | null }): Promise<JobRecord>;
  /**
   * Server `server` takes the job's boot, with a new boot token (its hash), in one statement: only
   * if nobody holds it, `server` already does, the job is stalled (its agent went silent), or its
   * holder has not been seen since `deadBefore` (ISO time; ServerRepo). undefined, and nothing
   * changed, when another live server holds it: two servers answering one boot never both serve it.
   */
  claim(id: string, server: string, tokenHash: string, deadBefore: string): Promise<JobRecord | undefined>;
  get(id: string): Promise<JobRecord | undefined>;
  /** The MAC's job in an active state, if any (at most one exists). */
  activeForMac(mac: string): Promise<JobRecord | undefined>;
  list(opts?: { state?: JobState[]; mac?: string; limit?: number }): Promise<JobRecord[]>;
  /** The jobs of powered batches the wave scheduler looks at: active ones, and those still marked waiting. */
  inPowerWaves(): Promise<JobRecord[]>;
  update(id: string, patch: Partial<Omit<JobRecord, "id" | "createdAt">>): Promise<JobRecord>;
  /**
   * One change of a job, all or nothing: the patch, only if the job is still in state `from`
   * (compare-and-set), with its events appended and, when `dropKeys`, its keys removed, in one
   * transaction. undefined, and nothing changed, when the job is not (or no longer) in `from`.
   */
  transition(
    id: string,
    from: JobState,
    change: { patch: Partial<Omit<JobRecord, "id" | "createdAt">>; events: Array<{ type: string; data: unknown }>; dropKeys: boolean },
  ): Promise<{ job: JobRecord; events: JobEvent[] } | undefined>;
  addEvent(job: string, type: string, data: unknown): Promise<JobEvent>;
  events(job: string, opts?: { afterId?: number }): Promise<JobEvent[]>;
  /** Bytes stored in a job's events of one type (its agent logs: "agent-log"). */
  eventBytes(job: string, type: string): Promise<number>;
  /** Deletes the events (agent logs included) of jobs that ended (a terminal state) before `endedBefore` (ISO time); returns how many. */
  pruneEvents(endedBefore: string): Promise<number>;
  /** LUKS passphrases the admin supplied for this job, by container UUID; dropped when the job ends. */
  setKey(job: string, uuid: string, secret: string): Promise<void>;
  /** Hands a key out once: it is deleted as it is read. */
  takeKey(job: string, uuid: string): Promise<string | undefined>;
  keyIds(job: string): Promise<string[]>;
  dropKeys(job: string): Promise<void>;
}

/** A full-mode DHCP lease (server/dhcp/pool.ts). Offered ones expire within a minute. */
export interface LeaseRecord {
  ip: string;
  /** Who holds it: the client identifier (option 61) as `id:<hex>` when one was sent, else the MAC. */
  client: string;
  /** The hardware address it was last seen from. */
  mac: string;
  /** A declined address (in use by someone else) belongs to nobody until it expires, whatever its client does. */
  state: "offered" | "bound" | "declined";
  hostname: string | null;
  expiresAt: string;
  /** The Lifeboat server whose DHCP gave it (config name): with several servers on one store, each one's pool keeps its own clients' leases. */
  server: string;
}

export interface LeaseRepo {
  /** Every server's leases: an address held by anyone is not free. */
  list(): Promise<LeaseRecord[]>;
  byIp(ip: string): Promise<LeaseRecord | undefined>;
  /** The client's offered or bound lease from `server` (never a declined one). */
  byClient(client: string, server: string): Promise<LeaseRecord | undefined>;
  /** Inserts or replaces the lease of `ip`; an offered or bound one replaces the client's other offered or bound lease from the same server. */
  put(l: LeaseRecord): Promise<void>;
  remove(ip: string): Promise<boolean>;
  /** Deletes offered and declined leases that expired before `before`, bound ones that expired before `boundBefore`; returns how many. */
  prune(before: string, boundBefore: string): Promise<number>;
}

/** One refresh of one Amanda config's catalog. */
export interface CatalogRefresh {
  amanda: string;
  at: string;
  dumps: number;
  warnings: string[];
}

/** Lifeboat's copy of the Amanda catalog (server/amanda/model.ts CatalogDump records). */
export interface CatalogRepo {
  /** Replaces every dump of one Amanda config (a refresh), recording when and what was odd. */
  replace(amanda: string, dumps: CatalogDump[], warnings: string[]): Promise<void>;
  list(filter?: { amanda?: string; host?: string; disk?: string }): Promise<CatalogDump[]>;
  get(id: string): Promise<CatalogDump | undefined>;
  refreshes(): Promise<CatalogRefresh[]>;
}

/** A Lifeboat server of this store, as it last said it was alive (`lifeboat serve` beats every few seconds). */
export interface ServerRecord {
  name: string;
  /** Its HTTP base URL, where its API and its Amanda configs' dump streams are. */
  url: string;
  /** The Amanda configs it serves dumps of. */
  amanda: string[];
  startedAt: string;
  lastSeenAt: string;
}

export interface ServerRepo {
  /** This server is alive now (inserted, or its row updated). */
  beat(s: Omit<ServerRecord, "lastSeenAt">): Promise<void>;
  list(): Promise<ServerRecord[]>;
}

/**
 * The passphrases and OpenPGP secret keys of encrypted Amanda dumps, one per Amanda config
 * (server/amanda/decrypt.ts), sealed like the LUKS keys; `list` and `info` never say the secret.
 */
export interface AmandaKeyRepo {
  list(): Promise<AmandaKeyInfo[]>;
  put(amanda: string, key: AmandaKey): Promise<AmandaKeyInfo>;
  /** The key, opened; undefined when none is stored. */
  get(amanda: string): Promise<AmandaKey | undefined>;
  /** false when there was none. */
  remove(amanda: string): Promise<boolean>;
}

/** How Lifeboat powers a host (server/power/power.ts); its BMC password is kept apart, sealed. */
export interface HostPowerRecord {
  host: string;
  config: PowerConfig;
  /** Whether a BMC password is stored (never the password). */
  hasSecret: boolean;
  updatedAt: string;
}

export interface PowerRepo {
  get(host: string): Promise<HostPowerRecord | undefined>;
  /** Sets a host's power config and its password (sealed; null: none). */
  put(host: string, config: PowerConfig, secret: string | null): Promise<HostPowerRecord>;
  /** The host's BMC password, opened; undefined when none is stored. */
  secret(host: string): Promise<string | undefined>;
}
