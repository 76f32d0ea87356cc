import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { routeGroup } from "../../../server/http/response-bytes.ts";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import type { JobView } from "../../../server/jobs/job-views.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { seedHost, standInPlan, testServer } from "../../helpers/server.ts";

// The plan builder is tested on its own; this stand-in names the job it planned (so the
// preview can be checked against the request) and refuses hosts called "nofit".
const planner: Planner = async (job, profile) =>
  profile.host === "nofit"
    ? { ok: false, reason: "disk vda: 2 GiB of partitions do not fit on 1 GiB" }
    : standInPlan(`# ${job.kind} ${job.mac} as ${job.hostname} from ${profile.name} at ${job.at ?? "newest"}, ${job.hello ? "agent" : "captured"} disks\n`, 1, { bytesTotal: 1 });

describe("web page routes, plan preview and metrics", () => {
  let server: RunningServer;
  const inject = (method: string, url: string, payload?: unknown, headers: Record<string, string> = { authorization: `Bearer ${server.ctx.adminToken}` }) =>
    server.app.inject({ method: method as "GET", url, payload: payload as object, headers });
  /** One sample's value from the Prometheus text, 0 when absent. */
  const sample = async (name: string, labels: string) => {
    const text = (await inject("GET", "/metrics", undefined, {})).body;
    const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
    return line ? Number(line.split(" ")[1]) : 0;
  };

  beforeAll(async () => {
    server = await testServer({ planner });
    await seedHost(server, "web1", "52:54:00:ee:00:01");
    await seedHost(server, "nofit", "52:54:00:ee:00:02");
  });
  afterAll(async () => server.stop(0));

  it("serves the page and its assets without a token, under a strict content policy", async () => {
    const page = await inject("GET", "/", undefined, {});
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["content-security-policy"]).toMatch(/default-src 'none'; script-src 'self'/);
    expect(page.body).toContain('<script type="module" src="/web/app.js">');
    const again = await inject("GET", "/", undefined, { "if-none-match": String(page.headers.etag) });
    expect(again.statusCode).toBe(304);
    expect((await inject("GET", "/web/app.js", undefined, {})).headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect((await inject("GET", "/web/style.css", undefined, {})).headers["content-type"]).toBe("text/css; charset=utf-8");
    expect((await inject("GET", "/web/nope.js", undefined, {})).statusCode).toBe(404);
  });

  it("previews the plan a job would get, storing nothing", async () => {
    expect((await inject("POST", "/api/v1/plan-preview", { mac: "52:54:00:ee:00:01" }, {})).statusCode).toBe(401);
    const r = await inject("POST", "/api/v1/plan-preview", { mac: "52-54-00-EE-00-01", at: "20260101" });
    expect(r.statusCode).toBe(200);
    expect(r.headers["content-type"]).toMatch(/^text\/x-shellscript/);
    expect(r.body).toBe("# recover 52:54:00:ee:00:01 as web1 from web1 at 20260101, captured disks\n");
    await inject("PUT", "/api/v1/profiles/clones", { host: "web1", options: { hostnamePattern: "node-{n}" } });
    const clone = await inject("POST", "/api/v1/plan-preview", { macs: ["52:54:00:ee:00:09", "52:54:00:ee:00:0a"], kind: "clone", profile: "clones" });
    expect(clone.body).toBe("# clone 52:54:00:ee:00:09 as node-1 from clones at newest, captured disks\n");
    expect((await inject("GET", "/api/v1/jobs")).json()).toEqual([]);
    expect((await inject("GET", "/api/v1/audit")).json().map((a: { action: string }) => a.action)).toEqual(["profile.put"]);
  });

  it("says why there is no plan, or why no job could be armed", async () => {
    const refused = await inject("POST", "/api/v1/plan-preview", { mac: "52:54:00:ee:00:02" });
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toEqual({ error: "plan-refused", message: "disk vda: 2 GiB of partitions do not fit on 1 GiB" });
    const unknown = await inject("POST", "/api/v1/plan-preview", { mac: "52:54:00:ee:00:77" });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().message).toBe("52:54:00:ee:00:77 is not assigned to a profile and belongs to no host (lifeboat hosts assign 52:54:00:ee:00:77 PROFILE)");
    expect((await inject("POST", "/api/v1/plan-preview", { mac: "52:54:00:ee:00:01", profile: "nope" })).statusCode).toBe(404);
    expect((await inject("POST", "/api/v1/plan-preview", { mac: "52:54:00:ee:00:01", kind: "wipe" })).statusCode).toBe(400);
  });

  it("counts active jobs by state at each scrape", async () => {
    expect(await sample("lifeboat_jobs", 'state="armed"')).toBe(0);
    const [a] = (await inject("POST", "/api/v1/jobs", { mac: "52:54:00:ee:00:01" })).json() as JobView[];
    await inject("POST", "/api/v1/jobs", { mac: "52:54:00:ee:00:02" });
    expect(await sample("lifeboat_jobs", 'state="armed"')).toBe(2);
    await inject("POST", `/api/v1/jobs/${a!.id}/cancel`);
    expect(await sample("lifeboat_jobs", 'state="armed"')).toBe(1);
    // Every active state has a series, so an alert on stalled jobs always has one to watch.
    expect((await inject("GET", "/metrics", undefined, {})).body).toContain('lifeboat_jobs{state="stalled"} 0');
  });

  it("counts response bytes by route group", async () => {
    const web = await sample("lifeboat_http_response_bytes_total", 'group="web"');
    const page = await inject("GET", "/", undefined, {});
    expect(await sample("lifeboat_http_response_bytes_total", 'group="web"')).toBe(web + Number(page.headers["content-length"]));
    // Over a real socket too (inject does not go through one).
    const viaSocket = await fetch(`${server.httpUrl}/web/style.css`);
    const cssBytes = (await viaSocket.arrayBuffer()).byteLength;
    expect(await sample("lifeboat_http_response_bytes_total", 'group="web"')).toBe(web + Number(page.headers["content-length"]) + cssBytes);
    const api = await sample("lifeboat_http_response_bytes_total", 'group="api"');
    const hosts = await inject("GET", "/api/v1/hosts");
    expect(Number(hosts.headers["content-length"])).toBeGreaterThan(0);
    expect(await sample("lifeboat_http_response_bytes_total", 'group="api"')).toBe(api + Number(hosts.headers["content-length"]));
    expect(["/boot.ipxe", "/boot/vmlinuz", "/api/v1/dumps/:id/stream", "/api/v1/agent/jobs/:job/hello", "/api/v1/jobs?x=1", "/", "/metrics"].map(routeGroup)).toEqual([
      "boot",
      "boot",
      "dumps",
      "agent",
      "api",
      "web",
      "other",
    ]);
  });
});
