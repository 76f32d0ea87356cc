/**
 * Rows ↔ records, shared by the SQLite and PostgreSQL stores: both keep the same columns
 * (JSON as text, times as ISO text), so one mapping serves both. The only difference is the
 * boolean column, 0/1 in SQLite and a boolean in PostgreSQL, which `jobFrom` reads either way.
 */
import type { AmandaKey, AmandaKeyInfo } from "../amanda/decrypt.ts";
import type { CatalogDump } from "../amanda/model.ts";
import type { PowerConfig } from "../power/power.ts";
import type { AuditEntry, CatalogRefresh, HostPowerRecord, HostRecord, JobEvent, JobRecord, JobState, LeaseRecord, ProfileRecord, ServerRecord } from "./types.ts";

export type Row = Record<string, unknown>;

export const now = () => new Date().toISOString();

export function hostFrom(r: Row, macs: string[]): HostRecord {
  return {
    name: r.name as string,
    tokenHash: r.token_hash as string,
    smbiosUuid: (r.smbios_uuid as string | null) ?? null,
    macs,
    amandaConfig: (r.amanda_config as string | null) ?? null,
    dleMap: JSON.parse(r.dle_map as string) as Record<string, string>,
    createdAt: r.created_at as string,
  };
}

export function auditFrom(r: Row): AuditEntry {
  return { id: r.id as number, at: r.at as string, actor: r.actor as string, action: r.action as string, target: r.target as string, detail: JSON.parse(r.detail as string) };
}

export function eventFrom(r: Row): JobEvent {
  return { id: r.id as number, job: r.job as string, at: r.at as string, type: r.type as string, data: JSON.parse(r.data as string) };
}

export function profileFrom(r: Row): ProfileRecord {
  return {
    name: r.name as string,
    host: r.host as string,
    layoutVersion: (r.layout_version as number | null) ?? null,
    at: (r.at as string | null) ?? null,
    options: JSON.parse(r.options as string) as ProfileRecord["options"],
    createdAt: r.created_at as string,
  };
}

const JSON_FIELDS = { hello: "hello", mapping: "mapping", options: "options", plan: "plan", powerWave: "powerWave" } as const;

/** A job's fields (but id and createdAt) → their columns. */
export const JOB_COLUMNS: Record<string, string> = {
  mac: "mac",
  kind: "kind",
  profile: "profile",
  state: "state",
  step: "step",
  steps: "steps",
  bytesDone: "bytes_done",
  bytesTotal: "bytes_total",
  tokenHash: "token_hash",
  planTokenHash: "plan_token_hash",
  trustHttpBoot: "trust_http_boot",
  hostname: "hostname",
  at: "at",
  hello: "hello",
  mapping: "mapping",
  options: "options",
  plan: "plan",
  powerWave: "power_wave",
  error: "error",
  armedBy: "armed_by",
  updatedAt: "updated_at",
  expiresAt: "expires_at",
  lastHeartbeatAt: "last_heartbeat_at",
  server: "server",
};

/** A job field's value as its column holds it (JSON fields as text; booleans as the store gives them). */
export function jobColumn(field: string, value: unknown): unknown {
  return field in JSON_FIELDS ? JSON.stringify(value ?? null) : value;
}

export function jobFrom(r: Row): JobRecord {
  return {
    id: r.id as string,
    mac: r.mac as string,
    kind: r.kind as JobRecord["kind"],
    profile: r.profile as string,
    state: r.state as JobState,
    step: r.step as number,
    steps: r.steps as number,
    bytesDone: r.bytes_done as number,
    bytesTotal: r.bytes_total as number,
    tokenHash: (r.token_hash as string | null) ?? null,
    planTokenHash: (r.plan_token_hash as string | null) ?? null,
    trustHttpBoot: r.trust_http_boot === 1 || r.trust_http_boot === true,
    hostname: (r.hostname as string | null) ?? null,
    at: (r.at as string | null) ?? null,
    hello: JSON.parse(r.hello as string) as JobRecord["hello"],
    mapping: JSON.parse(r.mapping as string) as JobRecord["mapping"],
    options: (JSON.parse(r.options as string) as JobRecord["options"] | null) ?? {},
    plan: JSON.parse(r.plan as string) as JobRecord["plan"],
    powerWave: JSON.parse(r.power_wave as string) as JobRecord["powerWave"],
    server: (r.server as string | null) ?? null,
    error: (r.error as string | null) ?? null,
    armedBy: r.armed_by as string,
    createdAt: r.created_at as string,
    updatedAt: r.updated_at as string,
    expiresAt: r.expires_at as string,
    lastHeartbeatAt: (r.last_heartbeat_at as string | null) ?? null,
  };
}

export function leaseFrom(r: Row): LeaseRecord {
  return {
    ip: r.ip as string,
    client: r.client as string,
    mac: r.mac as string,
    state: r.state as LeaseRecord["state"],
    hostname: (r.hostname as string | null) ?? null,
    expiresAt: r.expires_at as string,
    server: r.server as string,
  };
}

export const dumpFrom = (r: Row) => JSON.parse(r.record as string) as CatalogDump;

export function refreshFrom(r: Row): CatalogRefresh {
  return { amanda: r.amanda as string, at: r.at as string, dumps: r.dumps as number, warnings: JSON.parse(r.warnings as string) as string[] };
}

export function powerFrom(r: Row): HostPowerRecord {
  return { host: r.host as string, config: JSON.parse(r.config as string) as PowerConfig, hasSecret: r.secret !== null, updatedAt: r.updated_at as string };
}

/** What a job key's sealed value is bound to: its row. */
export const keyContext = (job: string, uuid: string) => `job ${job} LUKS container ${uuid}`;

export function amandaKeyFrom(r: Row): AmandaKeyInfo {
  return { amanda: r.amanda as string, hasPassphrase: Boolean(r.has_passphrase), hasSecretKey: Boolean(r.has_secret_key), updatedAt: r.updated_at as string };
}

/** What an Amanda config's sealed key is bound to: its row. */
export const amandaKeyContext = (amanda: string) => `amanda config ${amanda} key`;

/** The sealed form of an Amanda config's key (one JSON value) and back. */
export const amandaKeyText = (k: AmandaKey) => JSON.stringify({ passphrase: k.passphrase, secretKey: k.secretKey });
export const amandaKeyOf = (text: string): AmandaKey => JSON.parse(text) as AmandaKey;

/** What a host's sealed BMC password is bound to: its row. */
export const powerSecretContext = (host: string) => `host ${host} power`;

export function serverFrom(r: Row): ServerRecord {
  return { name: r.name as string, url: r.url as string, amanda: JSON.parse(r.amanda as string) as string[], startedAt: r.started_at as string, lastSeenAt: r.last_seen_at as string };
}

/** The claim's condition (JobRepo.claim), the same SQL in both stores: parameters 1 server, 2 dead-before time, as named by `p`. */
export const claimableSql = (p: (n: 1 | 2) => string) =>
  `(server IS NULL OR server = ${p(1)} OR state = 'stalled' OR NOT EXISTS (SELECT 1 FROM servers WHERE servers.name = jobs.server AND servers.last_seen_at >= ${p(2)}))`;
