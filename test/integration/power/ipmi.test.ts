/**
 * IPMI for real: Lifeboat's CLI → its API → ipmitool lanplus → OpenIPMI's ipmi_sim, whose
 * chassis control script is the machine (test/integration/power/ipmi-sim.ts).
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import type { JobView } from "../../../server/jobs/job-views.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { type IpmiSim, freeUdpPort, ipmiSimUnavailable, startIpmiSim } from "../../helpers/ipmi-sim.ts";

const MAC = "52:54:00:c0:00:01";
const PASSWORD = "s3cret-bmc-Pa55";
const planner: Planner = async (job) => {
  const endState = job.options.endState ?? "reboot";
  return standInPlan(`plan_begin 3 ${job.profile} 1\nplan_done ${endState}\n`, 1, { endState });
};

describeNeeding(await ipmiSimUnavailable(), "power through IPMI against OpenIPMI's ipmi_sim", () => {
  let sim: IpmiSim;
  let server: RunningServer;
  let dataDir: string;
  let pwFile: string;
  const cli = (...args: string[]) => lifeboat([...args, "--data-dir", dataDir, "--server", server.httpUrl]);
  const ipmitool = (...args: string[]) =>
    execa("ipmitool", ["-I", "lanplus", "-H", "127.0.0.1", "-p", String(sim.port), "-U", "admin", "-E", "-C", "3", ...args], { env: { IPMI_PASSWORD: PASSWORD }, reject: false });
  const activeJobs = async () => (JSON.parse((await cli("jobs", "list", "--active", "--json")).stdout) as JobView[]).filter((j) => j.mac === MAC);
  const powerSteps = async (id: string) => (await server.ctx.jobs.events(id)).filter((e) => e.type === "power").map((e) => e.data as { step: string; error?: string });
  /** Cancels the machine's jobs, and waits until the boot flag a job's arm set was cleared (the server does it once the job ended). */
  const cancelAll = async () => {
    for (const j of await activeJobs()) {
      await cli("jobs", "cancel", j.id);
      const until = Date.now() + 20_000;
      const flagSet = async () => (await powerSteps(j.id)).some((s) => s.step === "set-boot" && !s.error);
      while ((await flagSet()) && !(await powerSteps(j.id)).some((s) => s.step === "clear-boot") && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    const dir = tempDir();
    sim = await startIpmiSim(dir, "admin", PASSWORD);
    dataDir = tempDir();
    server = await testServer({ dataDir, planner });
    await seedHost(server, "web1", MAC, { disks: [], boot: { firmware: "uefi" } });
    pwFile = join(dir, "bmc-password");
    writeFileSync(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
    const set = await cli("hosts", "power-config", "web1", "--ipmi", "127.0.0.1", "--port", String(sim.port), "--user", "admin", "--password-file", pwFile);
    expect(set.stderr).toBe("");
    expect(set.stdout.trim()).toBe(`web1: IPMI BMC 127.0.0.1:${sim.port} as admin (password sealed in the store)`);
  }, 60_000);
  afterAll(async () => {
    await server?.stop(0);
    await sim?.stop();
  });

  it("status, on, off, cycle through the simulator's chassis control", { timeout: 60_000 }, async () => {
    expect((await cli("hosts", "power", "web1", "status")).stdout.trim()).toBe(`web1: off (IPMI BMC 127.0.0.1:${sim.port})`);
    const on = await cli("hosts", "power", "web1", "on", "--json");
    expect(JSON.parse(on.stdout)).toEqual({ host: "web1", via: "ipmi", target: `IPMI BMC 127.0.0.1:${sim.port}`, action: "on", state: "on" });
    expect(sim.power()).toBe("on");
    expect(sim.calls()).toContain("0x20 set power 1");
    // "on" of a machine that is on is no hidden cycle: nothing is set.
    const before = sim.calls().length;
    expect((await cli("hosts", "power", "web1", "on")).stdout.trim()).toBe(`web1: on (IPMI BMC 127.0.0.1:${sim.port})`);
    expect(sim.calls().slice(before).filter((c) => c.includes(" set "))).toEqual([]);
    expect((await cli("hosts", "power", "web1", "off")).stdout.trim()).toBe(`web1: off (IPMI BMC 127.0.0.1:${sim.port})`);
    expect(sim.power()).toBe("off");
    // cycle: the simulator powers off, then on again a second later.
    const cycleStart = sim.calls().length;
    expect((await cli("hosts", "power", "web1", "cycle")).exitCode).toBe(0);
    const until = Date.now() + 10_000;
    while (sim.power() !== "on" && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    expect(sim.calls().slice(cycleStart).filter((c) => c.includes(" set "))).toEqual(["0x20 set power 0", "0x20 set power 1"]);
    // Audited, the credentials' use included; the password nowhere.
    const audit = (await server.ctx.store.audit.list({ target: "host:web1" })).map((a) => a.detail as Record<string, unknown>);
    expect(audit.filter((d) => d.via === "ipmi").map((d) => d.action)).toEqual(["cycle", "off", "on", "on", "status"]);
    expect(JSON.stringify(await server.ctx.store.audit.list())).not.toContain(PASSWORD);
  });

  it("arm --power on a machine that is off: the plan first, a one-time PXE boot, then on; in the job's history", { timeout: 60_000 }, async () => {
    sim.setPower("off");
    const start = sim.calls().length;
    const arm = await cli("jobs", "arm", MAC, "--power");
    expect(arm.exitCode, arm.stderr).toBe(0);
    expect(arm.stdout).toMatch(new RegExp(`^# the plan for ${MAC}\\nplan_begin 3 web1 1\\nplan_done reboot\\n\\njob-\\w+ armed for ${MAC} \\(recover, profile web1\\), expires .*\\npower: web1 via IPMI BMC 127\\.0\\.0\\.1:${sim.port} \\(web1\\): was off; set a one-time PXE boot \\(UEFI\\), then power on$`));
    // The boot flag is set before the power-on, and the BMC holds it.
    const sets = sim.calls().slice(start).filter((c) => c.includes(" set "));
    expect(sets).toEqual(["0x20 set boot pxe", "0x20 set power 1"]);
    expect((await ipmitool("chassis", "bootparam", "get", "5")).stdout).toMatch(/Boot Device Selector : Force PXE/);
    const [job] = await activeJobs();
    expect(job!.state).toBe("armed");
    const log = (await cli("jobs", "log", job!.id)).stdout;
    expect(log).toMatch(/power \{"by":"api:127\.0\.0\.1","via":"ipmi",.*"step":"status","state":"off"/);
    expect(log).toMatch(/power .*"step":"set-boot","netBoot":"pxe","firmware":"uefi"/);
    expect(log).toMatch(/power .*"step":"on"/);
    await cancelAll();
  });

  it("after done, the one-time boot flag is never left behind: bootdev none, in the job's history, the next boot the disk's", { timeout: 60_000 }, async () => {
    sim.setPower("off");
    const arm = await cli("jobs", "arm", MAC, "--power", "--end-state", "poweroff");
    expect(arm.exitCode, arm.stderr).toBe(0);
    expect((await ipmitool("chassis", "bootparam", "get", "5")).stdout).toMatch(/Boot Device Selector : Force PXE/);
    const [job] = await activeJobs();
    // The agent's calls, by hand: it booted, fetched its plan, ran plan_done to its end.
    const { jobs } = server.ctx;
    await jobs.hello(job!.id, { disks: [], hardware: { macs: [MAC] } });
    expect(await jobs.plan(job!.id, "token-hash")).toMatchObject({ ok: true });
    await jobs.agentEvent(job!.id, { type: "step-start", step: 1, of: 1, name: "plan_done" });
    const start = sim.calls().length;
    await jobs.agentEvent(job!.id, { type: "step-end", step: 1, of: 1, name: "plan_done", exitStatus: 0, output: "", skipped: false });
    const until = Date.now() + 20_000;
    while (!(await powerSteps(job!.id)).some((s) => s.step === "clear-boot") && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect((await powerSteps(job!.id)).map((s) => [s.step, s.error])).toEqual([["status", undefined], ["set-boot", undefined], ["on", undefined], ["clear-boot", undefined]]);
    expect(sim.calls().slice(start).filter((c) => c.includes(" set "))).toEqual(["0x20 set boot none"]);
    expect((await ipmitool("chassis", "bootparam", "get", "5")).stdout).toMatch(/Boot Device Selector : No override/);
    const events = (await cli("jobs", "log", job!.id)).stdout;
    expect(events).toContain('done {"reason":"the plan ran to plan_done","endState":"poweroff"}');
  });

  it("a machine that is on is not power-cycled without --force (one line, nothing armed); with --force: off, confirmed off, boot flag, on", { timeout: 60_000 }, async () => {
    sim.setPower("on");
    const start = sim.calls().length;
    const refused = await cli("jobs", "arm", MAC, "--power");
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr.trim()).toBe("lifeboat: POST /api/v1/jobs: 409 web1 is on: not power-cycled without --force (nothing armed)");
    expect(sim.calls().slice(start).filter((c) => c.includes(" set "))).toEqual([]);
    expect(await activeJobs()).toEqual([]);
    const forced = await cli("jobs", "arm", MAC, "--power", "--force");
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/was on; power off, then confirm it is off, then set a one-time PXE boot \(UEFI\), then power on$/);
    expect(sim.calls().slice(start).filter((c) => c.includes(" set "))).toEqual(["0x20 set power 0", "0x20 set boot pxe", "0x20 set power 1"]);
    expect(sim.power()).toBe("on");
    await cancelAll();
  });

  it("a wrong password is one line naming the BMC", { timeout: 60_000 }, async () => {
    const wrong = join(dataDir, "wrong");
    writeFileSync(wrong, "not-the-password\n", { mode: 0o600 });
    await cli("hosts", "power-config", "web1", "--ipmi", "127.0.0.1", "--port", String(sim.port), "--user", "admin", "--password-file", wrong);
    const r = await cli("hosts", "power", "web1", "status");
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim()).toBe(`lifeboat: POST /api/v1/hosts/web1/power: 502 IPMI BMC 127.0.0.1:${sim.port} refused user admin or its password`);
    await cli("hosts", "power-config", "web1", "--ipmi", "127.0.0.1", "--port", String(sim.port), "--user", "admin", "--password-file", pwFile);
  });

  it("a BMC that does not answer: one line naming it, and the job stays armed for a manual power-on", { timeout: 90_000 }, async () => {
    const silent = await freeUdpPort();
    await cli("hosts", "power-config", "web1", "--ipmi", "127.0.0.1", "--port", String(silent), "--user", "admin", "--password-file", pwFile);
    const r = await cli("jobs", "arm", MAC, "--power");
    expect(r.exitCode).toBe(1);
    const line = r.stderr.trim();
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toMatch(new RegExp(`^lifeboat: POST /api/v1/jobs: 502 IPMI BMC 127\\.0\\.0\\.1:${silent} does not answer; job-\\w+ stays armed: power web1 on by hand$`));
    const [job] = await activeJobs();
    expect(job!.state).toBe("armed");
    expect((await cli("jobs", "log", job!.id)).stdout).toMatch(/power .*"step":"status","error":"IPMI BMC 127\.0\.0\.1:\d+ does not answer"/);
    await cancelAll();
    await cli("hosts", "power-config", "web1", "--ipmi", "127.0.0.1", "--port", String(sim.port), "--user", "admin", "--password-file", pwFile);
  });

  it("the BMC password is sealed: not in the store's files, the audit log or the config shown", async () => {
    const shown = await cli("hosts", "power-config", "web1", "--json");
    expect(JSON.parse(shown.stdout)).toEqual({ host: "web1", kind: "ipmi", address: "127.0.0.1", port: sim.port, user: "admin", cipherSuite: 3, target: `IPMI BMC 127.0.0.1:${sim.port}`, hasPassword: true });
    for (const f of readdirSync(dataDir).filter((f) => f.startsWith("lifeboat.db"))) expect(readFileSync(join(dataDir, f)).includes(PASSWORD), f).toBe(false);
    expect(JSON.stringify(await server.ctx.store.audit.list())).not.toContain(PASSWORD);
  });
});
