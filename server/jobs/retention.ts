/**
 * What the store keeps (issue 16.2): the agents' logs are capped per upload and per job, and
 * `serve` prunes old things every hour: layout versions beyond the newest N per host (a version
 * a profile pins stays), and the events and logs of jobs that ended more than D days ago (the
 * job rows stay, for the history). Config: jobs.agentLog*, retention.*.
 */
import type { Service, ServerContext } from "../context.ts";
import { TooLargeError } from "../errors.ts";
import type { Store } from "../store/types.ts";

/** The defaults of the config keys (server/config/schema.ts, config/lifeboat.yaml). */
export const STORE_LIMITS = {
  /** One `POST /agent/v1/jobs/:job/log` body. */
  agentLogMaxBytes: 4 * 1024 * 1024,
  /** All agent logs of one job together. */
  agentLogJobMaxBytes: 16 * 1024 * 1024,
  /** Layout versions kept per host. */
  layoutVersions: 50,
  /** Days the events and logs of an ended job are kept (0: forever). */
  endedJobDays: 90,
};

export interface RetentionPolicy {
  layoutVersions: number;
  endedJobDays: number;
}

/** Pure: a refusal when a job's agent logs would grow past the cap, else undefined. */
export function agentLogRefusal(job: string, storedBytes: number, addingBytes: number, capBytes: number): TooLargeError | undefined {
  if (storedBytes + addingBytes <= capBytes) return undefined;
  return new TooLargeError(`job ${job}: its agent logs would take ${storedBytes + addingBytes} bytes, more than jobs.agentLogJobMaxBytes (${capBytes})`);
}

/** Pure: jobs that ended before this time lose their events; null when they are kept forever. */
export function eventsCutoff(now: Date, endedJobDays: number): string | null {
  return endedJobDays > 0 ? new Date(now.getTime() - endedJobDays * 86_400_000).toISOString() : null;
}

/** Applies the policy once; returns what went. */
export async function applyRetention(store: Store, policy: RetentionPolicy, now = new Date()): Promise<{ layoutVersions: number; jobEvents: number }> {
  const cutoff = eventsCutoff(now, policy.endedJobDays);
  return {
    layoutVersions: await store.layouts.prune(policy.layoutVersions),
    jobEvents: cutoff ? await store.jobs.pruneEvents(cutoff) : 0,
  };
}

const HOUR_MS = 3600_000;

/** Applies retention at start and then every hour. */
export function retentionService(ctx: ServerContext): Service {
  let timer: NodeJS.Timeout | undefined;
  const log = ctx.log.child({ svc: "retention" });
  const policy = ctx.config.retention;
  const tick = () =>
    applyRetention(ctx.store, policy).then(
      (r) => (r.layoutVersions || r.jobEvents) && log.info(r, "pruned"),
      (err: unknown) => log.error({ err }, "retention failed"),
    );
  return {
    name: "retention",
    async start() {
      await tick();
      timer = setInterval(() => void tick(), HOUR_MS).unref();
      return `hourly: ${policy.layoutVersions} layout versions per host; events of jobs ended ${policy.endedJobDays > 0 ? `over ${policy.endedJobDays} days ago` : "never"} pruned`;
    },
    async stop() {
      if (timer) clearInterval(timer);
    },
  };
}
