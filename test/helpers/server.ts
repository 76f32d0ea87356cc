import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../server/config/load.ts";
import type { Config } from "../../server/config/schema.ts";
import type { EndState } from "../../server/plan/steps.ts";
import { createLogger } from "../../server/log.ts";
import type { JobPlanResult, Planner } from "../../server/jobs/job-plan.ts";
import type { JobRecord } from "../../server/store/types.ts";
import { type RunningServer, startServer } from "../../server/serve.ts";
import { tempDir } from "./tmp.ts";

/**
 * A real server in-process on 127.0.0.1 with an ephemeral HTTP port, no TFTP and no DHCP
 * socket: dhcp.mode is proxy but no interface is set, so DHCP never starts, and a test says
 * what it "answered" with dhcpAnswered(). `config` may change the loaded config before it starts.
 */
export async function testServer(opts: { dataDir?: string; planner?: Planner; logLevel?: string; config?: (c: Config) => void } = {}): Promise<RunningServer> {
  const dataDir = opts.dataDir ?? tempDir();
  const config = loadConfig({ overrides: { dataDir, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "proxy" } });
  opts.config?.(config);
  return startServer(config, createLogger(opts.logLevel ?? "silent", { pretty: false }), { planner: opts.planner });
}

/** A plan for tests whose planner stands in for the plan builder: its script, step count, bytes and the dumps it may stream. */
export function standInPlan(script: string, steps: number, more: { bytesTotal?: number; dumps?: string[]; endState?: EndState } = {}): JobPlanResult {
  return { ok: true, script, steps, bytesTotal: more.bytesTotal ?? 0, dumps: more.dumps ?? [], endState: more.endState ?? "reboot", detail: { mapping: [], notes: [], layoutVersion: 1 } };
}

/** Registers a host with one MAC and one captured layout, straight in the store. */
export async function seedHost(server: RunningServer, name: string, mac: string, layout: unknown = { disks: [] }): Promise<void> {
  const { store } = server.ctx;
  await store.hosts.add({ name, tokenHash: "x", smbiosUuid: null, macs: [mac], amandaConfig: null, dleMap: {} });
  await store.layouts.add(name, layout);
}

/**
 * Lifeboat's DHCP answered this MAC's network boot, at `address` (app.inject and fetch come from
 * 127.0.0.1): what the DHCP server tells the boot service, so the next boot script request from
 * that address gets a token (server/jobs/boot-policy.ts).
 */
export function dhcpAnswered(server: RunningServer, mac: string, address = "127.0.0.1"): void {
  server.ctx.boot.dhcpAnswered(mac, address);
}

/**
 * A boot token for a job straight from the job service, for tests whose subject is the agent
 * and not who gets a token (that is test/integration/jobs/boot-tokens.test.ts).
 */
export function bootToken(server: RunningServer, job: Pick<JobRecord, "id" | "mac">): Promise<string> {
  return server.ctx.jobs.issueBootToken(job.id, { requester: "127.0.0.1", mac: job.mac, via: "test", basis: "test" });
}

/**
 * A stand-in rescue image in the data dir: info.json, vmlinuz and initramfs exist (what "built"
 * means to recoverability and to a drill's checks), with no kernel in them. Only for tests that
 * never boot it.
 */
export function standInImage(dataDir: string): void {
  const image = join(dataDir, "image");
  mkdirSync(image, { recursive: true });
  writeFileSync(join(image, "info.json"), JSON.stringify({ builtAt: "2026-12-06T00:00:00Z", kernelVersion: "6.1.0-test" }));
  for (const f of ["vmlinuz", "initramfs"]) writeFileSync(join(image, f), "stand-in");
}
