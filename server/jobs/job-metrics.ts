import { Gauge, type Registry } from "prom-client";
import type { Store } from "../store/types.ts";
import { ACTIVE_STATES } from "./job-state.ts";
import { hostsRecoverability } from "./recoverability.ts";

/**
 * `lifeboat_jobs{state}`: active jobs by state, read from the store at each scrape, every
 * active state present (0 too) so an alert on `stalled > 0` always has a series. Finished
 * jobs are history, not load: they grow without bound and are not counted here.
 */
export function registerJobMetrics(registry: Registry, store: Store): void {
  // Built again on the same registry (a new app, a new store): the gauge reads the new store.
  registry.removeSingleMetric("lifeboat_jobs");
  new Gauge({
    name: "lifeboat_jobs",
    help: "Active jobs by state (armed, booted, planning, running, stalled)",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      const jobs = await store.jobs.list({ state: [...ACTIVE_STATES], limit: Number.MAX_SAFE_INTEGER });
      for (const state of ACTIVE_STATES) this.set({ state }, jobs.filter((j) => j.state === state).length);
    },
  });
}

/**
 * Recoverability per host (jobs/recoverability.ts): `lifeboat_host_recoverable{host}` (1/0),
 * the layout's age, and the last drill's success, age and time to recover (absent for a host
 * never drilled). A scrape collects every gauge at once: they share one reading of the store,
 * and each is reset first, so a removed host's series goes with it.
 */
export function registerRecoverabilityMetrics(registry: Registry, store: Store, opts: { dataDir: string; layoutMaxAgeDays: number }): void {
  type Row = Awaited<ReturnType<typeof hostsRecoverability>>[number]["recoverability"];
  const defs: Array<[string, string, (r: Row) => number | undefined]> = [
    [
      "lifeboat_host_recoverable",
      "1 when the host can be recovered right now (layout fresh, every DLE's chain complete, rescue image built, last drill not failed), else 0",
      (r) => (r.recoverable ? 1 : 0),
    ],
    ["lifeboat_host_layout_age_seconds", "Age of the host's captured layout a recovery would use (absent: none captured)", (r) => r.layout?.ageSeconds],
    ["lifeboat_drill_last_success", "1 when the host's last drill passed, 0 when it failed (absent: never drilled)", (r) => (r.lastDrill ? (r.lastDrill.passed ? 1 : 0) : undefined)],
    ["lifeboat_drill_last_age_seconds", "Seconds since the host's last drill ended", (r) => r.lastDrill?.ageSeconds],
    ["lifeboat_drill_last_recover_seconds", "The host's last drill's time to recover: arm to the restored system ready (absent when it failed)", (r) => r.lastDrill?.recoverSeconds ?? undefined],
  ];
  let reading: ReturnType<typeof hostsRecoverability> | undefined;
  const read = () => {
    // prom-client starts every gauge's collect in one synchronous loop: they share this reading,
    // and the next scrape (a later turn) reads again.
    if (!reading) {
      reading = hostsRecoverability(store, opts);
      queueMicrotask(() => (reading = undefined));
    }
    return reading;
  };
  for (const [name, help, value] of defs) {
    registry.removeSingleMetric(name);
    new Gauge({
      name,
      help,
      labelNames: ["host"],
      registers: [registry],
      async collect() {
        const all = await read();
        this.reset();
        for (const { host, recoverability } of all) {
          const v = value(recoverability);
          if (v !== undefined) this.set({ host: host.name }, v);
        }
      },
    });
  }
}
