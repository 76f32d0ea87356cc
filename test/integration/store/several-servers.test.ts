/**
 * Several servers on one store (issue 25 items 2 and 3): two real `lifeboat serve` processes, A and
 * B, on one throwaway PostgreSQL, over loopback HTTP (dhcp off: their LANs are stood in for by
 * which server's /boot/ipxe the machine asks; the jobs are armed with trustHttpBoot so a boot
 * script request alone gets a token). A host armed through A boots on B and is served by B, its
 * progress shows live on A (API, CLI, page); the plan each server builds for a host whose dumps
 * only A's Amanda config holds streams them from A's URL (B's plan) or A's own path (A's plan);
 * two servers asked for one boot at once: one serves it; B killed
 * mid-job: the job becomes stalled, and the machine booting again on A's LAN is served by A.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ResultPromise, execa } from "execa";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import type { JobView } from "../../../server/jobs/job-views.ts";
import { PgStore } from "../../../server/store/postgres.ts";
import { lifeboat, lifeboatBin } from "../../helpers/cli.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { type TestPostgres, postgresUnavailable, startPostgres } from "../../helpers/postgres.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { dump } from "../../unit/jobs/job-fixture.ts";
import { fixtureLayout } from "../../unit/recovery/fixtures.ts";

interface Serve {
  name: string;
  config: string;
  dataDir: string;
  url: string;
  token: string;
  proc: ResultPromise;
}

const procs: ResultPromise[] = [];
const chain3 = [dump({ host: "web3", disk: "/", level: 0, datestamp: "20261201000000" }), dump({ host: "web3", disk: "/", level: 1, datestamp: "20261202000000" })];

/** `lifeboat serve` as its own process on loopback, with its own data dir holding the shared store key. */
async function serve(name: string, storeUrl: string, key: string, amanda?: string): Promise<Serve> {
  const dataDir = tempDir(`lifeboat-${name}-`);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dataDir, "store-key"), key, { mode: 0o600 });
  const config = join(dataDir, "lifeboat.yaml");
  // With `amanda`: this server streams that Amanda config's dumps (a config dir only; no refresh runs: the test stores the catalog).
  const amandaYaml = amanda ? `amanda:\n  - name: ${amanda}\n    configDir: "${join(dataDir, amanda)}"\ncatalog:\n  refreshMinutes: 0\n` : "";
  if (amanda) mkdirSync(join(dataDir, amanda));
  writeFileSync(config, `store:\n  url: "${storeUrl}"\njobs:\n  heartbeatTimeoutSeconds: 2\n${amandaYaml}`);
  const proc = execa(lifeboatBin, ["serve", "--config", config, "--data-dir", dataDir, "--name", name, "--listen", "127.0.0.1", "--http-port", "0", "--no-tftp", "--dhcp", "off"], {
    reject: false,
    stdin: "ignore",
  });
  procs.push(proc);
  const url = await new Promise<string>((resolve, reject) => {
    let buf = "";
    proc.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = /"svc":"http".*?"address":"(http:\/\/[^"]+)"/.exec(buf);
      // Ready once its last service (the job watch) started.
      if (m && buf.includes('"svc":"job-watch"')) resolve(m[1]!);
    });
    void proc.then((r) => reject(new Error(`serve ${name} exited early: ${r.stderr}`)));
  });
  return { name, config, dataDir, url, token: readFileSync(join(dataDir, "admin-token"), "utf8").trim(), proc };
}

async function api<T>(s: Serve, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${s.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${s.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} on ${s.name}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** A server's /live stream, collected: each change of each job, as its page sees them. */
function live(s: Serve): { seen: Array<{ job: JobView; event: { type: string; data: Record<string, unknown> } | null }>; stop(): void } {
  const seen: Array<{ job: JobView; event: { type: string; data: Record<string, unknown> } | null }> = [];
  const ctl = new AbortController();
  void (async () => {
    const res = await fetch(`${s.url}/api/v1/live`, { headers: { authorization: `Bearer ${s.token}` }, signal: ctl.signal });
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of res.body!) {
      buf += dec.decode(chunk as Uint8Array, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = /^data: (.*)$/m.exec(block);
        if (data) seen.push(JSON.parse(data[1]!));
      }
    }
  })().catch(() => undefined);
  return { seen, stop: () => ctl.abort() };
}

/** The boot script a machine gets from a server's boot files (its LAN), and the boot token in it, if any. */
async function boot(s: Serve, mac: string): Promise<string | null> {
  const script = await (await fetch(`${s.url}/boot/ipxe?mac=${mac}`)).text();
  return /lifeboat\.token=([A-Za-z0-9_-]+)/.exec(script)?.[1] ?? null;
}

describeNeeding(postgresUnavailable(), "several servers on one PostgreSQL store", () => {
  let pg: TestPostgres;
  let a: Serve;
  let b: Serve;
  let aLive: ReturnType<typeof live>;
  /** The boot token B gave web1's machine (first test); its agent's heartbeats go to B. */
  let bToken = "";

  beforeAll(async () => {
    pg = await startPostgres();
    const url = await pg.createDatabase();
    const key = `${randomBytes(32).toString("hex")}\n`;
    a = await serve("a", url, key, "daily");
    b = await serve("b", url, key);
    // The host and its captured layout, as a capture would have stored them (through any server: one store).
    const keyFile = join(tempDir(), "store-key");
    writeFileSync(keyFile, key, { mode: 0o600 });
    const seed = new PgStore(url, { keyFile });
    await seed.hosts.add({ name: "web1", tokenHash: "x", smbiosUuid: null, macs: ["52:54:00:25:01:01", "52:54:00:25:01:02"], amandaConfig: null, dleMap: {} });
    await seed.layouts.add("web1", { disks: [] });
    // web3: a captured layout and a complete chain of Amanda config "daily", which only A serves.
    await seed.hosts.add({ name: "web3", tokenHash: "y", smbiosUuid: null, macs: ["52:54:00:25:01:03"], amandaConfig: "daily", dleMap: { "/": "/" } });
    // Its disk with a serial that names it (the fixture's is QEMU's default, which the planner refuses to trust).
    const layout = fixtureLayout("gpt-uefi");
    layout.disks[0]!.serial = "LB25-WEB3-0";
    await seed.layouts.add("web3", layout);
    await seed.catalog.replace("daily", chain3, []);
    await seed.close();
    aLive = live(a);
  });

  afterAll(async () => {
    aLive?.stop();
    for (const p of procs) p.kill("SIGKILL");
    await Promise.all(procs);
    await pg?.stop();
  });

  it("both servers are in the store; a job armed on A boots on B and is served by B; A's live view shows it", async () => {
    const servers = await api<Array<{ name: string; url: string; alive: boolean }>>(a, "GET", "/servers");
    expect(servers.map((s) => [s.name, s.url, s.alive])).toEqual([["a", a.url, true], ["b", b.url, true]]);
    const [job] = await api<JobView[]>(a, "POST", "/jobs", { mac: "52:54:00:25:01:01", trustHttpBoot: true });
    // Armed on A, listed on B.
    expect((await api<JobView>(b, "GET", `/jobs/${job!.id}`)).state).toBe("armed");
    const token = await boot(b, "52:54:00:25:01:01");
    expect(token).not.toBeNull();
    bToken = token!;
    expect(await api<JobView>(a, "GET", `/jobs/${job!.id}`)).toMatchObject({ server: "b" });
    // B's agent says hello to B; A's page hears of the boot and the hello.
    const hello = await fetch(`${b.url}/api/v1/agent/jobs/${job!.id}/hello`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ disks: [{ name: "vda", path: "/dev/vda", sizeBytes: 1 << 30, serial: "S1" }], hardware: { macs: [] } }),
    });
    expect(await hello.json()).toEqual({ state: "booted" });
    await vi.waitFor(
      () => {
        const mine = aLive.seen.filter((x) => x.job.id === job!.id);
        expect(mine.some((x) => x.event?.type === "boot" && x.event.data.server === "b")).toBe(true);
        expect(mine.some((x) => x.job.state === "booted")).toBe(true);
      },
      { timeout: 5000, interval: 50 },
    );
    // A's CLI lists which server serves it (table and --json), and A's page has the column its rows fill from j.server.
    const cli = (...args: string[]) => lifeboat(["jobs", ...args, "--config", a.config, "--data-dir", a.dataDir, "--server", a.url]);
    const listed = JSON.parse((await cli("list", "--json")).stdout) as JobView[];
    expect(listed.find((j) => j.id === job!.id)?.server).toBe("b");
    // (Its state may be stalled by now: heartbeatTimeoutSeconds is 2 here and each CLI call is a process start.)
    expect((await cli("list")).stdout).toMatch(new RegExp(`^${job!.id}\\s+52:54:00:25:01:01\\s+recover\\s+web1\\s.*\\sb$`, "m"));
    expect((await cli("show", job!.id)).stdout).toContain("served by: server b");
    const page = await (await fetch(`${a.url}/`)).text();
    expect(page).toMatch(/<th>Remote help<\/th><th [^>]*>Server<\/th>/);
    expect(await (await fetch(`${a.url}/web/app.js`)).text()).toContain('el("td", { class: "server" }, j.server ?? "")');
  });

  it("the plan names the stream URL of the server that holds the dumps: A's from B, A's own path from A", async () => {
    const [job] = await api<JobView[]>(a, "POST", "/jobs", { mac: "52:54:00:25:01:03" });
    // The dry run (against the captured disks) each server builds for the job.
    const plan = async (s: Serve) => {
      const res = await fetch(`${s.url}/api/v1/jobs/${job!.id}/plan`, { headers: { authorization: `Bearer ${s.token}` } });
      const text = await res.text();
      expect(res.status, text).toBe(200);
      return text;
    };
    const fromB = await plan(b);
    const fromA = await plan(a);
    for (const d of chain3) {
      expect(fromB).toContain(`${a.url}/api/v1/dumps/${encodeURIComponent(d.id)}/stream`);
      expect(fromA).not.toContain(`${a.url}/api/v1/dumps/`);
      expect(fromA).toContain(`/api/v1/dumps/${encodeURIComponent(d.id)}/stream`);
    }
    await api(a, "POST", `/jobs/${job!.id}/cancel`);
  });

  it("two servers asked for one boot at once: one serves it, the other sends the machine on and says why", async () => {
    const [job] = await api<JobView[]>(a, "POST", "/jobs", { mac: "52:54:00:25:01:02", trustHttpBoot: true });
    const tokens = await Promise.all([boot(a, "52:54:00:25:01:02"), boot(b, "52:54:00:25:01:02")]);
    expect(tokens.filter((t) => t !== null)).toHaveLength(1);
    const winner = tokens[0] ? "a" : "b";
    const loser = tokens[0] ? "b" : "a";
    expect((await api<JobView>(b, "GET", `/jobs/${job!.id}`)).server).toBe(winner);
    const events = await api<Array<{ type: string; data: { reason?: string } }>>(a, "GET", `/jobs/${job!.id}/events`);
    expect(events.filter((e) => e.type === "boot")).toHaveLength(1);
    expect(events.filter((e) => e.type === "boot-refused").map((e) => e.data.reason)).toEqual([`job ${job!.id} is served by server ${winner}, which is alive: no second server serves it`]);
    // The holder's own next boot (the machine rebooting on its LAN) is still its to serve.
    expect(await boot(winner === "a" ? a : b, "52:54:00:25:01:02")).not.toBeNull();
    expect(loser).not.toBe(winner);
    await api(a, "POST", `/jobs/${job!.id}/cancel`);
  });

  it("B killed mid-job: the job becomes stalled (A's ticker, A's live view); the machine booting again on A's LAN is served by A", async () => {
    // The agent's heartbeat to B: the job is under way there (whatever the checks before took).
    const [booted] = (await api<JobView[]>(a, "GET", "/jobs")).filter((j) => j.mac === "52:54:00:25:01:01" && j.server === "b");
    expect((await fetch(`${b.url}/api/v1/agent/jobs/${booted!.id}/heartbeat`, { method: "POST", headers: { authorization: `Bearer ${bToken}` } })).status).toBe(200);
    const [job] = (await api<JobView[]>(a, "GET", "/jobs")).filter((j) => j.mac === "52:54:00:25:01:01" && j.state === "booted");
    expect(job?.server).toBe("b");
    b.proc.kill("SIGKILL");
    await b.proc;
    await vi.waitFor(async () => expect((await api<JobView>(a, "GET", `/jobs/${job!.id}`)).state).toBe("stalled"), { timeout: 15_000, interval: 250 });
    expect(aLive.seen.some((x) => x.job.id === job!.id && x.job.state === "stalled")).toBe(true);
    const token = await boot(a, "52:54:00:25:01:01");
    expect(token).not.toBeNull();
    expect((await api<JobView>(a, "GET", `/jobs/${job!.id}`)).server).toBe("a");
    // The CLI reads the same store: B is still listed (alive until it misses SERVER_DEAD_MS of beats).
    const cli = await lifeboat(["store", "servers", "--config", a.config, "--data-dir", a.dataDir, "--json"]);
    expect(cli.exitCode).toBe(0);
    expect((JSON.parse(cli.stdout) as Array<{ name: string; url: string }>).map((s) => [s.name, s.url])).toEqual([["a", a.url], ["b", b.url]]);
    const beat = await fetch(`${a.url}/api/v1/agent/jobs/${job!.id}/heartbeat`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
    expect(beat.status).toBe(200);
    expect((await api<JobView>(a, "GET", `/jobs/${job!.id}`)).state).toBe("booted");
  });
});
