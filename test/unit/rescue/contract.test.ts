import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_BASE, JOB_ENDED_STATUS, jobEndedSchema } from "../../../server/plan/agent-api.ts";
import { CONTRACT_VERSION, END_STATES, STEP_FUNCTIONS, type StepName, stepArity } from "../../../server/plan/steps.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { bootToken, seedHost, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { AGENT_DIR, agentSh } from "./agent-sh.ts";

const names = Object.keys(STEP_FUNCTIONS) as StepName[];
const source = readFileSync(`${AGENT_DIR}steps.sh`, "utf8");

/** The arity a step function declares in its first line: `lb_args NAME MIN MAX $#`. */
function declaredArity(fn: string): { min: number; max: number } | undefined {
  const m = new RegExp(`^${fn}\\(\\) \\{\\n  lb_args ${fn} (\\d+) (\\d+|-) \\$# \\|\\| return 2$`, "m").exec(source);
  if (!m) return undefined;
  return { min: Number(m[1]), max: m[2] === "-" ? Number.POSITIVE_INFINITY : Number(m[2]) };
}

describe("step functions: agent side of server/plan/steps.ts", () => {
  it("steps.sh declares every contract function with the contract's arity, and nothing else", () => {
    for (const fn of names) expect(declaredArity(fn), fn).toEqual(stepArity(fn));
    const defined = [...source.matchAll(/^([a-z_]+)\(\) \{\n  lb_args /gm)].map((m) => m[1]);
    expect(defined.sort()).toEqual([...names].sort());
  });

  it("sourcing the agent defines each one as a shell function, and LB_STEP_NAMES lists exactly them", async () => {
    const r = await agentSh(`for f in $LB_STEP_NAMES; do command -V "$f"; done; echo "$LB_STEP_NAMES"`);
    expect(r.exitCode).toBe(0);
    for (const fn of names) expect(r.stdout).toMatch(new RegExp(`^${fn} is a (shell )?function`, "m"));
    expect(r.stdout.trim().split("\n").at(-1)!.split(" ").sort()).toEqual([...names].sort());
  });

  it("calling a function with too few or too many arguments is refused before it does anything", async () => {
    for (const fn of names) {
      const { min, max } = stepArity(fn);
      const tries = [min > 0 ? min - 1 : undefined, Number.isFinite(max) ? max + 1 : undefined].filter((n) => n !== undefined);
      for (const n of tries) {
        const r = await agentSh(`${fn} "$@"`, { args: Array.from({ length: n }, (_, i) => `/nonexistent/arg${i}`) });
        expect(r.exitCode, `${fn} with ${n} args`).toBe(2);
        expect(r.stderr).toContain(`${fn}: expected ${min}`);
      }
    }
  });

  it("the agent implements the contract's version, and refuses a plan of another", async () => {
    expect((await agentSh('printf %s "$LB_CONTRACT_VERSION"')).stdout).toBe(CONTRACT_VERSION);
    const other = await agentSh(`plan_begin ${Number(CONTRACT_VERSION) - 1} h 2`);
    expect([other.exitCode, other.stderr.trim()]).toEqual([1, `plan_begin: plan uses step contract ${Number(CONTRACT_VERSION) - 1}, this agent implements ${CONTRACT_VERSION}`]);
  });

  it("every step function has a resume guard", async () => {
    const r = await agentSh(`for f in $LB_STEP_NAMES; do command -V "guard_$f" >/dev/null || echo "missing guard_$f"; done`);
    expect(r.stdout).toBe("");
  });
});

describe("the end state: plan_done's argument on both sides of server/plan/steps.ts", () => {
  it("the agent knows exactly the contract's end states, and refuses another before recording it", async () => {
    expect((await agentSh('printf %s "$LB_END_STATES"')).stdout.split(" ")).toEqual([...END_STATES]);
    const run = tempDir("lifeboat-end-");
    const r = await agentSh('plan_done halt; echo "rc=$?"; lb_end_state', { env: { LB_RUN: run } });
    expect(r.stderr.trim()).toBe("plan_done: unknown end state 'halt' (expected one of: reboot poweroff hold)");
    // Nothing recorded: what a finished agent does without a word from plan_done is reboot.
    expect(r.stdout).toBe("rc=1\nreboot");
  });

  // reboot and poweroff stand in as shell functions: what lb_finish runs, not what it would do here.
  const finish = 'reboot() { echo "REBOOT $*"; }; poweroff() { echo "POWEROFF $*"; }; plan_done "$1" && lb_finish; echo "rc=$?"';
  it.each([
    ["reboot", "REBOOT -f", "recovery done: rebooting into the restored system"],
    ["poweroff", "POWEROFF -f", "recovery done: powering off"],
    ["hold", "", "recovery done: holding in the rescue system for remote help (ssh root@10.0.0.9); the restored disks are unmounted and the machine is NOT rebooted"],
  ])("plan_done %s, then lb_finish: %j", async (state, command, said) => {
    const run = tempDir("lifeboat-end-");
    const r = await agentSh(finish, { args: [state], env: { LB_RUN: run, LB_NO_WAIT: "1", LB_SSH: "root@10.0.0.9" } });
    expect(r.stdout.split("\n")[0]).toMatch(/^plan complete; once Lifeboat confirms the job done: /);
    // hold waits for the admin (LB_NO_WAIT cuts it short here: 1); the others hand over to the command.
    expect(r.stdout.split("\n").slice(1).join("\n")).toBe(command ? `${command}\nrc=0\n` : "rc=1\n");
    expect(r.stderr).toMatch(new RegExp(`lifeboat: ${said.replace(/[()]/g, "\\$&")}\n$`));
  });
});

describe("the job-ended answer: both sides of server/plan/agent-api.ts", () => {
  let server: RunningServer;
  const run = tempDir("lifeboat-contract-");
  beforeAll(async () => {
    server = await testServer({ planner: async () => ({ ok: false, reason: "no plan needed" }) });
  });
  afterAll(async () => server?.stop(0));

  /** lb_post_try's exit code and LB_ENDED for one POST of the agent's to a job of the real server. */
  async function postTry(job: string, token: string, route: string, body: string) {
    const r = await agentSh('lb_post_try "$1" "$2"; echo "rc=$? ended=$LB_ENDED"', {
      args: [route, body],
      env: { LB_RUN: run, LB_SERVER: server.httpUrl, LB_JOB: job, LB_TOKEN: token },
    });
    return { out: r.stdout.trim(), stderr: r.stderr };
  }

  it("lib.sh knows the server's status for it", async () => {
    expect((await agentSh('printf %s "$LB_JOB_ENDED_HTTP"')).stdout).toBe(String(JOB_ENDED_STATUS));
  });

  it("a cancelled job answers every agent call with it and a valid body; the agent's sh reads it as 'ended: cancelled', distinct from a refusal", async () => {
    await seedHost(server, "contract1", "52:54:00:c0:00:01");
    const job = await server.ctx.jobs.arm({ mac: "52:54:00:c0:00:01", actor: "test" });
    const token = await bootToken(server, job);
    const step = '{"type":"step-start","step":1,"of":3,"name":"plan_begin"}';
    expect(await postTry(job.id, token, "hello", '{"disks":[],"hardware":{"macs":[]}}')).toMatchObject({ out: "rc=0 ended=" });
    expect(await postTry(job.id, token, "events", step)).toMatchObject({ out: "rc=0 ended=" });
    // A refusal that is not an end (a bad event): 2, with the server's reason.
    const bad = await postTry(job.id, token, "events", '{"type":"step-start","step":0}');
    expect(bad.out).toBe("rc=2 ended=");
    expect(bad.stderr).toMatch(/^lifeboat: Lifeboat refused POST events \(HTTP 400\): /);
    await server.ctx.jobs.cancel(job.id, "test");
    for (const [route, body] of [["events", step], ["heartbeat", "{}"], ["hello", '{"disks":[],"hardware":{"macs":[]}}']] as const) {
      const r = await server.app.inject({ method: "POST", url: `${AGENT_BASE}/${job.id}/${route}`, headers: { authorization: `Bearer ${token}` }, payload: JSON.parse(body) as object });
      expect(r.statusCode, route).toBe(JOB_ENDED_STATUS);
      expect(jobEndedSchema.parse(r.json())).toEqual({ error: "job-ended", state: "cancelled", message: `job ${job.id} is cancelled: stop, write nothing more` });
      expect((await postTry(job.id, token, route, body)).out, route).toBe("rc=3 ended=cancelled");
    }
    // No answer at all (nothing listens there): 1, worth trying again.
    const r = await agentSh('lb_post_try events "$1"; echo "rc=$?"', { args: [step], env: { LB_RUN: run, LB_SERVER: "http://127.0.0.1:9", LB_JOB: job.id, LB_TOKEN: token } });
    expect(r.stdout.trim()).toBe("rc=1");
  });
});
