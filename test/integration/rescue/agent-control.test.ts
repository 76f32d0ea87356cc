/**
 * The rescue agent (lib.sh + steps.sh under dash, run on this host as in agent.test.ts) obeys
 * Lifeboat: a cancel between two steps stops it before the next one, which never runs, with the
 * disk left as it was; and it reboots only once Lifeboat confirmed its "done", saying the answers
 * it did not get again. Real server and routes; the only stand-in is a proxy that loses answers.
 */
import { type IncomingMessage, type Server, createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import { renderKernelArgs } from "../../../server/plan/cmdline.ts";
import { CONTRACT_VERSION, type Step, renderPlan, step } from "../../../server/plan/steps.ts";
import type { RunningServer } from "../../../server/serve.ts";
import type { JobEvent, JobRecord } from "../../../server/store/types.ts";
import { bootToken, seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { AGENT_DIR } from "../../unit/rescue/agent-sh.ts";
import { cleanupLoopsAfterAll, loopUnavailable, makeLoop } from "../recovery/loopdev.ts";

const MiB = 1024 * 1024;
const why = loopUnavailable();
if (why) console.warn(`agent control tests skipped: ${why}`);
const blkidType = async (dev: string) => (await execa("blkid", ["-o", "value", "-s", "TYPE", dev], { reject: false })).stdout.trim();

/**
 * Stands in for a network that loses answers: forwards every call to Lifeboat, but drops the
 * answer (closes the connection) to the first `lose` POSTs of the agent's "done".
 */
async function lossyProxy(upstream: string, lose: number): Promise<{ url: string; doneCalls: () => number; stop: () => Promise<void> }> {
  let doneCalls = 0;
  const isDone = (req: IncomingMessage, body: Buffer) => req.method === "POST" && req.url?.endsWith("/events") && /"type":"done"/.test(body.toString());
  const proxy: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const up = request(`${upstream}${req.url}`, { method: req.method, headers: req.headers }, (upRes) => {
        const answer: Buffer[] = [];
        upRes.on("data", (c: Buffer) => answer.push(c));
        upRes.on("end", () => {
          if (isDone(req, body) && ++doneCalls <= lose) return req.socket.destroy();
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          res.end(Buffer.concat(answer));
        });
      });
      up.on("error", () => req.socket.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    doneCalls: () => doneCalls,
    stop: () => new Promise((r) => proxy.close(() => r())),
  };
}

describe.skipIf(why !== null)("the rescue agent stops when Lifeboat says so, and reboots only when it heard done", () => {
  const dir = tempDir("lifeboat-agent-control-");
  cleanupLoopsAfterAll();
  let server: RunningServer;
  const plans = new Map<string, Step[]>();
  const planner: Planner = async (job) => {
    const steps = plans.get(job.id)!;
    // The steps stream from a stand-in, not from Lifeboat: no dump is the plan's to authorise.
    return standInPlan(renderPlan(steps), steps.length);
  };

  beforeAll(async () => {
    server = await testServer({ planner });
  });
  afterAll(async () => server?.stop(0));

  /** Arms a job for a new host, boots its agent's lb_main against `url` (the server, or a proxy to it). */
  async function runAgent(name: string, mac: string, steps: Step[], url = server.httpUrl) {
    await seedHost(server, name, mac);
    const job = await server.ctx.jobs.arm({ mac, actor: "test" });
    const token = await bootToken(server, job);
    plans.set(job.id, steps);
    const run = join(dir, `${name}-run`);
    const target = join(dir, `${name}-target`);
    mkdirSync(target, { recursive: true });
    const cmdline = join(dir, `${name}.cmdline`);
    writeFileSync(cmdline, `console=ttyS0 ${renderKernelArgs({ server: url, job: job.id, token })}\n`);
    const agent = () =>
      execa("dash", ["-c", `. '${AGENT_DIR}lib.sh'; . '${AGENT_DIR}steps.sh'; lb_main`], {
        reject: false,
        all: true,
        timeout: 120_000,
        env: {
          LB_RUN: run,
          LB_TARGET: target,
          LB_CMDLINE_FILE: cmdline,
          LB_SKIP_HW_SETUP: "1",
          LB_NO_WAIT: "1",
          LB_HEARTBEAT_SECONDS: "1",
          LB_RETRY_SECONDS: "1",
          LB_RETRY_MAX_SECONDS: "1",
        },
      });
    return { job, agent };
  }
  const stepNames = (events: JobEvent[], type: string) => events.filter((e) => e.type === type).map((e) => (e.data as { name: string }).name);
  const agentLog = (events: JobEvent[]) => events.filter((e) => e.type === "agent-log").map((e) => (e.data as { text: string }).text).join("\n");

  it("cancel between steps 2 and 3: step 3 (wipe_disk) never runs, the disk is as it was, console and job log say so", async () => {
    const disk = await makeLoop(dir, "cancel", 64 * MiB);
    await execa("mkfs.ext4", ["-q", disk]);
    const label = "5A1D2C3B-4A5E-4F60-8A7B-9C0D1E2F3A4B";
    const core: Step[] = [
      step("check_disk", { dev: disk, serial: "", wwn: "", size_bytes: 64 * MiB }),
      step("wipe_disk", { dev: disk, label_id: label }),
      step("partition", { dev: disk, sfdisk_script: `label: gpt\nlabel-id: ${label}\n` }),
    ];
    const steps = [step("plan_begin", { contract: CONTRACT_VERSION, host: "cancel1", steps: core.length + 2 }), ...core, step("plan_done", { end_state: "reboot" })];
    const { job, agent } = await runAgent("cancel1", "52:54:00:ca:00:01", steps);
    // The admin cancels the moment step 2 (check_disk) has ended, before the agent asks to start step 3.
    const cancelAfterStep2 = (j: JobRecord, ev?: JobEvent) => {
      if (j.id === job.id && ev?.type === "step-end" && (ev.data as { step: number }).step === 2) void server.ctx.jobs.cancel(job.id, "admin");
    };
    server.ctx.jobs.changes.on("job", cancelAfterStep2);
    const r = await agent().finally(() => server.ctx.jobs.changes.off("job", cancelAfterStep2));
    const events = await server.ctx.jobs.events(job.id);

    expect(r.exitCode, r.all).toBe(1); // stopped, waiting for the admin: not rebooted
    expect((await server.ctx.jobs.get(job.id)).state).toBe("cancelled");
    expect(stepNames(events, "step-start")).toEqual(["plan_begin", "check_disk"]);
    expect(await blkidType(disk)).toBe("ext4"); // wipe_disk would have removed it
    const said = `Lifeboat says job ${job.id} is cancelled: stopping before step 3/5 (wipe_disk); the disks are left as they are, nothing more is written`;
    expect(r.all).toContain(said);
    expect(agentLog(events)).toContain(said);
    expect(events.map((e) => e.type)).not.toContain("failed");
  });

  it("a done whose answers are lost is said again until Lifeboat confirms it; only then does the agent return to reboot", async () => {
    const proxy = await lossyProxy(server.httpUrl, 2);
    try {
      const steps = [step("plan_begin", { contract: CONTRACT_VERSION, host: "done1", steps: 2 }), step("plan_done", { end_state: "reboot" })];
      const { job, agent } = await runAgent("done1", "52:54:00:ca:00:02", steps, proxy.url);
      const r = await agent();
      expect(r.exitCode, r.all).toBe(0);
      // Two answers lost, the third heard: three calls, and the console said each time that it would not go on.
      expect(proxy.doneCalls()).toBe(3);
      expect(r.all).toContain("no answer from Lifeboat to POST events (attempt 1): nothing more happens here until it answers; again in 1 s");
      expect(r.all).toContain("no answer from Lifeboat to POST events (attempt 2)");
      expect(r.all).not.toContain("(attempt 3)");
      expect(r.all.trimEnd().split("\n").at(-1)).toMatch(`Lifeboat confirmed: job ${job.id} is done`);
      const events = await server.ctx.jobs.events(job.id);
      expect((await server.ctx.jobs.get(job.id)).state).toBe("done");
      // The job was done when plan_done ended; the repeated "done" calls changed nothing.
      expect(events.filter((e) => e.type === "done")).toHaveLength(1);
      expect(stepNames(events, "step-end")).toEqual(["plan_begin", "plan_done"]);
    } finally {
      await proxy.stop();
    }
  });
});
