import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobView } from "../../../server/jobs/job-views.ts";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { bootToken, dhcpAnswered, seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";

// The planner is the plan builder's job (tested on its own); here a planner that returns a
// fixed three-step script stands in so the job flow can be driven end to end over HTTP.
const planner: Planner = async (job) =>
  job.hello
    ? // d-3 is in the script's text (a comment) but not among the plan's dumps: its token may not stream it.
      standInPlan("plan_begin 1 web1 3\n# not d-3: /api/v1/dumps/d-3/stream\nrestore_dump / gtar 0 none 1000 /api/v1/dumps/d-1/stream\nplan_done\n", 3, { bytesTotal: 1000, dumps: ["d-1"] })
    : { ok: false, reason: "no disks reported" };

describe("admin and agent API", () => {
  let server: RunningServer;
  let dataDir: string;
  const auth = () => ({ authorization: `Bearer ${server.ctx.adminToken}` });
  const inject = (method: string, url: string, payload?: unknown, headers: Record<string, string> = auth()) =>
    server.app.inject({ method: method as "GET", url, payload: payload as object, headers });

  beforeAll(async () => {
    dataDir = tempDir();
    server = await testServer({ dataDir, planner });
    await seedHost(server, "web1", "52:54:00:aa:00:01");
  });
  afterAll(async () => server.stop(0));

  it("refuses a missing or wrong admin token with 401", async () => {
    expect((await inject("GET", "/api/v1/jobs", undefined, {})).statusCode).toBe(401);
    const wrong = await inject("GET", "/api/v1/jobs", undefined, { authorization: "Bearer nope" });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toEqual({ error: "unauthorized", message: "admin bearer token required" });
  });

  it("validates bodies with a one-line 400", async () => {
    const r = await inject("POST", "/api/v1/jobs", { mac: "52:54:00:aa:00:01", kind: "destroy" });
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toMatch(/kind/);
    const bad = await inject("POST", "/api/v1/assignments", { mac: "zz:zz", profile: "p" });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toBe("mac: expected a MAC address");
    expect((await inject("GET", "/api/v1/jobs/job-nope")).statusCode).toBe(404);
  });

  it("arms a host's own MAC (any spelling), one active job per machine, audited", async () => {
    const r = await inject("POST", "/api/v1/jobs", { mac: "52-54-00-AA-00-01" });
    expect(r.statusCode).toBe(200);
    const [job] = r.json() as JobView[];
    expect(job).toMatchObject({ mac: "52:54:00:aa:00:01", kind: "recover", profile: "web1", state: "armed", hostname: "web1" });
    const again = await inject("POST", "/api/v1/jobs", { mac: "52:54:00:aa:00:01" });
    expect(again.statusCode).toBe(400);
    expect(again.json().message).toBe(`52:54:00:aa:00:01 already has an active job (${job!.id}, armed): one per machine`);
    const audit = (await inject("GET", `/api/v1/audit?target=job:${job!.id}`)).json() as Array<{ action: string }>;
    expect(audit.map((a) => a.action)).toEqual(["job.arm"]);
    const cancelled = (await inject("POST", `/api/v1/jobs/${job!.id}/cancel`)).json() as JobView;
    expect(cancelled.state).toBe("cancelled");
    // Cancelling an ended job is a state conflict: 409 (issue 17 item 4; it was 400).
    expect((await inject("POST", `/api/v1/jobs/${job!.id}/cancel`)).statusCode).toBe(409);
  });

  it("an unknown MAC without an assignment is refused with what to do", async () => {
    const r = await inject("POST", "/api/v1/jobs", { mac: "52:54:00:bb:00:09" });
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toBe("52:54:00:bb:00:09 is not assigned to a profile and belongs to no host (lifeboat hosts assign 52:54:00:bb:00:09 PROFILE)");
  });

  it("drives a job through the agent routes with its boot token only", async () => {
    const [job] = (await inject("POST", "/api/v1/jobs", { mac: "52:54:00:aa:00:01" })).json() as JobView[];
    const token = await bootToken(server, job!);
    const agent = { authorization: `Bearer ${token}` };
    const base = `/api/v1/agent/jobs/${job!.id}`;
    expect((await inject("POST", `${base}/heartbeat`, undefined, { authorization: `Bearer ${server.ctx.adminToken}` })).statusCode).toBe(401);
    const disks = [{ name: "vda", path: "/dev/vda", sizeBytes: 1 << 30, serial: "S1" }];
    expect((await inject("POST", `${base}/hello`, { disks, hardware: { macs: [] } }, agent)).json()).toEqual({ state: "booted" });
    // A LUKS passphrase the admin supplies goes to this job's agent only, after its plan, and is audited without the secret.
    expect((await inject("PUT", `/api/v1/jobs/${job!.id}/keys/luks-1`, { passphrase: "s3cret pass" })).statusCode).toBe(200);
    const plan = await inject("GET", `${base}/plan`, undefined, agent);
    expect(plan.statusCode).toBe(200);
    expect(plan.headers["content-type"]).toMatch(/text\/x-shellscript/);
    expect(plan.body).toContain("plan_begin");
    expect((await inject("GET", `${base}/keys/luks-1`, undefined, auth())).statusCode).toBe(401);
    const key = await inject("GET", `${base}/keys/luks-1`, undefined, agent);
    expect([key.statusCode, key.body]).toEqual([200, "s3cret pass"]);
    expect((await inject("GET", `${base}/keys/luks-2`, undefined, agent)).statusCode).toBe(404);
    expect(JSON.stringify((await inject("GET", `/api/v1/audit?target=job:${job!.id}`)).json())).not.toContain("s3cret");
    // The job's token streams the dumps its plan restores (404: this test catalog is empty), and no others,
    // not even one whose stream path the script's text happens to hold.
    expect((await inject("GET", "/api/v1/dumps/d-1/stream", undefined, agent)).statusCode).toBe(404);
    expect((await inject("GET", "/api/v1/dumps/d-2/stream", undefined, agent)).statusCode).toBe(401);
    expect((await inject("GET", "/api/v1/dumps/d-3/stream", undefined, agent)).statusCode).toBe(401);
    const badEvent = await inject("POST", `${base}/events`, { type: "step-start", step: 0 }, agent);
    expect(badEvent.statusCode).toBe(400);
    for (const step of [1, 2, 3]) {
      await inject("POST", `${base}/events`, { type: "step-start", step, of: 3, name: "s" }, agent);
      await inject("POST", `${base}/events`, { type: "step-end", step, of: 3, name: "s", exitStatus: 0 }, agent);
    }
    await inject("POST", `${base}/events`, { type: "stream", dumpId: "d1", bytes: 1000, totalBytes: 1000, done: true }, agent);
    expect((await inject("POST", `${base}/events`, { type: "done" }, agent)).json()).toEqual({ state: "done" });
    const final = (await inject("GET", `/api/v1/jobs/${job!.id}`)).json() as JobView;
    expect(final).toMatchObject({ state: "done", step: 3, steps: 3, bytesDone: 1000, bytesTotal: 1000 });
    // Done disarms: the token is only told the job ended (and may repeat its done), streams nothing, and the MAC can be armed again.
    const after = await inject("POST", `${base}/heartbeat`, undefined, agent);
    expect([after.statusCode, after.json()]).toEqual([410, { error: "job-ended", state: "done", message: `job ${job!.id} is done: stop, write nothing more` }]);
    expect((await inject("POST", `${base}/events`, { type: "done" }, agent)).json()).toEqual({ state: "done" });
    expect((await inject("GET", "/api/v1/dumps/d-1/stream", undefined, agent)).statusCode).toBe(401);
    const events = (await inject("GET", `/api/v1/jobs/${job!.id}/events`)).json() as Array<{ type: string }>;
    expect(await server.ctx.store.jobs.keyIds(job!.id)).toEqual([]); // dropped when the job ended
    expect(events.map((e) => e.type)).toEqual(["armed", "boot", "booted", "key", "plan", "key-served", "key-refused", "step-start", "step-end", "step-start", "step-end", "step-start", "step-end", "stream-done", "done"]);
  });

  it("a profile with post-restore hooks is refused in one line (they are never run), nothing stored", async () => {
    await seedHost(server, "hooked", "52:54:00:cc:10:00");
    const r = await inject("PUT", "/api/v1/profiles/hooked", { host: "hooked", options: { postRestoreHooks: ["/usr/local/bin/after.sh"] } });
    expect([r.statusCode, (r.json() as { message: string }).message]).toEqual([400, "options.postRestoreHooks: post-restore hooks are not run by Lifeboat: remove them from the profile"]);
    expect((await inject("GET", "/api/v1/profiles")).json()).not.toContainEqual(expect.objectContaining({ name: "hooked" }));
  });

  it("arms clones for many MACs at once, each with its own identity, all or none", async () => {
    await seedHost(server, "tmpl", "52:54:00:cc:00:00");
    expect((await inject("PUT", "/api/v1/profiles/web-clone", { host: "tmpl", options: { hostnamePattern: "web-{n}" } })).statusCode).toBe(200);
    const macs = ["52:54:00:cc:00:01", "52:54:00:cc:00:02", "52:54:00:cc:00:03", "52:54:00:cc:00:04"];
    const r = await inject("POST", "/api/v1/jobs", { macs, kind: "clone", profile: "web-clone" });
    expect(r.statusCode).toBe(200);
    expect((r.json() as JobView[]).map((j) => [j.mac, j.hostname, j.kind])).toEqual(macs.map((m, i) => [m, `web-${i + 1}`, "clone"]));
    const clash = await inject("POST", "/api/v1/jobs", { macs: ["52:54:00:cc:00:09", macs[0]], kind: "clone", profile: "web-clone" });
    expect(clash.statusCode).toBe(400);
    expect((await inject("GET", "/api/v1/jobs?mac=52:54:00:cc:00:09")).json()).toEqual([]);
  });

  it("the clone window arms unknown machines that network-boot while it is open, and no others", async () => {
    await seedHost(server, "gold", "52:54:00:f0:00:00");
    await inject("PUT", "/api/v1/profiles/gold-clone", { host: "gold", options: { hostnamePattern: "node-{n}" } });
    // A network boot: Lifeboat's DHCP answers the machine, then its iPXE asks for the script.
    const bootScript = async (mac: string) => {
      dhcpAnswered(server, mac);
      return (await inject("GET", `/boot/ipxe?mac=${mac}`, undefined, {})).body;
    };
    // Closed (the default): an unknown machine is sent to its own disk.
    expect((await inject("GET", "/api/v1/clone-window")).json()).toEqual({ open: false });
    expect(await bootScript("52:54:00:f0:00:01")).toMatch(/^exit 1$/m);
    expect((await inject("PUT", "/api/v1/clone-window", { profile: "nope", minutes: 5 })).statusCode).toBe(404);
    expect((await inject("PUT", "/api/v1/clone-window", { profile: "gold-clone", minutes: 5 })).json()).toMatchObject({ profile: "gold-clone", hostnamePattern: "node-{n}", armed: 0 });
    // Open: two unknown machines become clones 1 and 2 and get the rescue system at once.
    for (const [i, mac] of ["52:54:00:f0:00:01", "52:54:00:f0:00:02"].entries()) {
      expect(await bootScript(mac)).toContain("/boot/vmlinuz");
      const [job] = (await inject("GET", `/api/v1/jobs?mac=${mac}`)).json() as JobView[];
      expect(job).toMatchObject({ kind: "clone", profile: "gold-clone", hostname: `node-${i + 1}`, armedBy: "clone-window" });
    }
    // A known host's MAC never becomes a clone; a machine that had a job (a finished clone rebooting) neither.
    expect(await bootScript("52:54:00:f0:00:00")).toMatch(/^exit 1$/m);
    const [first] = (await inject("GET", "/api/v1/jobs?mac=52:54:00:f0:00:01")).json() as JobView[];
    await inject("POST", `/api/v1/jobs/${first!.id}/cancel`);
    expect(await bootScript("52:54:00:f0:00:01")).toMatch(/^exit 1$/m);
    // Closed again: nothing more is armed.
    expect((await inject("DELETE", "/api/v1/clone-window")).json()).toEqual({ open: false });
    expect(await bootScript("52:54:00:f0:00:03")).toMatch(/^exit 1$/m);
    expect((await inject("GET", "/api/v1/jobs?mac=52:54:00:f0:00:03")).json()).toEqual([]);
    const audit = (await inject("GET", "/api/v1/audit")).json() as Array<{ action: string }>;
    expect(audit.map((a) => a.action)).toEqual(expect.arrayContaining(["clone-window.open", "clone-window.close"]));
  });

  it("state survives a server restart; a forgotten armed job expires", async () => {
    await seedHost(server, "db1", "52:54:00:dd:00:01");
    const [job] = (await inject("POST", "/api/v1/jobs", { mac: "52:54:00:dd:00:01", expiresHours: 0.0001 })).json() as JobView[];
    await server.stop(0);
    await new Promise((r) => setTimeout(r, 500)); // past its 0.36 s expiry while the server is down
    server = await testServer({ dataDir, planner });
    const back = (await inject("GET", `/api/v1/jobs/${job!.id}`)).json() as JobView;
    expect(back.state).toBe("expired"); // the ticker runs once at start
    const cloneJobs = (await inject("GET", "/api/v1/jobs?state=armed")).json() as JobView[];
    expect(cloneJobs.filter((j) => j.profile === "web-clone")).toHaveLength(4);
  });

  it("publishes an OpenAPI document covering the admin and agent routes", async () => {
    const doc = (await inject("GET", "/api/v1/openapi.json")).json() as { paths: Record<string, unknown> };
    for (const p of ["/api/v1/jobs", "/api/v1/jobs/{id}/cancel", "/api/v1/profiles/{name}", "/api/v1/agent/jobs/{job}/hello", "/api/v1/agent/jobs/{job}/events", "/api/v1/bundles/", "/api/v1/bundles/{file}"])
      expect(Object.keys(doc.paths)).toContain(p);
  });

  it("documents one error body, shared by every route's refusals", async () => {
    type Doc = { components: { schemas: Record<string, unknown> }; paths: Record<string, Record<string, { responses: Record<string, { content: Record<string, { schema: unknown }> }> }>> };
    const doc = (await inject("GET", "/api/v1/openapi.json")).json() as Doc;
    expect(doc.components.schemas["lifeboat-error"]).toEqual({ type: "object", required: ["error", "message"], properties: { error: { type: "string" }, message: { type: "string" } } });
    const ref = { $ref: "#/components/schemas/lifeboat-error" };
    for (const [path, method, status] of [["/api/v1/jobs/{id}/cancel", "post", "409"], ["/api/v1/catalog/chain", "get", "422"], ["/api/v1/agent/jobs/{job}/plan", "get", "401"], ["/api/v1/hosts/{name}/layout", "put", "400"]] as const)
      expect(doc.paths[path]![method]!.responses[status]!.content["application/json"]!.schema, `${method} ${path} ${status}`).toEqual(ref);
    // Answers whose shape is known say it (a profile, an audit entry), rather than "any object".
    const answer = (path: string) => doc.paths[path]!.get!.responses["200"]!.content["application/json"]!.schema as { items: { required: string[] } };
    expect(answer("/api/v1/profiles").items.required).toEqual(["name", "host", "layoutVersion", "at", "options", "createdAt"]);
    expect(answer("/api/v1/audit").items.required).toEqual(["id", "at", "actor", "action", "target"]);
  });
});
