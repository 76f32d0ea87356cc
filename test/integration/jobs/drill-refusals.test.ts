/**
 * Drills that fail before any machine starts (issue 24): a chain with a missing dump fails the
 * drill naming it, disks over drill.maxDiskGiB fail it naming their sizes; each is a job of kind
 * drill with its history, and the host's last drill. No rescue image, an unknown host or a bad
 * ready pattern are one-line refusals with nothing armed. A real server and store, the real CLI;
 * the rescue image is a stand-in (its files exist; nothing boots here: QEMU never starts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DrillSummary, lastDrill, recordDrill } from "../../../server/jobs/drill-record.ts";
import { drillScheduleService } from "../../../server/drill/schedule.ts";
import type { JobView } from "../../../server/jobs/job-views.ts";
import type { RunningServer } from "../../../server/serve.ts";
import type { JobEvent } from "../../../server/store/types.ts";
import { drillMac } from "../../../server/drill/drill-plan.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { standInImage, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { dump } from "../../unit/jobs/job-fixture.ts";
import { fixtureLayout } from "../../unit/recovery/fixtures.ts";

describe("lifeboat drill: the failures found before a machine starts", { timeout: 120_000 }, () => {
  let server: RunningServer;
  let dataDir: string;
  const cli = (...args: string[]) => lifeboat([...args, "--data-dir", dataDir, "--server", server.httpUrl]);
  const inject = (method: "GET" | "POST" | "PUT", url: string, payload?: object) =>
    server.app.inject({ method, url, payload, headers: { authorization: `Bearer ${server.ctx.adminToken}` } });

  beforeAll(async () => {
    dataDir = tempDir();
    server = await testServer({ dataDir });
    const { store } = server.ctx;
    await store.hosts.add({ name: "web1", tokenHash: "x", smbiosUuid: null, macs: ["52:54:00:ee:24:11"], amandaConfig: "daily", dleMap: { "/": "/", "/home": "/home" } });
    await store.layouts.add("web1", fixtureLayout("gpt-uefi"));
    // The level 0 of /home is gone from the catalog: only its level 1 is left.
    await store.catalog.replace("daily", [dump({ disk: "/", level: 0, datestamp: "20261201000000" }), dump({ disk: "/home", level: 1, datestamp: "20261202000000" })], []);
  });
  afterAll(async () => server.stop(0));

  it("without a rescue image, for an unknown host, with a bad ready pattern: one line each, nothing armed", async () => {
    const noImage = await cli("drill", "web1");
    expect(noImage.exitCode).toBe(2);
    expect(noImage.stderr.trim()).toBe(`lifeboat: POST /api/v1/hosts/web1/drill: 400 no rescue image in ${dataDir}/image: run lifeboat image build`);
    standInImage(dataDir);
    expect((await inject("POST", "/api/v1/hosts/nope/drill", {})).json()).toEqual({ error: "not-found", message: "no host named nope" });
    const bad = await inject("POST", "/api/v1/hosts/web1/drill", { ready: "login: (" });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toBe('ready pattern "login: (" is not a regular expression');
    const badCheck = await inject("POST", "/api/v1/hosts/web1/drill", { checks: ["tcp:22", "icmp"] });
    expect(badCheck.statusCode).toBe(400);
    expect(badCheck.json().message).toContain('check "icmp": expected tcp:PORT (1-65535) or ssh:COMMAND (one line)');
    const noKey = await cli("drill", "web1", "--check", "ssh:true");
    expect(noKey.exitCode).toBe(2);
    expect(noKey.stderr.trim()).toBe("lifeboat: POST /api/v1/hosts/web1/drill: 400 ssh: checks log in with config drill.sshKey, which is not set");
    expect(await server.ctx.store.jobs.list({ mac: drillMac("web1") })).toEqual([]);
  });

  it("a chain with a missing dump fails the drill naming it, before any machine starts", async () => {
    const r = await cli("drill", "web1");
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/^drill job-\w+ of web1: FAILED: no level 0 of web1:"\/home" \(oldest dump in the catalog: 20261202000000\)$/m);
    expect(r.stdout).toMatch(/^time to recover: -/m);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^lifeboat: drill job-\w+ failed$/);
    const [job] = (await inject("GET", `/api/v1/jobs?mac=${drillMac("web1")}`)).json() as JobView[];
    expect(job).toMatchObject({ kind: "drill", state: "failed", hostname: "web1", error: 'drill: no level 0 of web1:"/home" (oldest dump in the catalog: 20261202000000)' });
    const events = (await inject("GET", `/api/v1/jobs/${job!.id}/events`)).json() as JobEvent[];
    expect(events.map((e) => e.type)).toEqual(["armed", "failed", "drill-result"]);
    expect(events[2]!.data).toMatchObject({ passed: false, restoreSeconds: null, bootSeconds: null, recoverSeconds: null, bytes: 0, accel: null });
    // The host's last drill: not recoverable, saying why.
    const hosts = (await inject("GET", "/api/v1/hosts")).json() as Array<{ recoverability: { reasons: string[]; lastDrill: DrillSummary } }>;
    expect(hosts[0]!.recoverability.lastDrill).toMatchObject({ job: job!.id, passed: false });
    expect(hosts[0]!.recoverability.reasons).toContain(`last drill (${job!.id}, ${hosts[0]!.recoverability.lastDrill.endedAt}) failed: no level 0 of web1:"/home" (oldest dump in the catalog: 20261202000000)`);
    expect((await inject("GET", "/metrics")).body).toMatch(/^lifeboat_drill_last_success\{host="web1"\} 0$/m);
  });

  it("disks over drill.maxDiskGiB fail it naming their sizes", async () => {
    await server.ctx.store.catalog.replace("daily", [dump({ disk: "/", level: 0, datestamp: "20261201000000" }), dump({ disk: "/home", level: 0, datestamp: "20261202000000" })], []);
    // The fixture's disk is 1 GiB.
    server.ctx.config.drill.maxDiskGiB = 0.5;
    const r = await cli("drill", "web1", "--json");
    expect(r.exitCode, r.stderr).toBe(1);
    const s = JSON.parse(r.stdout) as DrillSummary;
    expect(s).toMatchObject({ host: "web1", passed: false });
    expect(s.reason).toMatch(/^its disks add up to [\d.]+ GiB, more than drill\.maxDiskGiB \(0\.5 GiB\): sda 1 GiB$/);
  });

  it("serve starts a due drill on its schedule: the host's own profile's period over drill.every; not again before it is due", async () => {
    const { store, drills } = server.ctx;
    const put = await inject("PUT", "/api/v1/profiles/web1", { host: "web1", options: { drillEvery: "1d" } });
    expect(put.statusCode, put.body).toBe(200);
    const bad = await inject("PUT", "/api/v1/profiles/web1", { host: "web1", options: { drillEvery: "weekly" } });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('expected a period like 7d, 12h, 90m or 2w (or off), got \\"weekly\\"');
    // Its last drill ended two days ago: due. (The config says off: the profile's period counts.)
    const before = (await lastDrill(store, "web1"))!;
    await recordDrill(store, { ...before, endedAt: new Date(Date.now() - 2 * 86_400_000).toISOString() });
    const schedule = drillScheduleService({ store, drills, every: server.ctx.config.drill.every, log: server.ctx.log });
    expect(await schedule.start()).toBe("drills by profile (drillEvery) only; config drill.every is off");
    try {
      let last: DrillSummary | undefined;
      for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
        last = await lastDrill(store, "web1");
        if (last && last.job !== before.job) break;
      }
      expect(last!.job).not.toBe(before.job);
      const job = await server.ctx.jobs.get(last!.job);
      expect(job).toMatchObject({ kind: "drill", hostname: "web1", armedBy: "schedule" });
      // (This one fails before a machine starts: its disk is over drill.maxDiskGiB, set above.)
      expect(last!.reason).toMatch(/more than drill\.maxDiskGiB/);
    } finally {
      await schedule.stop(0);
    }
    // Just drilled: a new start of the schedule finds nothing due.
    const again = drillScheduleService({ store, drills, every: "off", log: server.ctx.log });
    const jobsBefore = (await store.jobs.list({ mac: drillMac("web1") })).length;
    await again.start();
    await again.stop(0);
    expect((await store.jobs.list({ mac: drillMac("web1") })).length).toBe(jobsBefore);
  });

  it("a drill left active by a server that stopped is failed at the next start, saying so", async () => {
    const left = await server.ctx.jobs.arm({ mac: drillMac("web1"), kind: "drill", profile: "web1", hostname: "web1", actor: "test" });
    expect(await server.ctx.drills.failLeftovers()).toBe(1);
    const job = await server.ctx.jobs.get(left.id);
    expect(job).toMatchObject({ state: "failed", error: "drill: the server stopped during the drill; its machine is gone" });
    expect(await server.ctx.drills.failLeftovers()).toBe(0);
  });
});
