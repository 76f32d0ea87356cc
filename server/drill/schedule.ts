/**
 * Drills on a schedule (issue 24): a host is drilled every `drill.every` (config), or as its own
 * profile (the profile of its name, the one its drill uses) says with `drillEvery`; "off" or ""
 * for never. `serve` looks at start and once a minute, and starts the most overdue drill when none runs (the
 * drill service runs one at a time). Which drill is due is a pure decision (`dueDrill`); the
 * service below is its thin shell.
 */
import type { Service } from "../context.ts";
import type { DrillService } from "./drill-service.ts";
import { lastDrill } from "../jobs/drill-record.ts";
import type { Logger } from "../log.ts";
import type { Store } from "../store/types.ts";
import { errorMessage } from "../errors.ts";
import { parseEvery } from "./every.ts";

export interface DrillScheduleEntry {
  host: string;
  /** How often (ms); null: not scheduled. */
  everyMs: number | null;
  /** When its last drill ended (ISO), null: never drilled. */
  lastEndedAt: string | null;
  /** When the scheduler last tried to start one and was refused (ISO), null: not since the server started. */
  refusedAt: string | null;
}

/** After a refused start (no rescue image, no layout, …) the scheduler tries again after this, or after `every` when shorter. */
export const RETRY_AFTER_REFUSAL_MS = 3_600_000;

/**
 * The drill to start now, or undefined: none while one runs; else of the scheduled hosts whose
 * last drill ended `every` ago or more (or never ran), and that were not refused within the retry
 * time, the most overdue (never drilled first, then by name).
 */
export function dueDrill(entries: DrillScheduleEntry[], now: Date, busy: boolean): string | undefined {
  if (busy) return undefined;
  const t = now.getTime();
  const due = entries
    .filter((e) => e.everyMs !== null)
    .filter((e) => !e.refusedAt || t - Date.parse(e.refusedAt) >= Math.min(e.everyMs!, RETRY_AFTER_REFUSAL_MS))
    .map((e) => ({ host: e.host, overdue: e.lastEndedAt === null ? Number.POSITIVE_INFINITY : t - Date.parse(e.lastEndedAt) - e.everyMs! }))
    .filter((e) => e.overdue >= 0)
    .sort((a, b) => b.overdue - a.overdue || a.host.localeCompare(b.host));
  return due[0]?.host;
}

/** A host's period: its own profile's `drillEvery` when set, else config `drill.every`. */
export function hostEvery(configEvery: string, profileEvery: string | undefined): number | null {
  const p = parseEvery(profileEvery ?? configEvery);
  // Both are validated where they are given (config schema, profile body): never a problem here.
  return typeof p === "number" ? p : null;
}

export const SCHEDULE_TICK_MS = 60_000;

/** The shell: at start and once a minute, read the hosts' periods and last drills, and start the one due. */
export function drillScheduleService(ctx: { store: Store; drills: DrillService; every: string; log: Logger }): Service {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const refused = new Map<string, string>();
  const log = ctx.log.child({ svc: "drill-schedule" });
  const tick = async () => {
    const entries: DrillScheduleEntry[] = [];
    for (const host of await ctx.store.hosts.list()) {
      const profile = await ctx.store.profiles.get(host.name);
      const own = profile?.host === host.name ? profile.options.drillEvery : undefined;
      const last = await lastDrill(ctx.store, host.name);
      entries.push({ host: host.name, everyMs: hostEvery(ctx.every, own), lastEndedAt: last?.endedAt ?? null, refusedAt: refused.get(host.name) ?? null });
    }
    const host = dueDrill(entries, new Date(), ctx.drills.active() !== undefined);
    if (!host) return;
    try {
      const job = await ctx.drills.start({ host, actor: "schedule" });
      refused.delete(host);
      log.info({ host, job: job.id }, "scheduled drill started");
    } catch (err) {
      refused.set(host, new Date().toISOString());
      log.warn({ host, err: errorMessage(err) }, "scheduled drill refused");
    }
  };
  return {
    name: "drill-schedule",
    async start() {
      const look = () => {
        running = tick().catch((err: unknown) => log.error({ err }, "drill schedule failed"));
      };
      // Drills that fell due while the server was down start now, not a minute later.
      look();
      timer = setInterval(look, SCHEDULE_TICK_MS);
      timer.unref();
      const every = hostEvery(ctx.every, undefined);
      return every === null ? "drills by profile (drillEvery) only; config drill.every is off" : `every host drilled every ${ctx.every} unless its profile says otherwise`;
    },
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
