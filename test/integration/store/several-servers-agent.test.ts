/**
 * Several servers on one store, with the real rescue agent (issue 25: "Server B killed
 * mid-restore: the job becomes stalled on both; restarted, the agent resumes"). Two real
 * `lifeboat serve` processes, A and B, each the only DHCP server of its own namespace LAN
 * (A: 10.231.127.0/24, B: 10.231.128.0/24), on one throwaway PostgreSQL. The host's dumps (the
 * Amanda lab's DLE "plain", levels 0, 1, 2) belong to the lab's Amanda config, which only A
 * serves; the job is armed through A; the machine, a namespace on B's LAN, gets its lease from B
 * (busybox udhcpc) and its boot script from B (GET /boot/ipxe); the rescue agent (lib.sh +
 * steps.sh under dash, as rescue/agent.test.ts runs it) runs in that namespace with the boot
 * script's kernel line: B is its server, and B's own planner (the real one) builds the plan, which
 * streams the dumps from A's URL (the machine's second port is on A's LAN, its switch port
 * throttled with tc so that the level-0 stream lasts some 10 s). Once the job shows bytes of that
 * stream (the agent's progress reports), B is SIGKILLed: the kill lands mid-stream (no stream had
 * ended). The job becomes stalled (A's API); the agent, still running, tries its reports to B again
 * with backoff; B restarted sees the job too (stalled, or already resumed by the agent's next
 * call); the agent goes on, the job ends done on both, and the disk holds the tree of the lab's
 * manifest. B's death cuts no stream (the dumps come from A): what the agent resumes is its
 * reports, not a download (a cut stream resumed with Range is rescue/agent.test.ts).
 * Stand-ins: the machine is a namespace on this host, not QEMU (network and drivers are the
 * host's: LB_SKIP_HW_SETUP; the booted agent is test/e2e); its disk is a loop device, which the
 * agent's disk discovery leaves out (lb_list_disks skips loop*), so here it reports only that
 * loop device; the captured layout is the gpt-uefi fixture's disk cut to its root partition (no
 * boot loader, swap or NICs, which the host cannot install or would not restore), and the admin
 * maps its disk to the loop device once the agent reported it, as for a new disk (the agent asks
 * for its plan again 15 s after the refusal).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import type { CatalogDump } from "../../../server/amanda/model.ts";
import { refreshCatalogs } from "../../../server/amanda/refresh.ts";
import type { JobView } from "../../../server/jobs/job-views.ts";
import type { DiskLayout } from "../../../server/layout/layout.ts";
import { PgStore } from "../../../server/store/postgres.ts";
import { type AmandaLab, amandaLabUnavailable, treeManifest } from "../../helpers/amanda-lab.ts";
import { type Lan, createLan, netnsUnavailable } from "../../helpers/netns.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { type TestPostgres, postgresUnavailable, startPostgres } from "../../helpers/postgres.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { AGENT_DIR } from "../../unit/rescue/agent-sh.ts";
import { fixtureLayout } from "../../unit/recovery/fixtures.ts";
import { cleanupLoopsAfterAll, loopUnavailable, makeLoop, trackMount } from "../recovery/loopdev.ts";
import { sharedLab } from "../rescue/lab-dumps.ts";
import { lanServers } from "./servers-lan.ts";

const NET = { a: "10.231.127", b: "10.231.128" } as const;
const MAC = "52:54:00:25:03:01";
/** The machine's second port, on A's LAN (static: the rescue system's network is the host's here). */
const A_PORT = `${NET.a}.50`;
const GiB = 1024 * 1024 * 1024;
/** The rate of the machine's switch port on A's LAN: the level-0 dump (~300 KiB) takes some 10 s. */
const RATE = "240kbit";
const why =
  postgresUnavailable() ??
  (await netnsUnavailable()) ??
  loopUnavailable() ??
  amandaLabUnavailable() ??
  (existsSync("/bin/busybox") ? null : "busybox (udhcpc)") ??
  ((await execa("tc", ["-V"], { reject: false })).exitCode === 0 ? null : "tc (iproute2) to throttle the stream");

/** The captured layout: the gpt-uefi fixture's 1 GiB disk with its root partition only, on this host's firmware. */
function rootOnlyLayout(): DiskLayout {
  const l = fixtureLayout("gpt-uefi");
  const disk = l.disks[0]!;
  // Root as partition 1, where the ESP was: on a host without udev the agent's partition step saw no loopNp2 of a
  // table holding only a partition 2 ("the kernel shows 0 of 1 partitions"); a partition 1 shows, as in agent.test.ts.
  disk.table!.partitions = disk.table!.partitions.filter((p) => p.path === "/dev/sda2").map((p) => ({ ...p, number: 1, path: "/dev/sda1" }));
  l.filesystems = l.filesystems.filter((f) => f.dev === "/dev/sda2").map((f) => ({ ...f, dev: "/dev/sda1" }));
  l.mounts = l.mounts.filter((m) => m.mountpoint === "/").map((m) => ({ ...m, dev: "/dev/sda1" }));
  l.swap = [];
  l.boot = { ...l.boot, firmware: existsSync("/sys/firmware/efi") ? "uefi" : "bios", loader: null, disk: null, efiDir: null, bootloaderId: null, efiEntries: null };
  l.system = { ...l.system, initramfsTool: null, nics: [] };
  return l;
}

/** Ends a process and every process below it, by their ids (the tree as it is now, leaves first). */
async function killTree(pid: number): Promise<void> {
  const below = async (p: number): Promise<number[]> => {
    const kids = (await execa("ps", ["-o", "pid=", "--ppid", String(p)], { reject: false })).stdout.split("\n").map(Number).filter((n) => n > 0);
    return [...(await Promise.all(kids.map(below))).flat(), ...kids];
  };
  for (const p of [...(await below(pid)), pid]) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* gone already */
    }
  }
}

describeNeeding(why, "several servers on one store: the real rescue agent restores through B while B is killed and restarted", () => {
  const work = tempDir("lifeboat-agent25-");
  cleanupLoopsAfterAll();
  let pg: TestPostgres;
  let storeUrl = "";
  let lab: AmandaLab;
  /** The chain the plan restores (A's catalog of the lab's DLE "plain"). */
  let chain: CatalogDump[] = [];
  let releaseLab = () => undefined as unknown;
  const key = `${randomBytes(32).toString("hex")}\n`;
  const amanda = () => [{ name: lab.config, configDir: lab.configDir, vtapeRoot: lab.vtapes, holdingDirs: [lab.holding] }];
  const { lans, srv, url, token: adminToken, start, curl, api, dhcp, bootScript, stop } = lanServers({
    work,
    net: NET,
    key,
    storeUrl: () => storeUrl,
    // Only A serves the lab's Amanda config.
    config: (s) => (s === "a" ? { amanda: amanda() } : {}),
  });

  beforeAll(async () => {
    const shared = await sharedLab();
    lab = shared.lab;
    releaseLab = shared.release;
    pg = await startPostgres();
    storeUrl = await pg.createDatabase();
    lans.a = await createLan({ prefix: "lbt25c", subnet: NET.a, members: { srv: 1, adm: 2 } });
    lans.b = await createLan({ prefix: "lbt25d", subnet: NET.b, members: { srv: 1, adm: 2, m: 0 } });
    // The machine: its boot port on B's LAN, a second port on A's LAN behind a throttled switch port.
    const a = lans.a;
    for (const [lan, member, cmd] of [
      [lans.b, "m", ["ip", "link", "set", "eth0", "address", MAC]],
      [a, "lan", ["ip", "link", "add", "v-m", "type", "veth", "peer", "name", "eth1", "netns", lans.b.ns("m")]],
      [a, "lan", ["ip", "link", "set", "v-m", "master", a.bridge, "up"]],
      [a, "lan", ["tc", "qdisc", "add", "dev", "v-m", "root", "tbf", "rate", RATE, "burst", "4kb", "latency", "1s"]],
      [lans.b, "m", ["ip", "addr", "add", `${A_PORT}/24`, "dev", "eth1"]],
      [lans.b, "m", ["ip", "link", "set", "eth1", "up"]],
    ] as Array<[Lan, string, string[]]>) {
      const r = await lan.exec(member, cmd);
      expect(r.exitCode, `${cmd.join(" ")}: ${r.stderr}`).toBe(0);
    }
    await start("a");
    await start("b");
    // A's catalog of the lab (what A's refresh stores), the host and its captured layout, in the one store.
    const keyFile = join(work, "store-key");
    writeFileSync(keyFile, key, { mode: 0o600 });
    const seed = new PgStore(storeUrl, { keyFile });
    try {
      const [summary] = await refreshCatalogs(amanda(), seed);
      expect(summary!.error).toBeNull();
      const plain = lab.dles.find((d) => d.tag === "plain")!;
      await seed.hosts.add({ name: plain.host, tokenHash: "x", smbiosUuid: null, macs: [MAC], amandaConfig: lab.config, dleMap: { [plain.disk]: "/" } });
      await seed.layouts.add(plain.host, rootOnlyLayout());
      chain = (await seed.catalog.list({ amanda: lab.config, disk: plain.disk })).sort((x, y) => x.datestamp.localeCompare(y.datestamp));
      expect(chain.map((d) => d.level)).toEqual([0, 1, 2]);
    } finally {
      await seed.close();
    }
  }, 180_000);

  /** The agent's process: it and what it started (its heartbeat loop outlives it) end with the test, passed or not. */
  let agentPid: number | undefined;
  afterAll(async () => {
    if (agentPid !== undefined) await killTree(agentPid);
    await stop();
    await pg?.stop();
    await releaseLab();
  });

  it("armed through A, booted from B, restored by the real agent through B while B is killed and restarted: stalled on both, the agent goes on, done, the tree identical", async () => {
    const [armed] = await api<JobView[]>("a", "POST", "/jobs", { mac: MAC });
    const jobId = armed!.id;
    const job = (s: "a" | "b") => api<JobView>(s, "GET", `/jobs/${jobId}`);
    const events = () => api<Array<{ type: string; data: Record<string, unknown> }>>("a", "GET", `/jobs/${jobId}/events`);
    // DHCP from B, the boot script from B: B's token and B as the agent's server.
    expect(await dhcp(lans.b!, "m", "eth0")).toMatch(new RegExp(` ${NET.b.replaceAll(".", "\\.")}\\.1$`));
    const { script, token } = await bootScript(lans.b!, "m", url("b"), MAC);
    expect(token, script).not.toBeNull();
    expect(script).toContain(`lifeboat.server=${url("b")}`);
    expect(await job("a")).toMatchObject({ server: "b", state: "armed" });

    // The rescue agent, booted with the boot script's kernel arguments, on the machine's namespace.
    const disk = await makeLoop(work, "m-disk", GiB);
    const cmdline = join(work, "m.cmdline");
    writeFileSync(cmdline, `${script.split("\n").find((l) => /^kernel\s/.test(l))}\n`);
    const target = join(work, "m-target");
    mkdirSync(target);
    trackMount(target);
    const out = join(work, "agent.out");
    const agent = lans.b!.spawn(
      "m",
      ["dash", "-c", `. '${AGENT_DIR}lib.sh'; . '${AGENT_DIR}steps.sh'; lb_list_disks() { echo ${basename(disk)}; }; lb_main`],
      {
        env: { LB_RUN: join(work, "m-run"), LB_TARGET: target, LB_CMDLINE_FILE: cmdline, LB_SKIP_HW_SETUP: "1", LB_NO_WAIT: "1", LB_HEARTBEAT_SECONDS: "1", LB_PROGRESS_SECONDS: "1" },
        stdout: out,
        stderr: `${out}.err`,
      },
    );
    agentPid = agent.pid;
    // Its console, and its log (a step's own messages go there, not to the console).
    const agentLog = () => [out, `${out}.err`, join(work, "m-run", "agent.log")].map((f) => (existsSync(f) ? readFileSync(f, "utf8") : "")).join("\n");

    // Its hello reached B; the admin (on A) maps the captured disk to the disk it reported.
    await vi.waitFor(async () => expect((await job("a")).state).not.toBe("armed"), { timeout: 20_000, interval: 250 });
    expect(await api<JobView>("a", "POST", `/jobs/${jobId}/map`, { mapping: { sda: basename(disk) } })).toMatchObject({ server: "b" });

    // B's plan streams the dumps from A. Once the job shows bytes of the first stream (its progress
    // reports to B), B is killed: the stream from A goes on, the agent's reports to B find nobody.
    let atKill: JobView | undefined;
    await vi.waitFor(
      async () => {
        const j = await job("a");
        expect(j.state, agentLog()).toBe("running");
        expect(j.bytesDone).toBeGreaterThan(0);
        expect(j.bytesDone).toBeLessThan(chain[0]!.sizeBytes! / 2);
        atKill = j;
      },
      { timeout: 60_000, interval: 100 },
    );
    srv.b!.proc.kill("SIGKILL");
    await srv.b!.proc;
    // The kill landed mid-restore, inside the first dump's stream: none had ended (B, dead, hears of none since).
    expect(atKill!.bytesDone).toBeLessThan(atKill!.bytesTotal);
    const atKillEvents = await events();
    expect(atKillEvents.filter((e) => e.type === "stream-done")).toEqual([]);
    expect(atKillEvents.filter((e) => e.type === "step-start").at(-1)?.data.name).toBe("restore_dump");

    // Stalled, as A sees it; the agent, still running, tries its report again and again.
    await vi.waitFor(async () => expect((await job("a")).state).toBe("stalled"), { timeout: 20_000, interval: 250 });
    await vi.waitFor(() => expect(agentLog()).toMatch(/no answer from Lifeboat to POST events \(attempt 2\)/), { timeout: 60_000, interval: 250 });
    expect(agent.exitCode).toBeNull();

    // B restarted: the same job, B's, as both servers see it: stalled, unless the agent's next call
    // (a heartbeat each second, or its report tried again) reached B before the admin looked.
    await start("b");
    for (const s of ["b", "a"] as const) {
      const seen = await job(s);
      expect(seen.server).toBe("b");
      expect(["stalled", "running"]).toContain(seen.state);
    }

    // The agent goes on: the job ends done, seen from both servers.
    const r = await agent;
    expect(r.exitCode, agentLog()).toBe(0);
    expect(await job("a")).toMatchObject({ state: "done", server: "b", bytesDone: atKill!.bytesTotal });
    expect(await job("b")).toMatchObject({ state: "done", server: "b" });
    const all = await events();
    const afterStall = all.slice(all.findIndex((e) => e.type === "stalled")).map((e) => e.type);
    expect(afterStall).toEqual(expect.arrayContaining(["stream-done", "step-end", "done"]));
    expect(afterStall.filter((t) => t === "stalled")).toHaveLength(1);
    // Every step ran once and succeeded; each dump streamed whole (one request each: B's death cut no stream from A).
    const ends = all.filter((e) => e.type === "step-end").map((e) => e.data as { name: string; exitStatus: number; output: string });
    expect(ends.every((e) => e.exitStatus === 0)).toBe(true);
    expect(ends.filter((e) => e.name === "restore_dump").map((e) => e.output)).toEqual(chain.map(() => expect.not.stringContaining("stream interrupted")));
    const streams = all.filter((e) => e.type === "stream-done").map((e) => e.data as { dumpId: string; bytes: number });
    expect(streams.map((d) => [d.dumpId, d.bytes])).toEqual(chain.map((d) => [d.id, d.sizeBytes]));
    // The plan B served streams every dump from A's URL.
    const plan = await curl(lans.a!, "adm", ["-H", `authorization: Bearer ${adminToken("a")}`, `${url("a")}/api/v1/jobs/${jobId}/plan`]);
    for (const d of chain) expect(plan).toContain(` ${url("a")}/api/v1/dumps/${d.id}/stream\n`);

    // The restored tree is the lab's DLE after run 3 (apart from the agent's log under /var).
    await execa("mount", [`${disk}p1`, target]);
    const restored = await treeManifest(target);
    await execa("umount", [target]);
    expect(restored.split("\n").filter((l) => !l.startsWith("./var")).join("\n")).toBe(lab.manifest("plain", 3).trimEnd());
  }, 240_000);
});
