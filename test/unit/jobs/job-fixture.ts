import type { CatalogDump } from "../../../server/amanda/model.ts";
import type { ServedPlan } from "../../../server/plan/plan.ts";
import type { JobRecord } from "../../../server/store/types.ts";

/** A job record for the pure job tests (state machine, boot policy), armed at t0 unless patched. */
export const t0 = new Date("2026-11-30T10:00:00Z");
export function job(patch: Partial<JobRecord> = {}): JobRecord {
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
    planTokenHash: null,
    trustHttpBoot: false,
    hostname: "web1",
    at: null,
    hello: null,
    mapping: null,
    options: {},
    plan: null,
    powerWave: null,
    server: null,
    error: null,
    armedBy: "test",
    createdAt: t0.toISOString(),
    updatedAt: t0.toISOString(),
    expiresAt: new Date(t0.getTime() + 24 * 3600_000).toISOString(),
    lastHeartbeatAt: null,
    ...patch,
  };
}

/** A served plan of `steps` calls for the pure job tests. */
export const plan = (steps: number, bytesTotal = 0): ServedPlan => ({ script: "plan_begin 1 web1 3", steps, bytesTotal, dumps: [], endState: "reboot", detail: { mapping: [], notes: [], layoutVersion: 1 } });

/** A catalog dump of web1 (daily, amgtar, gzip, on vtape) for the pure job tests. */
export function dump(p: Partial<CatalogDump> & Pick<CatalogDump, "disk" | "level" | "datestamp">): CatalogDump {
  return {
    id: `${p.disk}-${p.datestamp}-${p.level}`,
    amanda: "daily",
    host: "web1",
    program: "amgtar",
    compression: "gzip",
    compressProgram: null,
    encrypted: false,
    sizeBytes: 100,
    origKb: 1,
    crc: { native: null, client: null, server: null },
    location: { kind: "vtape", label: "V1", fileNo: 1 },
    status: "ok",
    problem: null,
    sources: ["log"],
    ...p,
  };
}
