import { Gauge, type Registry } from "prom-client";
import { ACTIVE_JOB_STATES, type Store } from "../store/types.ts";

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
      const jobs = await store.jobs.list({ state: [...ACTIVE_JOB_STATES], limit: Number.MAX_SAFE_INTEGER });
      for (const state of ACTIVE_JOB_STATES) this.set({ state }, jobs.filter((j) => j.state === state).length);
    },
  });
}
