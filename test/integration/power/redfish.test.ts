/**
 * Redfish against a stand-in: the shape of the DMTF Redfish mockups (public-rackmount1's
 * ComputerSystem 437XR1138R2: PowerState, Boot with its AllowableValues, the
 * #ComputerSystem.Reset action) served by this test, which records every PATCH and POST body.
 * A stand-in because no Redfish simulator can be had here: Debian has only clients
 * (python3-sushy, sushy-cli) and npm offers none (the package list has no "redfish" at all).
 */
import { readFileSync } from "node:fs";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { join } from "node:path";
import { execa } from "execa";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";

const SYSTEM = "/redfish/v1/Systems/437XR1138R2";
const RESET = `${SYSTEM}/Actions/ComputerSystem.Reset`;
const AUTH = `Basic ${Buffer.from("root:calvin-Pa55").toString("base64")}`;
const planner: Planner = async (job) => standInPlan(`plan_begin 1 ${job.profile} 1\nplan_done\n`, 1);

interface Seen {
  method: string;
  url: string;
  body: unknown;
}

/** The mockup's resources, trimmed to what a power driver reads, with a power state that follows Reset. */
function mockup() {
  const state = { power: "Off" as "On" | "Off", boot: { BootSourceOverrideEnabled: "Disabled", BootSourceOverrideTarget: "None", BootSourceOverrideMode: "UEFI" } as Record<string, string> };
  const seen: Seen[] = [];
  const system = () => ({
    "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
    "@odata.id": SYSTEM,
    Id: "437XR1138R2",
    Name: "WebFrontEnd483",
    SystemType: "Physical",
    PowerState: state.power,
    Boot: {
      ...state.boot,
      "BootSourceOverrideTarget@Redfish.AllowableValues": ["None", "Pxe", "Cd", "Usb", "Hdd", "BiosSetup", "Utilities", "Diags", "UefiShell", "UefiTarget", "SDCard", "UefiHttp"],
    },
    Actions: {
      "#ComputerSystem.Reset": {
        target: RESET,
        "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn", "PushPowerButton"],
      },
    },
  });
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    let text = "";
    for await (const chunk of req) text += String(chunk);
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    seen.push({ method: req.method!, url: req.url!, body });
    const send = (status: number, data?: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(data === undefined ? "" : JSON.stringify(data));
    };
    if (req.headers.authorization !== AUTH) return send(401, { error: { code: "Base.1.8.GeneralError", message: "unauthorized", "@Message.ExtendedInfo": [{ Message: "The credentials are wrong." }] } });
    if (req.method === "GET" && req.url === "/redfish/v1/Systems") return send(200, { "@odata.id": "/redfish/v1/Systems", Members: [{ "@odata.id": SYSTEM }], "Members@odata.count": 1 });
    if (req.method === "GET" && req.url === SYSTEM) return send(200, system());
    if (req.method === "PATCH" && req.url === SYSTEM) {
      Object.assign(state.boot, (body as { Boot: Record<string, string> }).Boot);
      return send(204);
    }
    if (req.method === "POST" && req.url === RESET) {
      const type = (body as { ResetType: string }).ResetType;
      if (type === "On" || type === "ForceOn") state.power = "On";
      else if (type === "ForceOff") state.power = "Off";
      else if (type !== "ForceRestart") return send(400, { error: { message: `ResetType ${type} not supported`, "@Message.ExtendedInfo": [{ Message: `The value ${type} for ResetType is not allowed.` }] } });
      return send(204);
    }
    return send(404, { error: { message: "not found" } });
  };
  return { state, seen, handler };
}

describe("Redfish against a stand-in DMTF mockup served by the test (no Redfish simulator in Debian or npm)", () => {
  let server: RunningServer;
  let bmc: Server;
  let m: ReturnType<typeof mockup>;
  let url: string;
  const inject = async (method: "GET" | "POST" | "PUT", path: string, body?: unknown) =>
    server.app.inject({ method, url: path, headers: { authorization: `Bearer ${server.ctx.adminToken}` }, ...(body === undefined ? {} : { payload: body as object }) });

  beforeAll(async () => {
    m = mockup();
    bmc = createServer((req, res) => void m.handler(req, res));
    await new Promise<void>((r) => bmc.listen(0, "127.0.0.1", () => r()));
    url = `http://127.0.0.1:${(bmc.address() as AddressInfo).port}`;
    server = await testServer({ planner });
    await seedHost(server, "db1", "52:54:00:d0:00:01", { disks: [], boot: { firmware: "uefi" } });
    const set = await inject("PUT", "/api/v1/hosts/db1/power-config", { kind: "redfish", url, user: "root", password: "calvin-Pa55", netBoot: "uefi-http" });
    expect(set.statusCode, set.body).toBe(200);
    expect(set.json()).toEqual({ host: "db1", kind: "redfish", url, user: "root", netBoot: "uefi-http", target: `Redfish service ${url}`, hasPassword: true });
  });
  afterAll(async () => {
    await server?.stop(0);
    await new Promise((r) => bmc?.close(r));
  });

  it("status, on and off: GET the system, POST Reset On / ForceOff", async () => {
    expect((await inject("POST", "/api/v1/hosts/db1/power", { action: "status" })).json()).toMatchObject({ state: "off", via: "redfish" });
    m.seen.length = 0;
    expect((await inject("POST", "/api/v1/hosts/db1/power", { action: "on" })).json()).toMatchObject({ state: "on" });
    expect((await inject("POST", "/api/v1/hosts/db1/power", { action: "off" })).json()).toMatchObject({ state: "off" });
    expect(m.seen.filter((s) => s.method === "POST").map((s) => [s.url, s.body])).toEqual([
      [RESET, { ResetType: "On" }],
      [RESET, { ResetType: "ForceOff" }],
    ]);
  });

  it("cycle uses ForceRestart where PowerCycle is not among the allowed reset types", async () => {
    m.seen.length = 0;
    m.state.power = "On";
    expect((await inject("POST", "/api/v1/hosts/db1/power", { action: "cycle" })).statusCode).toBe(200);
    expect(m.seen.filter((s) => s.method === "POST").map((s) => s.body)).toEqual([{ ResetType: "ForceRestart" }]);
  });

  it("arm with power: PATCH a one-time UefiHttp override (Once, UEFI) before POST Reset On", async () => {
    m.state.power = "Off";
    m.seen.length = 0;
    const r = await inject("POST", "/api/v1/jobs", { mac: "52:54:00:d0:00:01", power: {} });
    expect(r.statusCode, r.body).toBe(200);
    const [job] = r.json() as Array<{ id: string; state: string; power: Record<string, unknown> }>;
    expect(job!.state).toBe("armed");
    expect(job!.power).toMatchObject({ before: "off", steps: ["set-boot", "on"], netBoot: "uefi-http", firmware: "uefi" });
    const writes = m.seen.filter((s) => s.method !== "GET").map((s) => [s.method, s.url, s.body]);
    expect(writes).toEqual([
      ["PATCH", SYSTEM, { Boot: { BootSourceOverrideTarget: "UefiHttp", BootSourceOverrideEnabled: "Once", BootSourceOverrideMode: "UEFI" } }],
      ["POST", RESET, { ResetType: "On" }],
    ]);
    expect(m.state).toMatchObject({ power: "On", boot: { BootSourceOverrideEnabled: "Once", BootSourceOverrideTarget: "UefiHttp" } });
    // Once the job ends (cancelled here), the override is not left behind: PATCH Disabled, in its history.
    m.seen.length = 0;
    await inject("POST", `/api/v1/jobs/${job!.id}/cancel`);
    const steps = async () => (await server.ctx.jobs.events(job!.id)).filter((e) => e.type === "power").map((e) => (e.data as { step: string }).step);
    const until = Date.now() + 10_000;
    while (!(await steps()).includes("clear-boot") && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(await steps()).toEqual(["status", "set-boot", "on", "clear-boot"]);
    expect(m.seen.filter((s) => s.method !== "GET").map((s) => [s.method, s.url, s.body])).toEqual([["PATCH", SYSTEM, { Boot: { BootSourceOverrideEnabled: "Disabled" } }]]);
    expect(m.state.boot.BootSourceOverrideEnabled).toBe("Disabled");
  });

  it("publishes the power routes, a BMC's failure (502) with the shared error body", async () => {
    type Doc = { paths: Record<string, Record<string, { responses: Record<string, { content: Record<string, { schema: unknown }> }> }>> };
    const doc = (await inject("GET", "/api/v1/openapi.json")).json() as Doc;
    const ref = { $ref: "#/components/schemas/lifeboat-error" };
    expect(doc.paths["/api/v1/hosts/{name}/power-config"]!.put).toBeDefined();
    expect(doc.paths["/api/v1/hosts/{name}/power"]!.post!.responses["502"]!.content["application/json"]!.schema).toEqual(ref);
    expect(doc.paths["/api/v1/jobs"]!.post!.responses["502"]!.content["application/json"]!.schema).toEqual(ref);
  });

  it("wrong credentials: one line naming the service", async () => {
    await inject("PUT", "/api/v1/hosts/db1/power-config", { kind: "redfish", url, user: "root", password: "wrong" });
    const r = await inject("POST", "/api/v1/hosts/db1/power", { action: "status" });
    expect([r.statusCode, r.json()]).toEqual([502, { error: "power", message: `Redfish service ${url} refused user root or its password (401)` }]);
    expect(JSON.stringify(await server.ctx.store.audit.list())).not.toMatch(/calvin-Pa55|"wrong"/);
  });

  describe("over https with the self-signed certificate a BMC comes with", () => {
    let tls: Server;
    let tlsUrl: string;
    let fingerprint: string;
    beforeAll(async () => {
      const dir = tempDir("lifeboat-redfish-tls-");
      const [key, cert] = [join(dir, "key.pem"), join(dir, "cert.pem")];
      await execa("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=bmc.example", "-days", "2", "-keyout", key, "-out", cert]);
      // As the admin reads it off the BMC: openssl's own fingerprint, not Node's.
      fingerprint = /Fingerprint=([0-9A-F:]+)/.exec((await execa("openssl", ["x509", "-noout", "-fingerprint", "-sha256", "-in", cert])).stdout)![1]!;
      tls = createTlsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => void m.handler(req, res));
      await new Promise<void>((r) => tls.listen(0, "127.0.0.1", () => r()));
      tlsUrl = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
    });
    afterAll(async () => new Promise((r) => tls?.close(r)));
    const config = (extra: Record<string, unknown>) => inject("PUT", "/api/v1/hosts/db1/power-config", { kind: "redfish", url: tlsUrl, user: "root", password: "calvin-Pa55", ...extra });

    it("not trusted without a pin: one line saying how to pin it, and nothing sent", async () => {
      expect((await config({})).statusCode).toBe(200);
      m.seen.length = 0;
      const r = await inject("POST", "/api/v1/hosts/db1/power", { action: "status" });
      expect([r.statusCode, r.json()]).toEqual([
        502,
        { error: "power", message: `Redfish service ${tlsUrl}: its certificate is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT); pin it with --tls-fingerprint (its SHA-256, as openssl x509 -noout -fingerprint -sha256 prints it)` },
      ]);
      expect(m.seen).toEqual([]);
    });

    it("pinned by its fingerprint (bare hex is taken too): status and on over TLS", async () => {
      const set = await config({ tlsFingerprint: fingerprint.replace(/:/g, "").toLowerCase() });
      expect(set.statusCode, set.body).toBe(200);
      expect(set.json()).toMatchObject({ tlsFingerprint: fingerprint });
      m.state.power = "Off";
      m.seen.length = 0;
      expect((await inject("POST", "/api/v1/hosts/db1/power", { action: "on" })).json()).toMatchObject({ state: "on", via: "redfish" });
      expect(m.seen.filter((s) => s.method === "POST").map((s) => s.body)).toEqual([{ ResetType: "On" }]);
    });

    it("another certificate than the pinned one: refused before the credentials go out", async () => {
      const other = fingerprint.replace(/^../, fingerprint.startsWith("00") ? "11" : "00");
      expect((await config({ tlsFingerprint: other })).statusCode).toBe(200);
      m.seen.length = 0;
      const r = await inject("POST", "/api/v1/hosts/db1/power", { action: "status" });
      expect([r.statusCode, r.json()]).toEqual([502, { error: "power", message: `Redfish service ${tlsUrl} presented the certificate ${fingerprint}, not the pinned ${other}: refused, nothing sent` }]);
      expect(m.seen).toEqual([]);
    });

    it("a pin needs an https URL and a SHA-256: a 400 naming the field", async () => {
      const http = await inject("PUT", "/api/v1/hosts/db1/power-config", { kind: "redfish", url, user: "root", password: "x", tlsFingerprint: fingerprint });
      expect(http.statusCode).toBe(400);
      expect(http.body).toContain("the url must be https://");
      const short = await config({ tlsFingerprint: "AB:CD" });
      expect(short.statusCode).toBe(400);
      expect(short.body).toContain("expected a SHA-256 fingerprint");
    });
  });
});
