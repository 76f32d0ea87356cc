/**
 * Once, and it stops when told (issue 15, items 2 and 3), through the real routes and store:
 * a plan that ran to its end is never served again (a lost "done", a silent agent), a stalled
 * job ends, a cancel during planning serves no plan, and of two racing transitions exactly one
 * wins. The agent's side of the same rules runs in test/integration/rescue/agent-control.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictError } from "../../../server/errors.ts";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import { JobService } from "../../../server/jobs/job-service.ts";
import { createLogger } from "../../../server/log.ts";
import type { AgentEvent } from "../../../server/plan/agent-api.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { dhcpAnswered, seedHost, standInPlan, testServer } from "../../helpers/server.ts";

const SCRIPT = "plan_begin 1 web1 3\nwipe_disk /dev/vda 5A1D2C3B-4A5E-4F60-8A7B-9C0D1E2F3A4B\nplan_done\n";
const STEPS = ["plan_begin", "wipe_disk", "plan_done"];

describe("a job runs its plan once, and stops when told", () => {
  let server: RunningServer;
  /** While set, the planner waits for it: "the admin acts while the plan is being built". */
  let hold: Promise<void> | undefined;
  let planning: () => void = () => {};
  // The plan builder is tested on its own; a fixed three-call plan stands in so the job flow is the subject here.
  const planner: Planner = async () => {
    planning();
    await hold;
    return standInPlan(SCRIPT, STEPS.length);
  };
  const admin = () => ({ authorization: `Bearer ${server.ctx.adminToken}` });
  const inject = (method: string, url: string, headers: Record<string, string>, payload?: unknown) =>
    server.app.inject({ method: method as "GET", url, headers, payload: payload as object });
  let n = 0;

  beforeAll(async () => {
    server = await testServer({ planner });
  });
  afterAll(async () => server.stop(0));

  /** A host, an armed job for it, its network boot (the agent's token from the script); `hello` and the plan fetched unless told not to. */
  async function job(o: { planned?: boolean } = {}) {
    n++;
    const mac = `52:54:00:5a:00:${n.toString(16).padStart(2, "0")}`;
    await seedHost(server, `safe${n}`, mac);
    const armed = await server.ctx.jobs.arm({ mac, actor: "test" });
    // A network boot: Lifeboat's DHCP answers the machine, then its iPXE asks for the script.
    const boot = async () => {
      dhcpAnswered(server, mac);
      return (await inject("GET", `/boot/ipxe?mac=${mac}`, {})).body;
    };
    const token = /lifeboat\.token=(\S+)/.exec(await boot())![1]!;
    const agent = { authorization: `Bearer ${token}` };
    const base = `/api/v1/agent/jobs/${armed.id}`;
    const post = (route: string, body?: unknown) => inject("POST", `${base}/${route}`, agent, body);
    const event = (e: AgentEvent) => post("events", e);
    if (o.planned !== false) {
      expect((await post("hello", { disks: [], hardware: { macs: [] } })).statusCode).toBe(200);
      expect((await inject("GET", `${base}/plan`, agent)).statusCode).toBe(200);
    }
    const state = async () => (await server.ctx.jobs.get(armed.id)).state;
    return { id: armed.id, mac, agent, base, post, event, boot, state };
  }
  /** The server's job service on the same store, with a 50 ms heartbeat timeout (the server's own is a minute). */
  const shortTicker = (stalledFailHours: number) =>
    new JobService(server.ctx.store, { server: "test", expireHours: 1, heartbeatTimeoutSeconds: 0.05, stalledFailHours, log: createLogger("silent", { pretty: false }), planner });
  const stepStart = (step: number): AgentEvent => ({ type: "step-start", step, of: STEPS.length, name: STEPS[step - 1]! });
  const stepEnd = (step: number): AgentEvent => ({ type: "step-end", step, of: STEPS.length, name: STEPS[step - 1]!, exitStatus: 0, output: "", skipped: false });

  it("all steps ended, done lost, tick, a new boot: exit, and no plan for anyone", async () => {
    const j = await job();
    for (const step of [1, 2, 3]) {
      expect((await j.event(stepStart(step))).statusCode).toBe(200);
      expect((await j.event(stepEnd(step))).statusCode).toBe(200);
    }
    // The agent's "done" never arrives.
    await server.ctx.jobs.tick();
    expect(await j.state()).toBe("done");
    const script = await j.boot();
    expect(script).toMatch(/^exit 1$/m);
    expect(script).not.toContain("/boot/vmlinuz");
    // Neither the old token nor a fresh one gets the plan (or a new start) again.
    const plan = await inject("GET", `${j.base}/plan`, j.agent);
    expect(plan.statusCode).toBe(410);
    expect(plan.body).not.toContain("plan_begin");
    expect((await j.post("hello", { disks: [], hardware: { macs: [] } })).statusCode).toBe(410);
    // The agent saying "done" late is acknowledged, and changes nothing.
    expect((await j.event({ type: "done" })).json()).toEqual({ state: "done" });
    const types = (await server.ctx.jobs.events(j.id)).map((e) => e.type);
    expect(types.filter((t) => t === "plan")).toHaveLength(1);
    expect(types.at(-1)).toBe("done");
  });

  it("the last call started and the agent went silent (its step-end lost too): the tick ends it done; a boot gets exit", async () => {
    const j = await job();
    for (const step of [1, 2]) {
      await j.event(stepStart(step));
      await j.event(stepEnd(step));
    }
    await j.event(stepStart(3));
    const ticker = shortTicker(1);
    await new Promise((r) => setTimeout(r, 100));
    await ticker.tick();
    expect(await j.state()).toBe("done");
    expect((await server.ctx.jobs.events(j.id)).at(-1)).toMatchObject({
      type: "done",
      data: { reason: 'the plan ran to plan_done; the agent\'s own "done" was not heard' },
    });
    expect(await j.boot()).toMatch(/^exit 1$/m);
  });

  it("a stalled job ends as failed with the reason after the configured time; its machine then boots from disk", async () => {
    const j = await job();
    await j.event(stepStart(1));
    const ticker = shortTicker(0.2 / 3600);
    await new Promise((r) => setTimeout(r, 100));
    await ticker.tick();
    expect(await j.state()).toBe("stalled");
    await new Promise((r) => setTimeout(r, 250));
    await ticker.tick();
    const failed = await server.ctx.jobs.get(j.id);
    expect(failed.state).toBe("failed");
    expect(failed.error).toMatch(/^stalled: no word from the agent since .*; given up after [\d.]+ h \(jobs.stalledFailHours; the plan is not served again\)$/);
    expect(await j.boot()).toMatch(/^exit 1$/m);
    // An agent that comes back is told the job ended, not "carry on".
    const back = await j.post("heartbeat");
    expect([back.statusCode, back.json().state]).toEqual([410, "failed"]);
  });

  it("cancel during planning: no plan is served, the job stays cancelled", async () => {
    const j = await job({ planned: false });
    expect((await j.post("hello", { disks: [], hardware: { macs: [] } })).statusCode).toBe(200);
    let release: () => void = () => {};
    hold = new Promise((r) => (release = r));
    const asked = new Promise<void>((r) => (planning = r));
    const fetching = inject("GET", `${j.base}/plan`, j.agent);
    await asked;
    expect((await inject("POST", `/api/v1/jobs/${j.id}/cancel`, admin())).statusCode).toBe(200);
    release();
    const plan = await fetching;
    hold = undefined;
    expect(plan.statusCode).toBe(410);
    expect(plan.json()).toEqual({ error: "job-ended", state: "cancelled", message: `job ${j.id} is cancelled: stop, write nothing more` });
    expect(plan.body).not.toContain("plan_begin");
    const after = await server.ctx.jobs.get(j.id);
    expect([after.state, after.plan]).toEqual(["cancelled", null]);
    expect((await server.ctx.jobs.events(j.id)).map((e) => e.type)).not.toContain("plan");
  });

  it("the service refuses a plan built from a record that changed meanwhile (ConflictError), without applying it", async () => {
    const j = await job({ planned: false });
    await j.post("hello", { disks: [], hardware: { macs: [] } });
    let release: () => void = () => {};
    hold = new Promise((r) => (release = r));
    const asked = new Promise<void>((r) => (planning = r));
    const served = server.ctx.jobs.plan(j.id, "stand-in token hash");
    await asked;
    await server.ctx.jobs.cancel(j.id, "test");
    release();
    await expect(served).rejects.toThrow(ConflictError);
    await expect(served).rejects.toThrow(`job ${j.id} became cancelled while its plan was being built: no plan served`);
    hold = undefined;
    expect(await j.state()).toBe("cancelled");
  });

  it("two racing cancels: exactly one wins, one cancelled event", async () => {
    const j = await job();
    const results = await Promise.allSettled([server.ctx.jobs.cancel(j.id, "alice"), server.ctx.jobs.cancel(j.id, "bob")]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    expect((await server.ctx.jobs.events(j.id)).filter((e) => e.type === "cancelled")).toHaveLength(1);
  });

  it("a cancel racing the agent's step-start: the cancel holds, the step-start is refused", async () => {
    const j = await job();
    const [cancel, step] = await Promise.allSettled([server.ctx.jobs.cancel(j.id, "admin"), server.ctx.jobs.agentEvent(j.id, stepStart(1))]);
    expect(cancel.status).toBe("fulfilled");
    expect(step.status).toBe("rejected");
    expect(await j.state()).toBe("cancelled");
    expect((await server.ctx.jobs.events(j.id)).map((e) => e.type)).not.toContain("step-start");
  });

  it("the store applies a transition only from the state it expects, with its events, in one transaction", async () => {
    const j = await job();
    const change = { patch: { state: "cancelled" as const }, events: [{ type: "cancelled", data: { by: "store-test" } }], dropKeys: true };
    await server.ctx.store.jobs.setKey(j.id, "luks-1", "secret");
    const [first, second] = await Promise.all([
      server.ctx.store.jobs.transition(j.id, "running", change),
      server.ctx.store.jobs.transition(j.id, "running", change),
    ]);
    expect(first?.job.state).toBe("cancelled");
    expect(first?.events.map((e) => e.type)).toEqual(["cancelled"]);
    expect(second).toBeUndefined();
    expect(await server.ctx.store.jobs.transition(j.id, "armed", { patch: { step: 9 }, events: [{ type: "x", data: null }], dropKeys: false })).toBeUndefined();
    expect((await server.ctx.store.jobs.events(j.id)).filter((e) => ["cancelled", "x"].includes(e.type))).toHaveLength(1);
    expect(await server.ctx.store.jobs.keyIds(j.id)).toEqual([]);
    expect((await server.ctx.jobs.get(j.id)).step).toBe(0);
  });
});
