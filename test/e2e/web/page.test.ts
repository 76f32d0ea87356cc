import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type BrowserContext, type Locator, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { recordDrill } from "../../../server/jobs/drill-record.ts";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import type { JobView } from "../../../server/jobs/job-views.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { type IpmiSim, ipmiSimUnavailable, startIpmiSim } from "../../helpers/ipmi-sim.ts";
import { bootToken, dhcpAnswered, seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("../../../test-artifacts/web/", import.meta.url));
const MIB = 1024 * 1024;

// The plan builder is tested on its own; this stand-in returns a three-step plan that names
// the job it was built for, so the page's confirmation can be checked against the request.
// It refuses hosts called "nofit", as the real one refuses data that cannot fit.
const planner: Planner = async (job, profile) => {
  if (profile.host === "nofit") return { ok: false, reason: "disk vda: 2.0 GiB of partitions do not fit on 1.0 GiB" };
  const onto = job.hello ? "the disks the agent reported" : "the captured disks (dry run)";
  const script = [
    `# plan for ${job.mac}: ${job.kind} of ${profile.host} onto ${onto}`,
    `plan_begin 1 ${job.hostname} 3`,
    "step_wipe 1 /dev/vda",
    "step_partition 2 /dev/vda",
    "step_restore 3 d1 /",
    "plan_done",
    "",
  ].join("\n");
  return standInPlan(script, 3, { bytesTotal: 4 * MIB });
};

/** Waits until the locator's text matches; fails with the last text seen. */
async function waitText(locator: Locator, re: RegExp, timeoutMs = 10_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last: string | null = null;
  while (Date.now() < end) {
    last = (await locator.count()) ? await locator.first().textContent() : null;
    if (last !== null && re.test(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`waited ${timeoutMs} ms for ${re} in ${locator}; last text: ${JSON.stringify(last)}`);
}

describe("admin page in headless Chromium", () => {
  let server: RunningServer;
  let context: BrowserContext;
  let page: Page;
  let jobId: string;
  let navigations = 0;
  const urls: string[] = [];
  let setupError: Error | undefined;
  const inject = (method: string, url: string, payload?: unknown, token = server.ctx.adminToken) =>
    server.app.inject({ method: method as "GET", url, payload: payload as object, headers: { authorization: `Bearer ${token}` } });
  const row = (id: string) => page.locator(`#jobs tr[data-job="${id}"]`);
  const shot = (name: string) => page.screenshot({ path: `${ARTIFACTS}${name}`, fullPage: true });

  const profileDir = tempDir("lifeboat-chromium-");

  beforeAll(async () => {
    try {
      if (!existsSync(CHROMIUM)) throw new Error(`Debian's chromium is not installed (${CHROMIUM} is missing): run scripts/bootstrap, or apt-get install chromium`);
      mkdirSync(ARTIFACTS, { recursive: true });
      server = await testServer({ planner });
      await seedHost(server, "web1", "52:54:00:aa:00:01");
      await seedHost(server, "db1", "52:54:00:aa:00:02");
      await seedHost(server, "nofit", "52:54:00:aa:00:04");
      // A name that would run a script if the page ever parsed data as HTML.
      await seedHost(server, `<img src=x onerror="window.pwned=1">`, "52:54:00:aa:00:03");
      context = await chromium.launchPersistentContext(profileDir, {
        executablePath: CHROMIUM,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        viewport: { width: 1400, height: 900 },
      });
      page = context.pages()[0] ?? (await context.newPage());
      page.setDefaultTimeout(10_000);
      page.on("request", (r) => urls.push(r.url()));
      page.on("framenavigated", (f) => {
        if (f === page.mainFrame()) navigations++;
      });
    } catch (err) {
      setupError = err as Error;
    }
  });
  // Each test fails with the reason: a failed beforeAll alone leaves them counted as skipped.
  beforeEach(() => {
    if (setupError) throw setupError;
  });
  afterAll(async () => {
    await context?.close();
    await server?.stop(0);
  });

  it("asks for the admin token once, keeps it, and lists hosts with their text escaped", async () => {
    await page.goto(server.httpUrl);
    await page.locator("#login").waitFor({ state: "visible" });
    expect(await page.locator("#login").textContent()).toContain("<data-dir>/admin-token");
    await page.fill("#token", "not-the-token");
    await page.click("#login-form button");
    await waitText(page.locator("#login-error"), /refused this token/);
    await shot("token.png");
    await page.fill("#token", server.ctx.adminToken);
    await page.click("#login-form button");
    await waitText(page.locator('#hosts tr[data-host="web1"]'), /web1.*52:54:00:aa:00:01/);
    await waitText(page.locator("#live"), /^live$/);
    // Kept in the browser: a reload opens the page without asking again.
    await page.reload();
    await waitText(page.locator('#hosts tr[data-host="db1"]'), /db1.*52:54:00:aa:00:02/);
    expect(await page.locator("#login").isVisible()).toBe(false);
    expect(await page.locator("#hosts tbody").textContent()).toContain(`<img src=x onerror="window.pwned=1">`);
    expect(await page.locator("#hosts img").count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned)).toBeUndefined();
  });

  it("says for each host whether it can be recovered right now, each reason a line, and its last drill", async () => {
    // db1's last drill failed (as server/drill/ records it); web1 was never drilled.
    await recordDrill(server.ctx.store, {
      job: "job-drill-db1", host: "db1", endedAt: new Date().toISOString(), passed: false, reason: "no login prompt within 600 s; console: Kernel panic",
      restoreSeconds: 90, bootSeconds: null, recoverSeconds: null, bytes: 1, accel: "tcg",
    });
    await page.reload();
    const web1 = page.locator('#hosts tr[data-host="web1"]');
    await waitText(web1.locator("td.recoverable"), /^NO.*the rescue image is not built \(lifeboat image build\)/);
    expect(await web1.locator("td.recoverable li").count()).toBeGreaterThanOrEqual(2);
    expect(await web1.locator("td.drill").textContent()).toBe("never");
    const db1 = page.locator('#hosts tr[data-host="db1"]');
    await waitText(db1.locator("td.drill"), /^FAILED .*no login prompt within 600 s; console: Kernel panic$/);
    expect(await db1.locator("td.recoverable").textContent()).toContain("last drill (job-drill-db1, ");
    await shot("recoverability.png");
  });

  it("shows each bundle target's last success and failure, a failure in red", async () => {
    // A target as the config would name it, and the outcome the scheduler records (server/bundle/schedule.ts).
    server.ctx.config.bundle.targets.push({ name: "usb", type: "directory", path: "/mnt/usb" });
    const at = new Date().toISOString();
    await server.ctx.store.settings.set("bundle.status", JSON.stringify({ usb: { lastSuccess: null, lastFailure: { at, error: "ENOTDIR: not a directory, copyfile" } } }));
    await page.reload();
    await waitText(page.locator('#bundles tr[data-target="usb"]'), /usb.*directory.*\/mnt\/usb.*FAILED.*never.*ENOTDIR: not a directory/);
    expect(await page.locator('#bundles tr[data-target="usb"] .error').count()).toBe(2);
    expect(await page.locator("#bundles-empty").isVisible()).toBe(false);
  });

  it("says in the form why a MAC cannot be armed, and in the confirmation why there is no plan", async () => {
    await page.fill("#arm-mac", "52:54:00:aa:00:99");
    await page.click("#arm-form button[type=submit]");
    await waitText(page.locator("#arm-error"), /^52:54:00:aa:00:99 is not assigned to a profile and belongs to no host/);
    expect(await page.locator("#arm-dialog").isVisible()).toBe(false);
    await page.fill("#arm-mac", "52:54:00:aa:00:04");
    await page.click("#arm-form button[type=submit]");
    await page.locator("#arm-dialog").waitFor({ state: "visible" });
    await waitText(page.locator("#arm-note"), /^No plan yet: disk vda: 2\.0 GiB of partitions do not fit on 1\.0 GiB\./);
    expect(await page.locator("#arm-confirm").textContent()).toBe("Arm anyway");
    await page.click("#arm-back");
    await page.locator("#arm-dialog").waitFor({ state: "hidden" });
    await page.fill("#arm-mac", "");
  });

  it("arms a job through the form, showing the plan in the confirmation first", async () => {
    await page.fill("#arm-mac", "52-54-00-AA-00-01");
    await page.click("#arm-form button[type=submit]");
    await page.locator("#arm-dialog").waitFor({ state: "visible" });
    await waitText(page.locator("#arm-plan"), /# plan for 52:54:00:aa:00:01: recover of web1 onto the captured disks \(dry run\)\nplan_begin 1 web1 3/);
    expect(await page.locator("#arm-summary").textContent()).toMatch(/Arm a recover job for 52-54-00-AA-00-01/);
    // Nothing is armed until the admin confirms.
    expect((await inject("GET", "/api/v1/jobs")).json()).toEqual([]);
    await shot("arm-confirmation.png");
    await page.click("#arm-confirm");
    await page.locator("#arm-dialog").waitFor({ state: "hidden" });
    const jobs = (await inject("GET", "/api/v1/jobs")).json() as JobView[];
    expect(jobs.map((j) => [j.mac, j.state, j.profile])).toEqual([["52:54:00:aa:00:01", "armed", "web1"]]);
    jobId = jobs[0]!.id;
    await waitText(row(jobId).locator(".state"), /^armed$/);
  });

  it("shows the job's progress live as the agent reports it, without a reload", async () => {
    const before = navigations;
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));
    const token = await bootToken(server, { id: jobId, mac: "52:54:00:aa:00:01" });
    const base = `/api/v1/agent/jobs/${jobId}`;
    const agent = async (path: string, body?: unknown) => {
      const r = await inject(body === undefined && path === "plan" ? "GET" : "POST", `${base}/${path}`, body, token);
      expect(r.statusCode, r.body).toBe(200);
      return r;
    };
    const disks = [{ name: "vda", path: "/dev/vda", sizeBytes: 8 * 2 ** 30, serial: "QM0001" }];
    await agent("hello", { disks, hardware: { macs: ["52:54:00:aa:00:01"] }, ssh: "ssh -p 2222 root@192.0.2.10" });
    await waitText(row(jobId).locator(".state"), /^booted$/);
    await waitText(row(jobId).locator(".remote"), /ssh -p 2222 root@192\.0\.2\.10/);
    expect((await agent("plan")).body).toContain("onto the disks the agent reported");
    await waitText(row(jobId).locator(".step"), /^step 0 of 3$/);
    for (const [step, name] of [[1, "wipe"], [2, "partition"]] as const) {
      await agent("events", { type: "step-start", step, of: 3, name });
      await waitText(row(jobId).locator(".step"), new RegExp(`^step ${step} of 3$`));
      await agent("events", { type: "step-end", step, of: 3, name, exitStatus: 0, output: `${name} ok` });
    }
    // The open job's history follows along, and shows each dump stream's progress.
    await row(jobId).locator("button", { hasText: "Log" }).click();
    await waitText(page.locator("#detail-events tbody tr:last-child"), /step-end.*step 2 of 3: partition exit 0/);
    await agent("events", { type: "step-start", step: 3, of: 3, name: "restore" });
    await waitText(page.locator("#detail-events tbody tr:last-child"), /step-start.*step 3 of 3: restore/);
    await agent("events", { type: "stream", dumpId: "d1", bytes: 1 * MIB, totalBytes: 4 * MIB });
    await waitText(row(jobId).locator(".bytes"), /^1\.0 MiB of 4\.0 MiB \(25%\)$/);
    await waitText(page.locator('#detail-streams tr[data-dump="d1"] .bytes'), /^1\.0 MiB of 4\.0 MiB \(25%\)$/);
    expect(await row(jobId).locator(".state").textContent()).toBe("running");
    expect(await row(jobId).locator(".bar").getAttribute("aria-valuenow")).toBe("25");
    await page.evaluate(() => (globalThis as unknown as { scrollTo(x: number, y: number): void }).scrollTo(0, 0));
    await shot("progress.png");
    await agent("events", { type: "stream", dumpId: "d1", bytes: 3 * MIB, totalBytes: 4 * MIB });
    await waitText(row(jobId).locator(".bytes"), /\(75%\)$/);
    await agent("events", { type: "stream", dumpId: "d1", bytes: 4 * MIB, totalBytes: 4 * MIB, sha256: "5d41402a", done: true });
    await agent("events", { type: "step-end", step: 3, of: 3, name: "restore", exitStatus: 0 });
    const log = await server.app.inject({
      method: "POST",
      url: `${base}/log`,
      payload: "lifeboat-agent: wiping /dev/vda\nlifeboat-agent: restored d1 (4194304 bytes, sha256 ok)\n",
      headers: { authorization: `Bearer ${token}`, "content-type": "text/plain" },
    });
    expect(log.statusCode).toBe(200);
    await agent("events", { type: "done" });
    await waitText(row(jobId).locator(".state"), /^done$/);
    await waitText(row(jobId).locator(".bytes"), /^4\.0 MiB of 4\.0 MiB \(100%\)$/);
    expect(navigations).toBe(before);
    // The live stream is read with the token in a header: no URL ever carries it (URLs get logged).
    expect(urls.filter((u) => u.includes("/api/v1/live"))).not.toEqual([]);
    expect(urls.filter((u) => u.includes(server.ctx.adminToken))).toEqual([]);
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42);
  });

  it("opens the job's history and the agent's log", async () => {
    await row(jobId).locator("button", { hasText: "Log" }).click();
    await page.locator("#detail").waitFor({ state: "visible" });
    await waitText(page.locator("#detail-log"), /lifeboat-agent: restored d1 \(4194304 bytes, sha256 ok\)/);
    const types = await page.locator("#detail-events tbody tr td:nth-child(2)").allTextContents();
    expect(types).toEqual(["armed", "boot", "booted", "plan", "step-start", "step-end", "step-start", "step-end", "step-start", "stream-done", "step-end", "agent-log", "done"]);
    expect(await page.locator("#detail-events").textContent()).toContain("step 2 of 3: partition exit 0");
    await page.click("#detail-plan");
    await waitText(page.locator("#detail-plan-text"), /onto the disks the agent reported/);
    await page.locator("#detail").scrollIntoViewIfNeeded();
    await shot("job-log.png");
  });

  it("shows a failed job's error", async () => {
    const [failing] = (await inject("POST", "/api/v1/jobs", { mac: "52:54:00:aa:00:01" })).json() as JobView[];
    const token = await bootToken(server, failing!);
    const base = `/api/v1/agent/jobs/${failing!.id}`;
    expect((await inject("POST", `${base}/hello`, { disks: [] }, token)).statusCode).toBe(200);
    expect((await inject("POST", `${base}/events`, { type: "failed", step: 2, error: "step 2: mkfs.ext4 /dev/vda2 exited 1" }, token)).statusCode).toBe(200);
    await waitText(row(failing!.id).locator(".state"), /^failed$/);
    await waitText(row(failing!.id).locator(".job-error"), /^step 2: mkfs\.ext4 \/dev\/vda2 exited 1$/);
  });

  it("arms clones of one profile for several MACs at once", async () => {
    expect((await inject("PUT", "/api/v1/profiles/web-clone", { host: "web1", options: { hostnamePattern: "web-{n}" } })).statusCode).toBe(200);
    await page.click("#reload");
    await waitText(page.locator('#profiles tr[data-profile="web-clone"]'), /web-clone.*hostname web-\{n\}/);
    await page.fill("#arm-mac", "52:54:00:bb:00:01, 52:54:00:bb:00:02");
    await page.selectOption("#arm-profile", "web-clone");
    await page.selectOption("#arm-kind", "clone");
    await page.click("#arm-form button[type=submit]");
    await page.locator("#arm-dialog").waitFor({ state: "visible" });
    expect(await page.locator("#arm-summary").textContent()).toMatch(/^Arm 2 clone jobs, for 52:54:00:bb:00:01, 52:54:00:bb:00:02 with profile web-clone/);
    await waitText(page.locator("#arm-plan"), /^# plan for 52:54:00:bb:00:01: clone of web1 .*\nplan_begin 1 web-1 3/);
    await page.click("#arm-confirm");
    await page.locator("#arm-dialog").waitFor({ state: "hidden" });
    const clones = ((await inject("GET", "/api/v1/jobs?state=armed")).json() as JobView[]).filter((j) => j.kind === "clone");
    expect(clones.map((j) => [j.mac, j.hostname]).sort()).toEqual([["52:54:00:bb:00:01", "web-1"], ["52:54:00:bb:00:02", "web-2"]]);
    for (const j of clones) await waitText(row(j.id), new RegExp(`${j.mac}${j.hostname}clone`));
  });

  it("cancels another job after a confirmation, the open history following live", async () => {
    const armed = (await inject("POST", "/api/v1/jobs", { mac: "52:54:00:aa:00:02" })).json() as JobView[];
    const id = armed[0]!.id;
    await waitText(row(id).locator(".state"), /^armed$/);
    await row(id).locator("button", { hasText: "Log" }).click();
    await waitText(page.locator("#detail-id"), new RegExp(`^${id}$`));
    await waitText(page.locator("#detail-events tbody"), /^.*armed/);
    // A one-time code for a machine booted from a medium (lifeboat image iso): shown once, traded once.
    await row(id).locator("button", { hasText: "Code" }).click();
    await waitText(page.locator("#code-value"), /^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$/);
    const oneTime = (await page.locator("#code-value").textContent())!;
    await page.click("#code-close");
    const traded = await server.app.inject({ method: "POST", url: "/boot/code", payload: { code: oneTime } });
    expect(traded.json()).toMatchObject({ job: id });
    await row(id).locator("button", { hasText: "Cancel" }).click();
    await page.locator("#cancel-dialog").waitFor({ state: "visible" });
    expect(await page.locator("#cancel-summary").textContent()).toBe(`Cancel recover job ${id} for 52:54:00:aa:00:02 (armed)?`);
    await page.click("#cancel-back");
    expect(((await inject("GET", `/api/v1/jobs/${id}`)).json() as JobView).state).toBe("armed");
    await row(id).locator("button", { hasText: "Cancel" }).click();
    await page.click("#cancel-confirm");
    await waitText(row(id).locator(".state"), /^cancelled$/);
    await waitText(page.locator("#detail-events tbody tr:last-child"), /cancelled.*by api:127\.0\.0\.1 \(was armed\)/);
    expect(((await inject("GET", `/api/v1/jobs/${id}`)).json() as JobView).state).toBe("cancelled");
    const audit = (await inject("GET", `/api/v1/audit?target=job:${id}`)).json() as Array<{ action: string }>;
    expect(audit.map((a) => a.action)).toEqual(["job.cancel", "job.boot-token", "job.code-issued", "job.arm"]);
    expect(await row(id).locator("button", { hasText: "Cancel" }).count()).toBe(0);
    await page.evaluate(() => (globalThis as unknown as { scrollTo(x: number, y: number): void }).scrollTo(0, 0));
    await shot("overview.png");
  });

  it("powers a host through its BMC from its row: the state at once, then on and off (OpenIPMI's ipmi_sim as the BMC)", async () => {
    const missing = await ipmiSimUnavailable();
    if (missing) throw new Error(missing);
    const dir = tempDir("lifeboat-page-bmc-");
    let sim: IpmiSim | undefined;
    try {
      sim = await startIpmiSim(dir, "admin", "page-bmc-secret");
      const set = await inject("PUT", "/api/v1/hosts/db1/power-config", { kind: "ipmi", address: "127.0.0.1", port: sim.port, user: "admin", password: "page-bmc-secret" });
      expect(set.statusCode, set.body).toBe(200);
      await page.locator('#hosts tr[data-host="db1"] button', { hasText: "Power…" }).click();
      await page.locator("#power-dialog").waitFor({ state: "visible" });
      await waitText(page.locator("#power-summary"), new RegExp(`^db1: IPMI BMC 127\\.0\\.0\\.1:${sim.port} says off$`), 30_000);
      expect(sim.calls().filter((c) => c.includes(" set "))).toEqual([]);
      await page.click("#power-on");
      await waitText(page.locator("#power-summary"), /^db1: on done; .* says on$/, 30_000);
      expect(sim.power()).toBe("on");
      await page.click("#power-off");
      await waitText(page.locator("#power-summary"), /^db1: off done; .* says off$/, 30_000);
      expect(sim.calls().filter((c) => c.includes(" set "))).toEqual(["0x20 set power 1", "0x20 set power 0"]);
      await shot("power.png");
      await page.click("#power-back");
      await page.locator("#power-dialog").waitFor({ state: "hidden" });
    } finally {
      await sim?.stop();
    }
  });

  it("shows a banner with its limits while the clone window is open, its count following live", async () => {
    expect(await page.locator("#clone-window").isVisible()).toBe(false);
    expect((await inject("PUT", "/api/v1/clone-window", { profile: "web-clone", minutes: 10, only: ["52:54:00:cd"] })).statusCode).toBe(200);
    await page.click("#reload");
    await waitText(
      page.locator("#clone-window"),
      /^Clone window open until .+: an unknown machine under 52:54:00:cd that network-boots becomes a clone of web-clone \(0 so far\)\. Close it with lifeboat jobs window --close\.$/,
    );
    await shot("clone-window.png");
    dhcpAnswered(server, "52:54:00:cd:00:01");
    expect((await server.app.inject({ url: "/boot/ipxe?mac=52:54:00:cd:00:01" })).body).toContain("/boot/vmlinuz");
    await waitText(page.locator("#clone-window"), /\(1 so far\)/);
    await inject("DELETE", "/api/v1/clone-window");
    await page.click("#reload");
    await page.locator("#clone-window").waitFor({ state: "hidden" });
  });
});
