import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { Registry, collectDefaultMetrics } from "prom-client";
import type { Config } from "./config/schema.ts";
import type { ServerContext, Service } from "./context.ts";
import { ensureAdminToken } from "./http/auth.ts";
import { DhcpService } from "./dhcp/server.ts";
import { IPXE_DIR, installBootLoaders } from "./tftp/loaders.ts";
import { tftpService } from "./tftp/server.ts";
import { grubFiles } from "./tftp/grub-files.ts";
import { bootBaseUrl } from "./jobs/boot-scripts.ts";
import { bootHost } from "./netif.ts";
import { buildApp } from "./http/app.ts";
import type { Logger } from "./log.ts";
import { counter } from "./metrics.ts";
import { type Planner, createPlanner } from "./jobs/job-plan.ts";
import { JobService } from "./jobs/job-service.ts";
import { BootService } from "./jobs/boot-service.ts";
import { PowerService } from "./power/power-service.ts";
import { DrillService } from "./drill/drill-service.ts";
import { drillScheduleService } from "./drill/schedule.ts";
import { catalogRefreshService } from "./amanda/refresh.ts";
import { securePrivateDir } from "./private-file.ts";
import { retentionService } from "./jobs/retention.ts";
import { bundleService } from "./bundle/schedule.ts";
import { openStore } from "./store/open.ts";
import { jobWatch, serverBeat } from "./jobs/servers.ts";
import { version } from "./version.ts";

export interface RunningServer {
  ctx: ServerContext;
  app: FastifyInstance;
  /** The HTTP base URL actually listened on (the port resolved when 0 was asked). */
  httpUrl: string;
  stop(graceMs?: number): Promise<void>;
}

function httpService(app: FastifyInstance, cfg: Config): Service {
  return {
    name: "http",
    async start() {
      await app.listen({ host: cfg.listen.address, port: cfg.http.port });
      const a = app.server.address() as AddressInfo;
      return `http://${a.address}:${a.port}`;
    },
    async stop(graceMs) {
      // Let in-flight streams finish for a moment, then cut what is left.
      const timer = setTimeout(() => app.server.closeAllConnections(), graceMs);
      await app.close();
      clearTimeout(timer);
    },
  };
}

/**
 * The network-boot services the config enables: TFTP (tftp.enabled) and DHCP (dhcp.mode
 * proxy, full or reserved, which needs listen.interface: DHCP is never bound to every NIC).
 */
export function netbootServices(ctx: ServerContext, httpPort: () => number): Service[] {
  const cfg = ctx.config;
  const out: Service[] = [];
  // The loaders are served over TFTP and HTTP, and DHCP only offers the ones present.
  if (cfg.tftp.enabled || (cfg.dhcp.mode !== "off" && cfg.listen.interface))
    installBootLoaders(cfg.tftp.root, ctx.log.child({ svc: "tftp" }), { ipxe: IPXE_DIR, image: join(cfg.dataDir, "image") });
  // The signed GRUB's files (shim chain): its rescue kernel line names the HTTP base the agent talks to.
  if (cfg.tftp.enabled) out.push(tftpService(ctx, grubFiles(ctx, () => bootBaseUrl(cfg.http.publicUrl, `${bootHost(cfg.listen)}:${httpPort()}`))));
  if (cfg.dhcp.mode !== "off") {
    if (!cfg.listen.interface)
      ctx.log.warn(
        { svc: "dhcp" },
        `dhcp.mode is ${cfg.dhcp.mode} but listen.interface is not set: DHCP not started (set --interface); no machine gets a boot token without Lifeboat's DHCP answer`,
      );
    else out.push(new DhcpService(ctx, { httpPort, witness: ctx.boot }));
  }
  return out;
}

/** Expires forgotten jobs and marks silent ones stalled, every few seconds. */
function jobTicker(jobs: JobService, log: Logger, everyMs = 5000): Service {
  let timer: NodeJS.Timeout | undefined;
  return {
    name: "jobs",
    async start() {
      await jobs.tick();
      timer = setInterval(() => jobs.tick().catch((err: unknown) => log.error({ err }, "job tick failed")), everyMs);
      return `expiry and stall checks every ${everyMs / 1000} s`;
    },
    async stop() {
      clearInterval(timer);
    },
  };
}

/**
 * The last line of defence of a server with dump streams in flight: an error no handler
 * caught (a thrown exception in a callback, a rejected promise nobody awaited) is logged and
 * counted in `lifeboat_unexpected_errors_total{kind}` instead of ending the process. Every
 * one is a bug to fix; the metric is there to alert on. Returns the uninstaller.
 */
export function guardProcess(log: Logger, metrics: Registry): () => void {
  const errors = counter(metrics, "lifeboat_unexpected_errors_total", "Errors no handler caught, logged and survived, by kind (exception, rejection)", ["kind"]);
  for (const kind of ["exception", "rejection"]) errors.inc({ kind }, 0);
  const onException = (err: Error) => {
    errors.inc({ kind: "exception" });
    log.error({ err }, "unexpected error (kept serving)");
  };
  const onRejection = (reason: unknown) => {
    errors.inc({ kind: "rejection" });
    log.error({ err: reason }, "unhandled promise rejection (kept serving)");
  };
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return () => {
    process.off("uncaughtException", onException);
    process.off("unhandledRejection", onRejection);
  };
}

/** host:port the HTTP service listens on, with a wildcard address as loopback. */
function httpHost(app: FastifyInstance): string {
  const a = app.server.address() as AddressInfo;
  return `${a.address === "0.0.0.0" || a.address === "::" ? "127.0.0.1" : a.address}:${a.port}`;
}

/** Starts every service the config enables; logs one line per service with its address. */
export async function startServer(config: Config, log: Logger, opts: { planner?: Planner } = {}): Promise<RunningServer> {
  // The data dir holds the store, its key and the admin token: only Lifeboat's user reads it.
  securePrivateDir(config.dataDir);
  const store = openStore(config);
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });
  const jobs = new JobService(store, {
    server: config.name,
    expireHours: config.jobs.expireHours,
    heartbeatTimeoutSeconds: config.jobs.heartbeatTimeoutSeconds,
    stalledFailHours: config.jobs.stalledFailHours,
    agentLogJobMaxBytes: config.jobs.agentLogJobMaxBytes,
    log: log.child({ svc: "jobs" }),
    planner: opts.planner ?? createPlanner(store, config.name),
  });
  const boot = new BootService(store, jobs, { dhcpMode: config.dhcp.mode, log: log.child({ svc: "boot" }) });
  const power = new PowerService(store, jobs, { bootInterface: config.listen.interface, waveSize: config.power.waveSize, log: log.child({ svc: "power" }) });
  // The drill machine reaches this server's HTTP port through a forward on this host.
  let httpAddress: () => AddressInfo = () => {
    throw new Error("the HTTP server is not listening yet");
  };
  const drills = new DrillService(store, jobs, {
    config: config.drill,
    dataDir: config.dataDir,
    httpTarget: () => {
      const a = httpAddress();
      return { host: a.address === "0.0.0.0" || a.address === "::" ? "127.0.0.1" : a.address, port: a.port };
    },
    log: log.child({ svc: "drill" }),
  });
  const ctx: ServerContext = {
    jobs,
    boot,
    power,
    drills,
    config,
    store,
    log,
    adminToken: ensureAdminToken(config.adminTokenFile),
    metrics,
    version,
  };
  const app = await buildApp(ctx);
  const url = () => config.http.publicUrl.replace(/\/+$/, "") || `http://${httpHost(app)}`;
  httpAddress = () => app.server.address() as AddressInfo;
  const services: Service[] = [
    jobTicker(jobs, log),
    {
      name: "drills",
      start: async () => {
        const failed = await drills.failLeftovers();
        return `one at a time, on demand${failed ? ` (${failed} left by a stopped server failed)` : ""}`;
      },
      stop: () => drills.stop(),
    },
    drillScheduleService({ store, drills, every: config.drill.every, log }),
    power.followUp(),
    httpService(app, config),
    serverBeat(ctx, url),
    jobWatch(ctx),
    catalogRefreshService(ctx),
    retentionService(ctx),
    bundleService(ctx),
    ...netbootServices(ctx, () => (app.server.address() as AddressInfo).port),
  ];
  const started: Service[] = [];
  const stopAll = async (graceMs: number) => {
    for (const s of [...started].reverse()) {
      try {
        await s.stop(graceMs);
      } catch (err) {
        log.error({ err, svc: s.name }, "stop failed");
      }
    }
    await store.close();
  };
  try {
    for (const s of services) {
      const where = await s.start();
      started.push(s);
      log.info({ svc: s.name, address: where }, `${s.name}: ${where}`);
    }
  } catch (err) {
    await stopAll(0);
    throw err;
  }
  // Installed once everything runs: a failure to start still ends the process with its error.
  const unguard = guardProcess(log, metrics);
  return {
    ctx,
    app,
    httpUrl: `http://${httpHost(app)}`,
    stop: async (graceMs = 5000) => {
      await stopAll(graceMs);
      unguard();
    },
  };
}
