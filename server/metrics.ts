import type { FastifyInstance } from "fastify";
import { Counter, Gauge, type Registry } from "prom-client";
import { ACTIVE_STATES } from "./jobs/job-state.ts";
import type { Store } from "./store/types.ts";

/**
 * Prometheus metrics of the jobs and the HTTP side. Other parts (DHCP, TFTP, dump streams)
 * register their own on the same registry (`ctx.metrics`).
 */

/**
 * The registry's counter of that name, or a new one registered on it: building the app
 * (or a service) twice on one registry must not throw "already registered".
 */
export function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[] = []): Counter<L> {
  return (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
}

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

/** Which part of Lifeboat a URL belongs to, for the byte counters. */
export function routeGroup(url: string): "boot" | "dumps" | "agent" | "api" | "web" | "other" {
  const path = url.split("?")[0]!;
  if (path === "/boot.ipxe" || path.startsWith("/boot/")) return "boot";
  if (path.startsWith("/api/v1/dumps/")) return "dumps";
  if (path.startsWith("/api/v1/agent/")) return "agent";
  if (path.startsWith("/api/")) return "api";
  if (path === "/" || path.startsWith("/web/")) return "web";
  return "other";
}

/**
 * `lifeboat_http_response_bytes_total{group}`: response body bytes by route group, from
 * the Content-Length of each response sent whole. Not counted: replies streamed without
 * one (the live event stream, decompressed dumps), HEAD (no body) and responses cut off
 * (a client gone or a write error: the dump streams count their own bytes). Add it before
 * the route plugins so it covers them.
 */
export function countResponseBytes(app: FastifyInstance, registry: Registry): void {
  const bytes = counter(registry, "lifeboat_http_response_bytes_total", "HTTP response body bytes sent, by route group (boot, dumps, agent, api, web, other)", ["group"]);
  app.addHook("onResponse", async (req, reply) => {
    const length = Number(reply.getHeader("content-length"));
    if (length > 0 && req.method !== "HEAD" && !reply.raw.errored) bytes.inc({ group: routeGroup(req.routeOptions.url ?? req.url) }, length);
  });
}
