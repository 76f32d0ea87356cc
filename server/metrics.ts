import { Counter, type Registry } from "prom-client";

/**
 * Prometheus helpers shared by every part. Each part registers its own metrics on the one
 * registry of a running server (`ctx.metrics`): jobs in jobs/job-metrics.ts, HTTP bytes in
 * http/response-bytes.ts, DHCP, TFTP and the dump streams beside their code.
 */

/**
 * The registry's counter of that name, or a new one registered on it: building the app
 * (or a service) twice on one registry must not throw "already registered".
 */
export function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[] = []): Counter<L> {
  return (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
}
