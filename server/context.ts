import type { Registry } from "prom-client";
import type { Config } from "./config/schema.ts";
import type { Logger } from "./log.ts";
import type { JobService } from "./jobs/job-service.ts";
import type { BootService } from "./jobs/boot-service.ts";
import type { PowerService } from "./power/power-service.ts";
import type { DrillService } from "./drill/drill-service.ts";
import type { Store } from "./store/types.ts";

/** What every service and route module of a running server gets: built once in `serve`. */
export interface ServerContext {
  config: Config;
  store: Store;
  log: Logger;
  adminToken: string;
  metrics: Registry;
  version: string;
  jobs: JobService;
  /** What a booting machine gets; told by DHCP what it answered (jobs/boot-service.ts). */
  boot: BootService;
  /** Power control of hosts through their BMCs or Wake-on-LAN (power/power-service.ts). */
  power: PowerService;
  /** Recovery drills into a throwaway QEMU machine, one at a time (drill/drill-service.ts). */
  drills: DrillService;
}

/** A long-running part of `lifeboat serve` (HTTP, TFTP, DHCP, schedulers). */
export interface Service {
  readonly name: string;
  /** Starts listening; resolves to a short description of where (logged once). */
  start(): Promise<string>;
  /** Stops accepting work; in-flight work gets `graceMs` to finish. */
  stop(graceMs: number): Promise<void>;
}
