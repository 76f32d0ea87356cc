/**
 * Only the armed machine, only once (issue 15 item 1), through the real routes and store: a
 * boot token goes to the address Lifeboat's DHCP just answered for the MAC, once per answer; a
 * stranger who knows the MAC gets `exit`; LUKS keys go only to the boot the plan was served to,
 * each once; with dhcp.mode off only a job armed with trustHttpBoot gets a token; the clone
 * window arms only MACs under its limits. The audit log has every issue and refusal with the
 * requester's address. The pure decision has its own tests (test/unit/jobs/boot-policy.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../server/config/load.ts";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import type { JobView } from "../../../server/jobs/job-views.ts";
import { createLogger } from "../../../server/log.ts";
import { type RunningServer, startServer } from "../../../server/serve.ts";
import { dhcpAnswered, seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";

const planner: Planner = async () => standInPlan("plan_begin 1 web1 2\ncreate_luks /dev/vda2 u1 c1 luks-1\nplan_done\n", 3);
const STRANGER = "10.0.0.66";

/** Requests to one server, with the admin token unless told otherwise, from 127.0.0.1 unless `from`. */
function client(server: () => RunningServer) {
  const inject = (method: string, url: string, o: { payload?: unknown; token?: string; from?: string } = {}) =>
    server().app.inject({
      method: method as "GET",
      url,
      payload: o.payload as object,
      headers: o.token === "" ? {} : { authorization: `Bearer ${o.token ?? server().ctx.adminToken}` },
      remoteAddress: o.from,
    });
  const bootScript = async (mac: string, from?: string) => (await inject("GET", `/boot/ipxe?mac=${mac}`, { token: "", from })).body;
  const tokenOf = (script: string) => /lifeboat\.token=(\S+)/.exec(script)?.[1];
  const audit = async (target: string) => (await inject("GET", `/api/v1/audit?target=${target}`)).json() as Array<{ action: string; actor: string; detail: Record<string, unknown> }>;
  return { inject, bootScript, tokenOf, audit };
}

describe("boot tokens and LUKS keys, with Lifeboat's DHCP (proxy mode)", () => {
  let server: RunningServer;
  const { inject, bootScript, tokenOf, audit } = client(() => server);

  beforeAll(async () => {
    server = await testServer({ planner });
  });
  afterAll(async () => server.stop(0));

  it("a second requester for the same MAC gets no token, before or after the machine's own; the audit shows all", async () => {
    await seedHost(server, "web1", "52:54:00:1b:00:01");
    const [job] = (await inject("POST", "/api/v1/jobs", { payload: { mac: "52:54:00:1b:00:01" } })).json() as JobView[];
    // Nobody gets a token before Lifeboat's DHCP answered the machine.
    expect(tokenOf(await bootScript("52:54:00:1b:00:01"))).toBeUndefined();
    dhcpAnswered(server, "52:54:00:1b:00:01", "127.0.0.1");
    const stranger = await bootScript("52:54:00:1b:00:01", STRANGER);
    expect(stranger).toMatch(/^exit 1$/m);
    expect(tokenOf(stranger)).toBeUndefined();
    const token = tokenOf(await bootScript("52:54:00:1b:00:01"));
    expect(token).toMatch(/^\S{20,}$/);
    // The answer is spent: neither the stranger nor the machine itself gets a second token of this boot.
    expect(tokenOf(await bootScript("52:54:00:1b:00:01", STRANGER))).toBeUndefined();
    expect(tokenOf(await bootScript("52:54:00:1b:00:01"))).toBeUndefined();
    // The token that was issued is the one the agent API takes.
    expect((await inject("POST", `/api/v1/agent/jobs/${job!.id}/heartbeat`, { token })).statusCode).toBe(200);
    const entries = (await audit(`job:${job!.id}`)).filter((a) => a.action.startsWith("job.boot")).reverse();
    expect(entries.map((a) => [a.action, a.detail.requester])).toEqual([
      ["job.boot-refused", "127.0.0.1"],
      ["job.boot-refused", STRANGER],
      ["job.boot-token", "127.0.0.1"],
      ["job.boot-refused", STRANGER],
      ["job.boot-refused", "127.0.0.1"],
    ]);
    expect(entries[1]!.detail.reason).toBe(`no token for job ${job!.id}: Lifeboat's DHCP answered 52:54:00:1b:00:01 at 127.0.0.1, not ${STRANGER}`);
    const events = (await inject("GET", `/api/v1/jobs/${job!.id}/events`)).json() as Array<{ type: string; data: { requester?: string } }>;
    expect(events.filter((e) => e.type.startsWith("boot")).map((e) => [e.type, e.data.requester])).toEqual([
      ["boot-refused", "127.0.0.1"],
      ["boot-refused", STRANGER],
      ["boot", "127.0.0.1"],
      ["boot-refused", STRANGER],
      ["boot-refused", "127.0.0.1"],
    ]);
  });

  it("a LUKS key: refused before the plan, served once after it, refused to a new boot until its own plan; audited", async () => {
    await seedHost(server, "db1", "52:54:00:1b:00:02");
    const [job] = (await inject("POST", "/api/v1/jobs", { payload: { mac: "52:54:00:1b:00:02" } })).json() as JobView[];
    const base = `/api/v1/agent/jobs/${job!.id}`;
    expect((await inject("PUT", `/api/v1/jobs/${job!.id}/keys/luks-1`, { payload: { passphrase: "s3cret" } })).statusCode).toBe(200);
    dhcpAnswered(server, "52:54:00:1b:00:02");
    const token = tokenOf(await bootScript("52:54:00:1b:00:02"))!;
    const hello = () => inject("POST", `${base}/hello`, { token, payload: { disks: [], hardware: { macs: [] } } });
    expect((await hello()).statusCode).toBe(200);
    const beforePlan = await inject("GET", `${base}/keys/luks-1`, { token });
    expect([beforePlan.statusCode, beforePlan.json().message]).toEqual([409, `job ${job!.id}: the plan has not been served to this boot: keys come after the plan`]);
    expect((await inject("GET", `${base}/plan`, { token })).statusCode).toBe(200);
    const key = await inject("GET", `${base}/keys/luks-1`, { token });
    expect([key.statusCode, key.body]).toEqual([200, "s3cret"]);
    const twice = await inject("GET", `${base}/keys/luks-1`, { token });
    expect([twice.statusCode, twice.json().message]).toEqual([409, `job ${job!.id}: the key for LUKS luks-1 was served already (each key once); supply it again with lifeboat jobs key`]);
    expect(await server.ctx.store.jobs.keyIds(job!.id)).toEqual([]);
    // The machine reboots mid-plan; the admin supplies the key again: the new boot gets it only after its own plan.
    expect((await inject("PUT", `/api/v1/jobs/${job!.id}/keys/luks-1`, { payload: { passphrase: "s3cret" } })).statusCode).toBe(200);
    dhcpAnswered(server, "52:54:00:1b:00:02");
    const second = tokenOf(await bootScript("52:54:00:1b:00:02"))!;
    expect((await inject("POST", `${base}/hello`, { token: second, payload: { disks: [], hardware: { macs: [] } } })).statusCode).toBe(200);
    expect((await inject("GET", `${base}/keys/luks-1`, { token: second })).statusCode).toBe(409);
    expect((await inject("GET", `${base}/plan`, { token: second })).statusCode).toBe(200);
    expect((await inject("GET", `${base}/keys/luks-1`, { token: second })).statusCode).toBe(200);
    const keyAudit = (await audit(`job:${job!.id}`)).filter((a) => a.action.startsWith("job.key-")).reverse();
    expect(keyAudit.map((a) => [a.action, a.actor])).toEqual([
      ["job.key-refused", "agent:127.0.0.1"],
      ["job.key-served", "agent:127.0.0.1"],
      ["job.key-refused", "agent:127.0.0.1"],
      ["job.key-refused", "agent:127.0.0.1"],
      ["job.key-served", "agent:127.0.0.1"],
    ]);
    expect(JSON.stringify(keyAudit)).not.toContain("s3cret");
  });

  it("the clone window limited to MAC prefixes arms only machines under them, and shows its limits", async () => {
    await seedHost(server, "gold", "52:54:00:1b:f0:00");
    await inject("PUT", "/api/v1/profiles/gold-clone", { payload: { host: "gold" } });
    const bad = await inject("PUT", "/api/v1/clone-window", { payload: { profile: "gold-clone", minutes: 5, only: ["52:54:0"] } });
    expect(bad.statusCode).toBe(400);
    const open = await inject("PUT", "/api/v1/clone-window", { payload: { profile: "gold-clone", minutes: 5, only: ["52-54-00-1C", "52:54:00:1d:00:07"] } });
    expect(open.json()).toMatchObject({ profile: "gold-clone", only: ["52:54:00:1c", "52:54:00:1d:00:07"] });
    expect((await inject("GET", "/api/v1/clone-window")).json()).toMatchObject({ open: true, only: ["52:54:00:1c", "52:54:00:1d:00:07"] });
    for (const mac of ["52:54:00:1c:00:01", "52:54:00:1d:00:07", "52:54:00:1d:00:08", "52:54:00:1e:00:01"]) {
      dhcpAnswered(server, mac);
      await bootScript(mac);
    }
    const armed = ((await inject("GET", "/api/v1/jobs")).json() as JobView[]).filter((j) => j.kind === "clone").map((j) => j.mac);
    expect(armed.sort()).toEqual(["52:54:00:1c:00:01", "52:54:00:1d:00:07"]);
    // Under the limits but not answered by Lifeboat's DHCP: no clone, and the refusal is audited.
    expect(await bootScript("52:54:00:1c:00:02", STRANGER)).toMatch(/^exit 1$/m);
    expect((await inject("GET", "/api/v1/jobs?mac=52:54:00:1c:00:02")).json()).toEqual([]);
    expect(await audit("mac:52:54:00:1c:00:02")).toMatchObject([{ action: "clone-window.boot-refused", actor: `boot:${STRANGER}` }]);
    await inject("DELETE", "/api/v1/clone-window");
  });
});

describe("boot tokens with dhcp.mode off", () => {
  let server: RunningServer;
  const { inject, bootScript, tokenOf, audit } = client(() => server);

  beforeAll(async () => {
    const config = loadConfig({ overrides: { dataDir: tempDir(), listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
    server = await startServer(config, createLogger("silent", { pretty: false }), { planner });
    await seedHost(server, "web2", "52:54:00:2b:00:01");
    await seedHost(server, "web3", "52:54:00:2b:00:02");
  });
  afterAll(async () => server.stop(0));

  it("only a job armed with trustHttpBoot gets a token, whoever asks; the audit names each requester", async () => {
    const [plain] = (await inject("POST", "/api/v1/jobs", { payload: { mac: "52:54:00:2b:00:01" } })).json() as JobView[];
    expect(tokenOf(await bootScript("52:54:00:2b:00:01"))).toBeUndefined();
    expect((await audit(`job:${plain!.id}`))[0]).toMatchObject({ action: "job.boot-refused", detail: { reason: expect.stringContaining("not armed with --trust-http-boot") } });
    const [trusted] = (await inject("POST", "/api/v1/jobs", { payload: { mac: "52:54:00:2b:00:02", trustHttpBoot: true } })).json() as JobView[];
    expect([plain!.trustHttpBoot, trusted!.trustHttpBoot]).toEqual([false, true]);
    expect(tokenOf(await bootScript("52:54:00:2b:00:02", STRANGER))).toBeDefined();
    expect(tokenOf(await bootScript("52:54:00:2b:00:02"))).toBeDefined();
    const issued = (await audit(`job:${trusted!.id}`)).filter((a) => a.action === "job.boot-token").reverse();
    expect(issued.map((a) => [a.detail.requester, a.detail.basis])).toEqual([
      [STRANGER, "trusted-http-boot"],
      ["127.0.0.1", "trusted-http-boot"],
    ]);
    expect((await audit(`job:${trusted!.id}`)).find((a) => a.action === "job.arm")!.detail).toMatchObject({ trustHttpBoot: true });
  });
});
