/**
 * Several servers on one store (issue 25): each `lifeboat serve` says every few seconds that it
 * is alive, where (its URL) and which Amanda configs it streams; a server not heard of for
 * SERVER_DEAD_MS is dead, and the jobs it held may be claimed by another (JobRepo.claim).
 * Changes other servers make to jobs reach this server's live views through Store.watchJobs.
 */
import type { ServerContext, Service } from "../context.ts";
import { dumpStreamPath } from "../plan/agent-api.ts";
import type { ServerRecord } from "../store/types.ts";

export const SERVER_BEAT_MS = 5000;
/** Six missed beats: a server this long silent has stopped (or lost the store); its jobs may go to another. */
export const SERVER_DEAD_MS = 30_000;

/** The time before which a server's last beat means it is dead. */
export function deadBefore(now: number): string {
  return new Date(now - SERVER_DEAD_MS).toISOString();
}

/** A server as the API and CLI show it: alive or not, now. */
export function serverView(s: ServerRecord, now: number) {
  return { ...s, alive: Date.parse(s.lastSeenAt) >= now - SERVER_DEAD_MS };
}

/**
 * Where a plan streams its dumps from, when several servers share the store: a dump of an Amanda
 * config this server serves is streamed here (no entry: the plan keeps a path on this server);
 * one only other servers serve comes from the first live one of them by name, by full URL. Pure.
 */
export function remoteDumpUrls(dumps: ReadonlyArray<{ id: string; amanda: string }>, servers: ServerRecord[], self: string, now: number): Record<string, string> {
  const local = new Set(servers.find((s) => s.name === self)?.amanda ?? []);
  const others = servers.filter((s) => s.name !== self && serverView(s, now).alive).sort((a, b) => a.name.localeCompare(b.name));
  const configs = new Map<string, string[]>();
  for (const d of dumps) configs.set(d.id, [...(configs.get(d.id) ?? []), d.amanda]);
  const out: Record<string, string> = {};
  for (const [id, amanda] of configs) {
    if (amanda.some((a) => local.has(a))) continue;
    const holder = others.find((s) => s.amanda.some((a) => amanda.includes(a)));
    if (holder) out[id] = `${holder.url.replace(/\/+$/, "")}${dumpStreamPath(id)}`;
  }
  return out;
}

/** Beats for this server every SERVER_BEAT_MS (the first at start, so its claims count from the start). */
export function serverBeat(ctx: ServerContext, url: () => string): Service {
  let timer: NodeJS.Timeout | undefined;
  const startedAt = new Date().toISOString();
  const beat = () => ctx.store.servers.beat({ name: ctx.config.name, url: url(), amanda: ctx.config.amanda.map((a) => a.name), startedAt });
  return {
    name: "servers",
    async start() {
      await beat();
      timer = setInterval(() => beat().catch((err: unknown) => ctx.log.error({ err }, "server beat failed")), SERVER_BEAT_MS);
      return `server ${ctx.config.name} at ${url()}, a beat every ${SERVER_BEAT_MS / 1000} s`;
    },
    async stop() {
      clearInterval(timer);
    },
  };
}

/** Relays the job changes other servers make (Store.watchJobs) to this server's live views. */
export function jobWatch(ctx: ServerContext): Service {
  let unwatch: (() => Promise<void>) | undefined;
  return {
    name: "job-watch",
    async start() {
      unwatch = await ctx.store.watchJobs((id, eventId) => {
        ctx.jobs.relay(id, eventId).catch((err: unknown) => ctx.log.warn({ err, job: id }, "job change from another server not relayed"));
      });
      return "job changes of other servers relayed to live views";
    },
    async stop() {
      await unwatch?.();
    },
  };
}
