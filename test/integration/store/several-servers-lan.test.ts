/**
 * Several servers on one store over real LANs (issue 25): two `lifeboat serve` processes, A and B,
 * each in its own namespace LAN (A: 10.231.125.0/24, B: 10.231.126.0/24) as the only DHCP server
 * there (full mode), on one throwaway PostgreSQL (its Unix socket is reachable from any network
 * namespace). The machines are namespaces running busybox udhcpc with a PXE vendor class (a real
 * DHCP client) and fetching their boot script from the server that answered, as iPXE would.
 * - A host armed through A boots on B's LAN: B's DHCP answers, B's boot script carries the token,
 *   the job is B's (A's API, CLI and live stream say so).
 * - A machine on both LANs asks both servers for its boot at once: one serves it.
 * - B killed mid-job: the job becomes stalled (A's API); B restarted sees it stalled too; the
 *   machine's next heartbeat to B (what its agent does while it waits) resumes it.
 * Stand-in: the rescue agent's calls are curl from the machine's namespace (no restore runs here:
 * the agent's restore is rescue/agent.test.ts, a booted one test/e2e).
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import type { JobView } from "../../../server/jobs/job-views.ts";
import { PgStore } from "../../../server/store/postgres.ts";
import { lifeboatBin } from "../../helpers/cli.ts";
import { createLan, netnsUnavailable } from "../../helpers/netns.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { type TestPostgres, postgresUnavailable, startPostgres } from "../../helpers/postgres.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { lanServers } from "./servers-lan.ts";

const NET = { a: "10.231.125", b: "10.231.126" } as const;
const MAC = { m: "52:54:00:25:02:01", both: "52:54:00:25:02:02" } as const;
const why = postgresUnavailable() ?? (await netnsUnavailable()) ?? (existsSync("/bin/busybox") ? null : "busybox (udhcpc)");

describeNeeding(why ?? null, "several servers on one PostgreSQL store, each on its own namespace LAN", () => {
  const work = tempDir("lifeboat-lan25-");
  let pg: TestPostgres;
  let storeUrl = "";
  const key = `${randomBytes(32).toString("hex")}\n`;
  const { lans, srv, url, dataDir, token, start, curl, api, dhcp, bootScript, stop } = lanServers({ work, net: NET, key, storeUrl: () => storeUrl });
  let liveFile = "";

  beforeAll(async () => {
    pg = await startPostgres();
    storeUrl = await pg.createDatabase();
    lans.a = await createLan({ prefix: "lbt25a", subnet: NET.a, members: { srv: 1, adm: 2 } });
    lans.b = await createLan({ prefix: "lbt25b", subnet: NET.b, members: { srv: 1, adm: 2, m: 0, both: 0 } });
    await lans.b.exec("m", ["ip", "link", "set", "eth0", "address", MAC.m]);
    await lans.b.exec("both", ["ip", "link", "set", "eth0", "address", MAC.both]);
    // "both" is on A's LAN too (eth1, the same MAC: one machine, two ports cabled to two LANs).
    const ns = lans.b.ns("both");
    for (const cmd of [
      ["ip", "link", "add", "v-both", "type", "veth", "peer", "name", "eth1", "netns", ns],
      ["ip", "link", "set", "v-both", "master", lans.a.bridge, "up"],
    ])
      expect((await lans.a.exec("lan", cmd)).exitCode).toBe(0);
    for (const cmd of [
      ["ip", "link", "set", "eth1", "address", MAC.both],
      ["ip", "link", "set", "eth1", "up"],
    ])
      expect((await lans.b.exec("both", cmd)).exitCode).toBe(0);
    await start("a");
    await start("b");
    // The hosts and their captured layouts, as captures would have stored them (through any server: one store).
    const keyFile = join(work, "store-key");
    writeFileSync(keyFile, key, { mode: 0o600 });
    const seed = new PgStore(storeUrl, { keyFile });
    for (const [name, mac] of [["web1", MAC.m], ["web2", MAC.both]] as const) {
      await seed.hosts.add({ name, tokenHash: "x", smbiosUuid: null, macs: [mac], amandaConfig: null, dleMap: {} });
      await seed.layouts.add(name, { disks: [] });
    }
    await seed.close();
    // A's page's live stream, from A's LAN.
    liveFile = join(work, "a-live.txt");
    lans.a.spawn("adm", ["curl", "-sN", "-H", `authorization: Bearer ${token("a")}`, `${url("a")}/api/v1/live`], { stdout: liveFile });
  }, 120_000);

  afterAll(async () => {
    await stop();
    await pg?.stop();
  });

  const liveSeen = () =>
    (existsSync(liveFile) ? readFileSync(liveFile, "utf8") : "")
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)) as { job: JobView; event: { type: string; data: Record<string, unknown> } | null });

  let bToken = "";
  let jobId = "";

  it("armed through A, the machine boots on B's LAN: B's DHCP answers, B's boot script has the token, the job is B's on A's API, CLI and live stream", async () => {
    const servers = await api<Array<{ name: string; url: string; alive: boolean }>>("a", "GET", "/servers");
    expect(servers.map((s) => [s.name, s.url, s.alive])).toEqual([["a", url("a"), true], ["b", url("b"), true]]);
    const [job] = await api<JobView[]>("a", "POST", "/jobs", { mac: MAC.m });
    jobId = job!.id;
    const bound = await dhcp(lans.b!, "m", "eth0");
    expect(bound).toMatch(new RegExp(`^bound ${NET.b.replaceAll(".", "\\.")}\\.1\\d\\d ${NET.b.replaceAll(".", "\\.")}\\.1$`));
    const { script, token } = await bootScript(lans.b!, "m", url("b"), MAC.m);
    expect(token, script).not.toBeNull();
    bToken = token!;
    expect(script).toContain(`lifeboat.server=${url("b")}`);
    expect(await api<JobView>("a", "GET", `/jobs/${jobId}`)).toMatchObject({ server: "b", state: "armed" });
    // The agent's hello to B (from the machine's leased address); A's live stream hears of the boot and the hello.
    const hello = await curl(lans.b!, "m", [
      "-X", "POST", "-H", `authorization: Bearer ${bToken}`, "-H", "content-type: application/json",
      "--data", JSON.stringify({ disks: [{ name: "vda", path: "/dev/vda", sizeBytes: 1 << 30, serial: "S1" }], hardware: { macs: [MAC.m] } }),
      `${url("b")}/api/v1/agent/jobs/${jobId}/hello`,
    ]);
    expect(JSON.parse(hello)).toEqual({ state: "booted" });
    await vi.waitFor(
      () => {
        const mine = liveSeen().filter((x) => x.job.id === jobId);
        expect(mine.some((x) => x.event?.type === "boot" && x.event.data.server === "b")).toBe(true);
        expect(mine.some((x) => x.job.state === "booted" && x.job.server === "b")).toBe(true);
      },
      { timeout: 5000, interval: 100 },
    );
    // A's CLI, run on A's LAN, lists it as B's.
    const cli = await lans.a!.exec("adm", [process.execPath, lifeboatBin, "jobs", "list", "--server", url("a"), "--data-dir", dataDir("a")]);
    expect(cli.exitCode, cli.stderr).toBe(0);
    // Its SERVER column; not its state, which a loaded machine may see stalled by now (the stand-in agent beat once).
    expect(cli.stdout).toMatch(new RegExp(`^${jobId}\\s+${MAC.m}\\s.*\\sb$`, "m"));
    // The machine's lease is B's (the server that gave it), in the one store.
    const store = new PgStore(storeUrl, { keyFile: join(work, "store-key") });
    try {
      expect((await store.leases.list()).filter((l) => l.mac === MAC.m).map((l) => [l.ip, l.server, l.state])).toEqual([[bound.split(" ")[1], "b", "bound"]]);
    } finally {
      await store.close();
    }
  });

  it("a machine on both LANs asks both servers for its boot at once: one serves it, the other sends it on", async () => {
    const [job] = await api<JobView[]>("a", "POST", "/jobs", { mac: MAC.both });
    // Each LAN's server answers its DHCP (each port gets its own LAN's address).
    expect(await dhcp(lans.b!, "both", "eth0")).toMatch(/ 10\.231\.126\.1$/);
    expect(await dhcp(lans.b!, "both", "eth1")).toMatch(/ 10\.231\.125\.1$/);
    const [fromA, fromB] = await Promise.all([bootScript(lans.b!, "both", url("a"), MAC.both), bootScript(lans.b!, "both", url("b"), MAC.both)]);
    expect([fromA.token, fromB.token].filter((t) => t !== null)).toHaveLength(1);
    const winner = fromA.token ? "a" : "b";
    expect((await api<JobView>("b", "GET", `/jobs/${job!.id}`)).server).toBe(winner);
    const events = await api<Array<{ type: string; data: { reason?: string } }>>("a", "GET", `/jobs/${job!.id}/events`);
    expect(events.filter((e) => e.type === "boot")).toHaveLength(1);
    expect(events.filter((e) => e.type === "boot-refused").map((e) => e.data.reason)).toEqual([`job ${job!.id} is served by server ${winner}, which is alive: no second server serves it`]);
    await api("a", "POST", `/jobs/${job!.id}/cancel`);
  });

  it("B killed mid-job: stalled on A; B restarted sees it stalled; the machine's next heartbeat to B resumes it there", async () => {
    const beat = () => curl(lans.b!, "m", ["-X", "POST", "-H", `authorization: Bearer ${bToken}`, `${url("b")}/api/v1/agent/jobs/${jobId}/heartbeat`]);
    expect(JSON.parse(await beat())).toEqual({ state: "booted" });
    srv.b!.proc.kill("SIGKILL");
    await srv.b!.proc;
    await vi.waitFor(async () => expect((await api<JobView>("a", "GET", `/jobs/${jobId}`)).state).toBe("stalled"), { timeout: 20_000, interval: 250 });
    expect(liveSeen().some((x) => x.job.id === jobId && x.job.state === "stalled")).toBe(true);
    await start("b");
    expect(await api<JobView>("b", "GET", `/jobs/${jobId}`)).toMatchObject({ state: "stalled", server: "b" });
    // The agent keeps beating while it waits: heard again, the job goes on, still B's, live on A.
    expect(JSON.parse(await beat())).toEqual({ state: "booted" });
    expect(await api<JobView>("a", "GET", `/jobs/${jobId}`)).toMatchObject({ state: "booted", server: "b" });
    await vi.waitFor(() => expect(liveSeen().filter((x) => x.job.id === jobId).at(-1)?.job.state).toBe("booted"), { timeout: 5000, interval: 100 });
  });
});
