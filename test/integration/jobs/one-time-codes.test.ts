/**
 * A machine booted from an ISO or USB stick (`lifeboat image iso`, issue 24 part 2) carries no
 * reusable secret: its agent trades the job's one-time code (`jobs code`, or on a `--host` medium)
 * for a boot token, once. Through the real routes and store: the code is issued to the admin only,
 * a wrong code, a replayed one (a copy of the medium booted again), one for an ended job, a
 * superseded or expired one are refused with why; wrong codes from one address are capped; every
 * refusal is in the audit log with the requester. The pure rule: server/jobs/boot-policy.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobView } from "../../../server/jobs/job-views.ts";
import { ONE_TIME_CODE_MAX_WRONG } from "../../../server/jobs/boot-policy.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { agentSh } from "../../unit/rescue/agent-sh.ts";

const STRANGER = "10.0.0.66";

describe("one-time codes for machines booted from a medium", () => {
  let server: RunningServer;
  let now = Date.now();
  const inject = (method: string, url: string, o: { payload?: unknown; token?: string; from?: string } = {}) =>
    server.app.inject({
      method: method as "GET",
      url,
      payload: o.payload as object,
      headers: o.token === "" ? {} : { authorization: `Bearer ${o.token ?? server.ctx.adminToken}` },
      remoteAddress: o.from,
    });
  const redeem = (code: string, from?: string) => inject("POST", "/boot/code", { payload: { code, mac: "52:54:00:1c:00:09" }, token: "", from });
  const arm = async (mac: string) => ((await inject("POST", "/api/v1/jobs", { payload: { mac } })).json() as JobView[])[0]!;
  const codeFor = async (job: string, validHours?: number) => (await inject("POST", `/api/v1/jobs/${job}/code`, { payload: validHours ? { validHours } : {} })).json() as { code: string; expiresAt: string };

  beforeAll(async () => {
    server = await testServer({ planner: async () => standInPlan("plan_begin 1 web1 1\nplan_done\n", 2) });
    // The boot service's clock, so a code's expiry is reached without waiting hours.
    (server.ctx.boot as unknown as { opts: { now?: () => number } }).opts.now = () => now;
    await seedHost(server, "web1", "52:54:00:1c:00:01");
    await seedHost(server, "web2", "52:54:00:1c:00:02");
  });
  afterAll(async () => server.stop(0));

  it("a code is traded once for the job and a working token; a replay of it (a copied medium) is refused, named as one, and audited", async () => {
    const job = await arm("52:54:00:1c:00:01");
    // Only the admin gets codes.
    expect((await inject("POST", `/api/v1/jobs/${job.id}/code`, { token: "", payload: {} })).statusCode).toBe(401);
    const { code } = await codeFor(job.id);
    expect(code).toMatch(/^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$/);
    // Typed in lower case with blanks: the same code.
    const ok = await redeem(` ${code.toLowerCase().replace(/-/g, " ")} `);
    expect(ok.statusCode, ok.body).toBe(200);
    const { job: got, token } = ok.json() as { job: string; token: string };
    expect(got).toBe(job.id);
    expect((await inject("POST", `/api/v1/agent/jobs/${job.id}/heartbeat`, { token })).statusCode).toBe(200);
    // The same code again, from anyone: refused, saying it was used, and no token.
    const replay = await redeem(code, STRANGER);
    expect(replay.statusCode).toBe(403);
    expect(replay.json()).toMatchObject({ error: "refused", message: expect.stringMatching(/^this one-time code was used already \(at .* from 127\.0\.0\.1\)/) });
    expect(replay.body).not.toContain(token);
    const events = (await inject("GET", `/api/v1/jobs/${job.id}/events`)).json() as Array<{ type: string; data: { requester?: string; via?: string } }>;
    expect(events.filter((e) => ["code-issued", "boot", "boot-refused"].includes(e.type)).map((e) => [e.type, e.data.requester ?? null])).toEqual([
      ["code-issued", null],
      ["boot", "127.0.0.1"],
      ["boot-refused", STRANGER],
    ]);
    const audit = (await inject("GET", `/api/v1/audit?target=job:${job.id}`)).json() as Array<{ action: string; detail: Record<string, unknown> }>;
    expect(audit.map((a) => a.action)).toEqual(expect.arrayContaining(["job.code-issued", "job.boot-token", "job.boot-refused"]));
    // The code itself is nowhere in the history or the audit log.
    expect(JSON.stringify([events, audit])).not.toContain(code);
    await inject("POST", `/api/v1/jobs/${job.id}/cancel`);
  });

  it("refuses a wrong code, a superseded one, an expired one and one whose job ended; a cancelled job gets no new code", async () => {
    const job = await arm("52:54:00:1c:00:02");
    const first = await codeFor(job.id);
    const second = await codeFor(job.id, 1);
    const wrong = await redeem("AAAA-BBBB-CCCC");
    expect(wrong.statusCode).toBe(403);
    expect(wrong.json().message).toMatch(/^no such one-time code on this server/);
    // A new code for the job ended the previous one.
    expect((await redeem(first.code)).json().message).toMatch(/^no such one-time code/);
    // Past its hour: expired.
    now += 3600_000 + 1000;
    const late = await redeem(second.code);
    expect(late.statusCode).toBe(403);
    expect(late.json().message).toMatch(/^no such one-time code|expired/);
    // A fresh code, then the job is cancelled: the code boots nothing.
    const third = await codeFor(job.id);
    await inject("POST", `/api/v1/jobs/${job.id}/cancel`);
    const ended = await redeem(third.code);
    expect(ended.statusCode).toBe(403);
    expect(ended.json().message).toBe(`job ${job.id} is cancelled: it boots no machine any more`);
    const refusedIssue = await inject("POST", `/api/v1/jobs/${job.id}/code`, { payload: {} });
    expect(refusedIssue.statusCode).toBe(409);
    expect((await inject("POST", "/api/v1/jobs/job-nope/code", { payload: {} })).statusCode).toBe(404);
    expect((await inject("POST", `/api/v1/jobs/${job.id}/code`, { payload: { validHours: 1000 } })).statusCode).toBe(400);
  });

  it(`caps guessing: after ${ONE_TIME_CODE_MAX_WRONG} wrong codes an address is refused even the right one, for a while; others are not`, async () => {
    await seedHost(server, "web3", "52:54:00:1c:00:03");
    const job = await arm("52:54:00:1c:00:03");
    const { code } = await codeFor(job.id);
    const guesser = "10.0.0.77";
    for (let i = 0; i < ONE_TIME_CODE_MAX_WRONG; i++) expect((await redeem(`WXYZ-WXYZ-WX${i}${i}`, guesser)).statusCode).toBe(403);
    const capped = await redeem(code, guesser);
    expect(capped.statusCode).toBe(403);
    expect(capped.json().message).toMatch(/^too many wrong one-time codes from this address/);
    // The right code was not spent by the refusal: the machine itself (another address) still gets its token.
    expect((await redeem(code, "10.0.0.5")).statusCode).toBe(200);
    const audit = (await inject("GET", "/api/v1/audit?target=code")).json() as Array<{ action: string; actor: string }>;
    expect(audit.filter((a) => a.action === "code.refused" && a.actor === `boot:${guesser}`).length).toBe(ONE_TIME_CODE_MAX_WRONG);
    // The capped try named a real code: in that job's history, with the guesser's address.
    const events = (await inject("GET", `/api/v1/jobs/${job.id}/events`)).json() as Array<{ type: string; data: { requester?: string; reason?: string } }>;
    expect(events.find((e) => e.type === "boot-refused")?.data).toMatchObject({ requester: guesser, reason: expect.stringMatching(/^too many wrong/) });
    // Ten minutes later the address may try again.
    now += 601_000;
    expect((await redeem("WXYZ-WXYZ-WXYZ", guesser)).json().message).toMatch(/^no such one-time code/);
  });

  it("a malformed request is one line, 400", async () => {
    const r = await inject("POST", "/boot/code", { payload: { nope: 1 }, token: "" });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toMatchObject({ error: expect.any(String), message: expect.any(String) });
  });
});

describe("the agent's side: lb_redeem (rescue-image/agent/lib.sh) against the real route", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await testServer({ planner: async () => standInPlan("plan_begin 1 web1 1\nplan_done\n", 2) });
    await seedHost(server, "web1", "52:54:00:1d:00:01");
  });
  afterAll(async () => server.stop(0));

  it("a medium with no code: the console is asked; a wrong code is refused with Lifeboat's reason and asked again; the right one gives the job and a token that works", async () => {
    const admin = { authorization: `Bearer ${server.ctx.adminToken}` };
    const [job] = (await server.app.inject({ method: "POST", url: "/api/v1/jobs", payload: { mac: "52:54:00:1d:00:01" }, headers: admin })).json() as JobView[];
    const { code } = (await server.app.inject({ method: "POST", url: `/api/v1/jobs/${job!.id}/code`, payload: {}, headers: admin })).json() as { code: string };
    const run = tempDir("lbt-redeem-");
    const r = await agentSh(`lb_parse_cmdline "$1"; lb_redeem; echo "rc=$? job=$LB_JOB token=$LB_TOKEN"`, {
      args: [`console=ttyS0 lifeboat.server=${server.httpUrl}`],
      env: { LB_RUN: run },
      input: `WRONG-CODE-0000\n${code.toLowerCase()}\n`,
    });
    expect(r.stderr).toContain("one-time code of this machine's job");
    expect(r.stderr).toMatch(/Lifeboat refused the one-time code: no such one-time code on this server/);
    const m = /rc=0 job=(\S+) token=(\S+)/.exec(r.stdout);
    expect(m?.[1], r.stdout + r.stderr).toBe(job!.id);
    const hb = await server.app.inject({ method: "POST", url: `/api/v1/agent/jobs/${job!.id}/heartbeat`, payload: {}, headers: { authorization: `Bearer ${m![2]}` } });
    expect(hb.statusCode).toBe(200);
    // The medium's copy, booted again with the same code on its command line: refused, saying it was used (LB_NO_WAIT: it returns instead of asking).
    const again = await agentSh(`lb_parse_cmdline "$1"; lb_redeem; echo "rc=$?"`, { args: [`lifeboat.server=${server.httpUrl} lifeboat.code=${code}`], env: { LB_RUN: run, LB_NO_WAIT: "1" } });
    expect(again.stdout).toContain("rc=1");
    expect(again.stderr).toMatch(/Lifeboat refused the one-time code: this one-time code was used already/);
  });
});
