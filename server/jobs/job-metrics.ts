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
 * Recoverability per host (jobs/recoverability.ts), computed once per scrape by the first gauge,
 * which sets the others: `lifeboat_host_recoverable{host}` (1/0), the layout's age, and the last
 * drill's success, age and time to recover (absent for a host never drilled). Reset each scrape,
 * so a removed host's series goes with it.
 */
export function registerRecoverabilityMetrics(registry: Registry, store: Store, opts: { dataDir: string; layoutMaxAgeDays: number }): void {
  const defs = [
    ["lifeboat_host_layout_age_seconds", "Age of the host's captured layout a recovery would use (absent: none captured)"],
    ["lifeboat_drill_last_success", "1 when the host's last drill passed, 0 when it failed (absent: never drilled)"],
    ["lifeboat_drill_last_age_seconds", "Seconds since the host's last drill ended"],
    ["lifeboat_drill_last_recover_seconds", "The host's last passed drill's time to recover: arm to the restored system ready"],
  ] as const;
  for (const name of ["lifeboat_host_recoverable", ...defs.map(([n]) => n)]) registry.removeSingleMetric(name);
  // Registered first, so a scrape runs its collect (which sets the others) before it reads them.
  const recoverable = new Gauge({
    name: "lifeboat_host_recoverable",
    help: "1 when the host can be recovered right now (layout fresh, every DLE's chain complete, rescue image built, last drill not failed), else 0",
    labelNames: ["host"],
    registers: [registry],
    async collect() {
      const all = await hostsRecoverability(store, opts);
      for (const g of [recoverable, layoutAge, drillOk, drillAge, drillRecover]) g.reset();
      for (const { host, recoverability: r } of all) {
        const l = { host: host.name };
        recoverable.set(l, r.recoverable ? 1 : 0);
        if (r.layout) layoutAge.set(l, r.layout.ageSeconds);
        if (r.lastDrill) {
          drillOk.set(l, r.lastDrill.passed ? 1 : 0);
          drillAge.set(l, r.lastDrill.ageSeconds);
          if (r.lastDrill.recoverSeconds !== null) drillRecover.set(l, r.lastDrill.recoverSeconds);
        }
      }
    },
  });
  const [layoutAge, drillOk, drillAge, drillRecover] = defs.map(([name, help]) => new Gauge({ name, help, labelNames: ["host"], registers: [registry] })) as [Gauge, Gauge, Gauge, Gauge];
}
