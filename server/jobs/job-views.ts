import { JOB_KINDS, type JobRecord } from "../store/types.ts";
import { isActive } from "./job-state.ts";

/** A job as the API, CLI and page show it: no token hash, no plan script (that has its own route). */
export function jobView(j: JobRecord) {
  const hello = j.hello;
  return {
    id: j.id,
    mac: j.mac,
    kind: j.kind,
    profile: j.profile,
    state: j.state,
    /** Still able to act on its machine (the page offers Cancel): the state machine's ACTIVE list. */
    active: isActive(j.state),
    step: j.step,
    steps: j.steps,
    bytesDone: j.bytesDone,
    bytesTotal: j.bytesTotal,
    hostname: j.hostname,
    at: j.at,
    error: j.error,
    armedBy: j.armedBy,
    /** Its boot token may go to a requester Lifeboat's DHCP did not answer (the admin's say-so). */
    trustHttpBoot: j.trustHttpBoot,
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
    expiresAt: j.expiresAt,
    lastHeartbeatAt: j.lastHeartbeatAt,
    mapping: j.mapping,
    /** Plan choices given at arming (over the profile's). */
    options: j.options,
    /** Its place in a batch powered in waves (jobs arm --macs … --power), or null. */
    powerWave: j.powerWave,
    /** The server serving its machine's boot (several servers on one store), or null before its first boot. */
    server: j.server,
    disks: hello?.disks ?? null,
    ip: hello?.hardware.ip ?? null,
    ssh: hello?.ssh ?? null,
  };
}
export type JobView = ReturnType<typeof jobView>;

export const jobViewSchema = {
  type: "object",
  additionalProperties: true,
  required: ["id", "mac", "kind", "profile", "state", "active", "step", "steps", "bytesDone", "bytesTotal", "createdAt", "expiresAt"],
  properties: {
    id: { type: "string" },
    mac: { type: "string" },
    kind: { type: "string", enum: [...JOB_KINDS] },
    profile: { type: "string" },
    state: { type: "string" },
    active: { type: "boolean" },
    step: { type: "integer" },
    steps: { type: "integer" },
    bytesDone: { type: "integer" },
    bytesTotal: { type: "integer" },
    hostname: { type: ["string", "null"] },
    at: { type: ["string", "null"] },
    error: { type: ["string", "null"] },
    armedBy: { type: "string" },
    trustHttpBoot: { type: "boolean" },
    createdAt: { type: "string" },
    updatedAt: { type: "string" },
    expiresAt: { type: "string" },
    lastHeartbeatAt: { type: ["string", "null"] },
    /** Captured disk → the target's identity ({name, serial, wwn, byId, sizeBytes, seen}), or null: left out. */
    mapping: { type: ["object", "null"], additionalProperties: { type: ["object", "null"], additionalProperties: true } },
    options: { type: "object", additionalProperties: true },
    powerWave: {
      type: ["object", "null"],
      additionalProperties: true,
      properties: {
        wave: { type: "string" },
        position: { type: "integer" },
        of: { type: "integer" },
        queuedAt: { type: "string" },
        /** waiting, powered, skipped, refused, failed (power/waves.ts WAVE_STATUSES). */
        status: { type: "string" },
        force: { type: "boolean" },
        note: { type: ["string", "null"] },
      },
    },
    server: { type: ["string", "null"] },
    disks: { type: ["array", "null"], items: { type: "object", additionalProperties: true } },
    ip: { type: ["string", "null"] },
    ssh: { type: ["string", "null"] },
  },
} as const;
