/**
 * Issue 16.2: `POST /api/v1/agent/jobs/:job/log` is capped per upload (jobs.agentLogMaxBytes)
 * and per job (jobs.agentLogJobMaxBytes), through the real route, job service and store.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../server/config/load.ts";
import { createLogger } from "../../../server/log.ts";
import { type RunningServer, startServer } from "../../../server/serve.ts";
import { bootToken, seedHost } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";

describe("agent log caps", () => {
  let server: RunningServer;
  beforeAll(async () => {
    const base = loadConfig({ overrides: { dataDir: tempDir(), listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
    const config = { ...base, jobs: { ...base.jobs, agentLogMaxBytes: 2048, agentLogJobMaxBytes: 5000 } };
    server = await startServer(config, createLogger("silent", { pretty: false }), { planner: async () => ({ ok: false, reason: "no plan needed" }) });
  });
  afterAll(async () => server.stop(0));

  it("an upload over the per-call cap gets 413 and stores nothing; uploads past the job's total get 413 naming the key", async () => {
    const mac = "52:54:00:16:02:01";
    await seedHost(server, "logcap", mac);
    const job = await server.ctx.jobs.arm({ mac, actor: "test" });
    const token = await bootToken(server, job);
    const log = (bytes: number) =>
      server.app.inject({ method: "POST", url: `/api/v1/agent/jobs/${job.id}/log`, headers: { authorization: `Bearer ${token}`, "content-type": "text/plain" }, payload: "l".repeat(bytes) });
    const stored = async () => (await server.ctx.store.jobs.events(job.id)).filter((e) => e.type === "agent-log").length;

    const big = await log(2049);
    expect(big.statusCode).toBe(413);
    expect(await stored()).toBe(0);
    expect((await log(2000)).statusCode).toBe(200);
    expect((await log(2000)).statusCode).toBe(200);
    const over = await log(2000);
    expect(over.statusCode, over.body).toBe(413);
    expect(over.json()).toEqual({ error: "too-large", message: `job ${job.id}: its agent logs would take 6033 bytes, more than jobs.agentLogJobMaxBytes (5000)` });
    expect(await stored()).toBe(2);
  });
});
