/**
 * The whole rescue agent (lib.sh + steps.sh, under dash as in the image) run on this host
 * against a real Lifeboat server (hello, plan, events, heartbeat, log through the real
 * routes and zod schemas): a plan on a loop device restores a real Amanda chain (lab DLE
 * "gz": levels 0, 1, 2, gzip) through a connection that drops mid-stream, and a plan whose
 * mkfs fails stops there, reports the tool's output and restores nothing.
 * Network and drivers are the host's (LB_SKIP_HW_SETUP); the booted image is image.test.ts.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { renderKernelArgs } from "../../../server/plan/cmdline.ts";
import { type Step, renderPlan } from "../../../server/plan/steps.ts";
import { refreshCatalogs } from "../../../server/amanda/refresh.ts";
import { loadConfig } from "../../../server/config/load.ts";
import { createLogger } from "../../../server/log.ts";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import { type RunningServer, startServer } from "../../../server/serve.ts";
import { type AmandaLab, amandaLabUnavailable, treeManifest } from "../../helpers/amanda-lab.ts";
import { bootToken, seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { AGENT_DIR } from "../../unit/rescue/agent-sh.ts";
import { cleanupLoopsAfterAll, loopUnavailable, makeLoop } from "../recovery/loopdev.ts";
import { type LabDump, labChain, sharedLab } from "./lab-dumps.ts";
import { dumpsOf, restorePlan } from "./plans.ts";
import { type StreamStandIn, streamStandIn } from "./stream-standin.ts";
import { describeNeeding } from "../../helpers/needs.ts";

const MiB = 1024 * 1024;
const why = loopUnavailable() ?? amandaLabUnavailable();

describeNeeding(why, "rescue agent on the host against a real Lifeboat server", () => {
  const dir = tempDir("lifeboat-rescue-agent-");
  cleanupLoopsAfterAll();
  let lab: AmandaLab;
  let chain: LabDump[];
  let server: RunningServer;
  let standin: StreamStandIn;
  let token = "";
  const plans = new Map<string, Step[]>();
  const progress: Array<{ dumpId: string; bytes: number }> = [];
  const planner: Planner = async (job) => {
    const steps = plans.get(job.id)!;
    // The job's token may stream the dumps its steps name (web4 streams them from Lifeboat's own route).
    return standInPlan(renderPlan(steps), steps.length, { dumps: dumpsOf(steps) });
  };

  beforeAll(async () => {
    const shared = await sharedLab();
    lab = shared.lab;
    chain = await labChain(lab, "gz");
    shared.release();
    server = await testServer({ planner });
    // The level-0 stream is cut after 4000 bytes once: the agent must resume with Range.
    // A slow first chunk, so that the agent's periodic progress events show up too.
    standin = await streamStandIn({ dumps: chain, token: () => token, dropOnceAfter: 4000, chunkDelayMs: 2500 });
    server.ctx.jobs.changes.on("job", (_job: unknown, ev?: { type: string; data: unknown }) => {
      if (ev?.type === "stream" && !(ev.data as { done: boolean }).done) progress.push(ev.data as { dumpId: string; bytes: number });
    });
  });
  afterAll(async () => {
    await standin?.stop();
    await server?.stop();
  });

  async function runAgent(name: string, mac: string, planFor: (disk: string, part: string) => Step[], srv = server) {
    await seedHost(srv, name, mac);
    const job = await srv.ctx.jobs.arm({ mac, actor: "test" });
    token = await bootToken(srv, job);
    const disk = await makeLoop(dir, name, 256 * MiB);
    plans.set(job.id, planFor(disk, `${disk}p1`));
    const run = join(dir, `${name}-run`);
    const target = join(dir, `${name}-target`);
    mkdirSync(target, { recursive: true });
    afterAll(() => execa("umount", ["-R", "-l", target], { reject: false }));
    const cmdline = join(dir, `${name}.cmdline`);
    writeFileSync(cmdline, `console=ttyS0 ${renderKernelArgs({ server: srv.httpUrl, job: job.id, token })}\n`);
    const r = await execa("dash", ["-c", `. '${AGENT_DIR}lib.sh'; . '${AGENT_DIR}steps.sh'; lb_main`], {
      reject: false,
      all: true,
      timeout: 240_000,
      env: { LB_RUN: run, LB_TARGET: target, LB_CMDLINE_FILE: cmdline, LB_SKIP_HW_SETUP: "1", LB_NO_WAIT: "1", LB_HEARTBEAT_SECONDS: "1", LB_PROGRESS_SECONDS: "1" },
    });
    const events = await srv.ctx.jobs.events(job.id);
    return { r, job: await srv.ctx.jobs.get(job.id), events, disk, target };
  }

  it("restores a real Amanda chain (0, 1, 2, gzip) onto a fresh disk through a dropped connection: the tree is identical", async () => {
    const { r, job, events, disk, target } = await runAgent("web1", "52:54:00:aa:00:01", (disk, part) =>
      restorePlan({ disk, part, size: 256 * MiB, chain, streamUrl: standin.url }),
    );
    expect(r.exitCode, `${r.all}\n${JSON.stringify(events.slice(-4))}`).toBe(0);
    expect(job.state).toBe("done");
    const ends = events.filter((e) => e.type === "step-end").map((e) => e.data as { name: string; exitStatus: number; output: string });
    expect(ends.map((e) => e.name)).toEqual(plans.get(job.id)!.map((s) => s.fn));
    expect(ends.every((e) => e.exitStatus === 0)).toBe(true);
    // The drop and the resume from byte 4000.
    expect(ends.find((e) => e.name === "restore_dump")!.output).toContain("stream interrupted at byte 4000");
    expect(standin.requests.filter((q) => q.id === chain[0]!.id).map((q) => q.range)).toEqual(["bytes=0-", "bytes=4000-"]);
    // Progress while streaming (transient events for the live view), never past the dump's size.
    expect(progress.length).toBeGreaterThan(0);
    for (const p of progress) expect(p.bytes).toBeLessThanOrEqual(chain.find((d) => d.id === p.dumpId)!.bytes.length);
    // Every byte of each dump arrived (what the agent received is the restored tree, checked below).
    const streams = events.filter((e) => e.type === "stream-done").map((e) => e.data as { dumpId: string; bytes: number });
    expect(streams).toEqual(chain.map((d) => expect.objectContaining({ dumpId: d.id, bytes: d.bytes.length, done: true })));
    expect(events.some((e) => e.type === "agent-log" && /recovery finished/.test((e.data as { text: string }).text))).toBe(true);

    await execa("mount", [`${disk}p1`, target]);
    const log = join(target, "var/log/lifeboat");
    const restored = await treeManifest(target);
    await execa("umount", [target]);
    // The log was copied into the restored system; apart from it the tree is the DLE after run 3.
    expect(restored).toContain("./var/log/lifeboat/recovery-");
    const withoutLog = restored
      .split("\n")
      .filter((l) => !l.startsWith("./var"))
      .join("\n");
    expect(withoutLog).toBe(lab.manifest("gz", 3).trimEnd());
    expect(log).toBeTruthy();
  });

  it("a failing mkfs stops the plan: reported with its output, nothing after it runs, the job is failed", async () => {
    const { r, job, events, disk } = await runAgent("web2", "52:54:00:aa:00:02", (disk, part) =>
      restorePlan({ disk, part, size: 256 * MiB, chain, streamUrl: standin.url, mkfsOptions: ["-O", "no_such_feature"] }),
    );
    expect(r.exitCode).toBe(1);
    expect(job.state).toBe("failed");
    const starts = events.filter((e) => e.type === "step-start").map((e) => (e.data as { name: string }).name);
    expect(starts).toEqual(["plan_begin", "check_disk", "wipe_disk", "partition", "make_fs"]);
    const failedStep = events.find((e) => e.type === "step-end" && (e.data as { name: string }).name === "make_fs")!.data as {
      exitStatus: number;
      output: string;
    };
    expect(failedStep.exitStatus).not.toBe(0);
    expect(failedStep.output).toMatch(/no_such_feature/);
    expect(String((events.find((e) => e.type === "failed")!.data as { error: string }).error)).toMatch(/step 5 \(make_fs\) failed/);
    expect(events.some((e) => e.type === "agent-log")).toBe(true);
    expect((await execa("blkid", ["-o", "value", "-s", "TYPE", `${disk}p1`], { reject: false })).stdout).toBe("");
  });

  it("restores a dump(8) chain (level 0, then level 1 after a deletion) with restore -r: the tree is identical", async () => {
    // A real ext4 filesystem dumped with dump(8), its dumpdates kept in the test dir.
    const src = await makeLoop(dir, "dumpsrc", 64 * MiB);
    await execa("mkfs.ext4", ["-q", src]);
    const mnt = join(dir, "dumpsrc.mnt");
    mkdirSync(mnt);
    await execa("mount", [src, mnt]);
    mkdirSync(join(mnt, "etc/app"), { recursive: true });
    writeFileSync(join(mnt, "etc/app/gone.conf"), "deleted before level 1\n");
    writeFileSync(join(mnt, "etc/app/kept.conf"), "x".repeat(200_000));
    await execa("ln", ["-s", "etc/app/kept.conf", join(mnt, "kept-link")]);
    const dumps: LabDump[] = [];
    const dumpdates = join(dir, "dumpdates");
    writeFileSync(dumpdates, "");
    for (const level of [0, 1]) {
      if (level === 1) {
        await execa("rm", [join(mnt, "etc/app/gone.conf")]);
        writeFileSync(join(mnt, "etc/app/new.conf"), "added before level 1\n");
        await new Promise((r) => setTimeout(r, 1100)); // dump compares times in seconds
      }
      await execa("sync");
      const file = join(dir, `dump-${level}`);
      await execa("dump", [`-${level}u`, "-D", dumpdates, "-f", file, src]);
      dumps.push({ id: `dump-${level}`, level, compression: "none", bytes: readFileSync(file) });
    }
    const expected = await treeManifest(mnt);
    await execa("umount", [mnt]);
    const dumpStand = await streamStandIn({ dumps, token: () => token });
    try {
      const { r, job, disk, target } = await runAgent("web3", "52:54:00:aa:00:03", (disk, part) =>
        restorePlan({ disk, part, size: 256 * MiB, chain: dumps, streamUrl: dumpStand.url, program: "dump" }),
      );
      expect(r.exitCode, r.all).toBe(0);
      expect(job.state).toBe("done");
      await execa("mount", [`${disk}p1`, target]);
      const restored = await treeManifest(target);
      await execa("umount", [target]);
      // restore -r keeps its symbol table for the next level; the agent's log is added.
      const strip = (m: string) =>
        m
          .split("\n")
          .filter((l) => !/^\.\/(restoresymtable|var)(\||\/)/.test(l))
          .join("\n")
          .trimEnd();
      expect(strip(restored)).toBe(strip(expected));
      expect(restored).not.toContain("gone.conf");
    } finally {
      await dumpStand.stop();
    }
  });

  it("restores the same chain through Lifeboat's own dump stream route (catalog refreshed from the Amanda lab, job token)", async () => {
    const config = loadConfig({ overrides: { dataDir: join(dir, "amanda-data"), listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
    config.amanda = [{ name: lab.config, configDir: lab.configDir, vtapeRoot: lab.vtapes, holdingDirs: [lab.holding] }];
    config.catalog.refreshMinutes = 0;
    const real = await startServer(config, createLogger("silent", { pretty: false }), { planner });
    try {
      const [summary] = await refreshCatalogs(config.amanda, real.ctx.store);
      expect(summary!.error).toBeNull();
      const gz = lab.dles.find((d) => d.tag === "gz")!;
      const listed = (await real.ctx.store.catalog.list({ amanda: lab.config, disk: gz.disk })).sort((a, b) => a.datestamp.localeCompare(b.datestamp));
      expect(listed.map((d) => d.level)).toEqual(chain.map((d) => d.level));
      // Same bytes as amfetchdump gave, now under the catalog's ids, fetched by relative URL from the server.
      const viaCatalog = listed.map((d, i) => ({ ...chain[i]!, id: d.id }));
      const { r, job, events, disk, target } = await runAgent(
        "web4",
        "52:54:00:aa:00:04",
        (disk, part) => restorePlan({ disk, part, size: 256 * MiB, chain: viaCatalog, streamUrl: "" }),
        real,
      );
      expect(r.exitCode, r.all).toBe(0);
      expect(job.state).toBe("done");
      const streams = events.filter((e) => e.type === "stream-done").map((e) => e.data as { dumpId: string; bytes: number });
      expect(streams.map((s) => [s.dumpId, s.bytes])).toEqual(viaCatalog.map((d) => [d.id, d.bytes.length]));
      await execa("mount", [`${disk}p1`, target]);
      const restored = await treeManifest(target);
      await execa("umount", [target]);
      expect(restored.split("\n").filter((l) => !l.startsWith("./var")).join("\n")).toBe(lab.manifest("gz", 3).trimEnd());
    } finally {
      await real.stop();
    }
  });
});
