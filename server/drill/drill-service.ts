/**
 * Recovery drills (issue 24): `lifeboat drill HOST` proves a host comes back, on this server, the
 * way a real recovery would bring it back. A drill is a job of kind `drill`, armed like any job for
 * the host's profile (its layout, restore point and plan choices), with its own MAC and disk
 * mapping: the throwaway machine's thin disks, named by serial. The machine boots the same rescue
 * image with the same kernel command line keys and a boot token issued like a network boot's; its
 * agent fetches the plan the same planner builds, streams the same dumps and reports the same
 * steps. Once the job is done (the machine powers off: end state poweroff), its first disk is
 * booted on its own, and the drill passes when the console shows the ready pattern.
 *
 * Before any machine starts, the chains are checked (the planner's `restoreChains`): a missing
 * dump fails the drill naming it. The result (restore, boot and recover times, bytes, pass/fail
 * with the reason, the accelerator) is the job's `drill-result` event and the host's last drill
 * (jobs/drill-record.ts), which recoverability and /metrics read.
 */
import { mkdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/schema.ts";
import { ConflictError, NotFoundError, UserError } from "../errors.ts";
import { type DrillSummary, recordDrill } from "../jobs/drill-record.ts";
import type { JobService } from "../jobs/job-service.ts";
import { hostDles, restoreChains } from "../jobs/job-plan.ts";
import { keyHolding } from "../amanda/decrypt.ts";
import { ACTIVE_STATES, isActive } from "../jobs/job-state.ts";
import { imageDir, rescueImage } from "../jobs/recoverability.ts";
import { parseLayout } from "../layout/layout.ts";
import type { Logger } from "../log.ts";
import type { JobRecord, Store } from "../store/types.ts";
import { type DrillDisk, type DrillVmSpec, consoleTail, drillCmdline, drillDisks, drillMac, drillQemuArgs } from "./drill-plan.ts";
import { type Vm, freshOvmfVars, qemuAccelerator, startQemu } from "./qemu.ts";
import { type CheckResult, type DrillCheck, DHCP_GUEST, checkNetdev, checksVerdict, freePort, guestAddressProblem, parseCheck, runCheck } from "./checks.ts";

export interface DrillRequest {
  host: string;
  /** Restore point (Amanda datestamp); default: the host's profile's, else the newest. */
  at?: string;
  /** The restored system is up when its console shows this (a regular expression); default: config drill.readyPattern. */
  ready?: string;
  /** Checks once it is up (tcp:PORT, ssh:COMMAND); default: the host's own profile's drillChecks. */
  checks?: string[];
  /** The restored system's own address the checks reach (ADDR/PREFIX); default: the profile's drillAddress, else QEMU's DHCP one. */
  address?: string;
  actor: string;
}

export interface DrillServiceOptions {
  config: Config["drill"];
  dataDir: string;
  /** Where this server's HTTP port is reached from this host (the forward's other end). */
  httpTarget: () => { host: string; port: number };
  log: Logger;
}

const ACTOR = "drill";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (from: number, to: number) => Math.round((to - from) / 100) / 10;

export class DrillService {
  private current: { job: string; vm?: Vm; stopping: boolean } | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly jobs: JobService,
    private readonly opts: DrillServiceOptions,
  ) {}

  /** The drill under way, if any (at most one at a time). */
  active(): string | undefined {
    return this.current?.job;
  }

  /**
   * Arms a drill of the host and starts it in the background; answers with its job. A drill
   * whose chains are incomplete (or whose disks exceed drill.maxDiskGiB) is failed here, before
   * any machine starts, with the reason.
   */
  async start(req: DrillRequest): Promise<JobRecord> {
    if (this.current) throw new ConflictError(`a drill is running (${this.current.job}): one at a time`);
    // Taken before the first await: of two requests at once, one starts and the other is refused.
    this.current = { job: "(starting)", stopping: false };
    try {
      return await this.arm(req);
    } finally {
      // Refused, or failed before a machine started: the next drill may start.
      if (!this.running) this.current = undefined;
    }
  }

  private async arm(req: DrillRequest): Promise<JobRecord> {
    const host = await this.store.hosts.get(req.host);
    if (!host) throw new NotFoundError(`no host named ${req.host}`);
    const ready = req.ready ?? this.opts.config.readyPattern;
    try {
      new RegExp(ready, "m");
    } catch {
      throw new UserError(`ready pattern ${JSON.stringify(ready)} is not a regular expression`, 2);
    }
    const image = rescueImage(this.opts.dataDir);
    if (!image) throw new UserError(`no rescue image in ${imageDir(this.opts.dataDir)}: run lifeboat image build`, 2);
    // A recovery of the host by its MAC uses the profile of its name: so does its drill.
    let profile = await this.store.profiles.get(host.name);
    if (!profile) profile = await this.store.profiles.put({ name: host.name, host: host.name, layoutVersion: null, at: null, options: {} });
    if (profile.host !== host.name) throw new UserError(`profile ${profile.name} is for host ${profile.host}, not ${host.name}: a drill uses the host's own profile`, 2);
    const checks = (req.checks ?? profile.options.drillChecks ?? []).map((s) => {
      const c = parseCheck(s);
      if ("problem" in c) throw new UserError(c.problem, 2);
      return c;
    });
    const address = req.address ?? profile.options.drillAddress ?? DHCP_GUEST;
    const bad = guestAddressProblem(address);
    if (bad) throw new UserError(bad, 2);
    if (checks.some((c) => c.kind === "ssh") && !this.opts.config.sshKey) throw new UserError("ssh: checks log in with config drill.sshKey, which is not set", 2);
    const job = await this.jobs.arm({ mac: drillMac(host.name), kind: "drill", profile: profile.name, at: req.at, hostname: host.name, options: { endState: "poweroff" }, actor: req.actor });
    this.current!.job = job.id;
    const problem = await this.preflight(job, profile.layoutVersion);
    if (typeof problem === "string") return this.end(job, Date.now(), { passed: false, reason: problem }, null);
    await this.jobs.map(job.id, problem.mapping, ACTOR);
    const run = this.run(job, problem, new RegExp(ready, "m"), Date.parse(job.createdAt), { checks, address });
    this.running = run.finally(() => {
      this.current = undefined;
      this.running = undefined;
    });
    return this.jobs.get(job.id);
  }

  /**
   * At server start: a drill left active by a server that stopped (or died) mid-drill has no
   * machine any more; it fails, saying so, so its host's next drill can start.
   */
  async failLeftovers(): Promise<number> {
    const left = (await this.store.jobs.list({ state: [...ACTIVE_STATES], limit: Number.MAX_SAFE_INTEGER })).filter((j) => j.kind === "drill");
    for (const job of left) await this.end(job, Date.parse(job.createdAt), { passed: false, reason: "the server stopped during the drill; its machine is gone" }, null);
    return left.length;
  }

  /** The checks a drill makes before a machine starts: the layout, every DLE's chain (the planner's own), the disks' total. */
  private async preflight(job: JobRecord, pinned: number | null): Promise<string | { disks: DrillDisk[]; mapping: Record<string, string> }> {
    const host = (await this.store.hosts.get(job.hostname!))!;
    const rec = await this.store.layouts.get(host.name, pinned ?? undefined);
    if (!rec) return `host ${host.name} has no captured layout`;
    try {
      const layout = parseLayout(rec.document, `host ${host.name} layout v${rec.version}`);
      const catalog = await this.store.catalog.list(host.amandaConfig ? { amanda: host.amandaConfig } : {});
      const dles = hostDles(layout, host);
      const keys = keyHolding(await this.store.amandaKeys.list());
      for (const [dle, mountpoint] of Object.entries(dles)) restoreChains(catalog, host.name, { [dle]: mountpoint }, job.at, keys);
      const profile = await this.store.profiles.get(job.profile);
      const d = drillDisks(layout, profile?.options.mapping, this.opts.config.maxDiskGiB * 1024 ** 3);
      if ("problem" in d) return d.problem;
      return d;
    } catch (err) {
      // A chain that cannot be restored (ChainError names the dump) or a layout the planner cannot read.
      return (err as Error).message;
    }
  }

  private async run(job: JobRecord, plan: { disks: DrillDisk[] }, ready: RegExp, armedAt: number, admin: { checks: DrillCheck[]; address: string }): Promise<void> {
    const log = this.opts.log.child({ job: job.id, host: job.hostname });
    const work = join(this.opts.config.workDir || join(this.opts.dataDir, "drills"), job.id);
    const accel = qemuAccelerator();
    let restoreEnd: number | null = null;
    let bootStart: number | null = null;
    try {
      mkdirSync(work, { recursive: true, mode: 0o700 });
      // Thin files: only the blocks the restore writes take space.
      const disks = plan.disks.map((d) => {
        const file = join(work, `${d.captured}.raw`);
        writeFileSync(file, "");
        truncateSync(file, d.sizeBytes);
        return { ...d, file };
      });
      const layoutFirmware = await this.firmwareOf(job);
      const spec: DrillVmSpec = {
        accel: accel.args,
        firmware: layoutFirmware,
        ovmfVars: layoutFirmware === "uefi" ? freshOvmfVars(work, "drill") : "",
        memoryMiB: this.opts.config.memoryMiB,
        cpus: this.opts.config.cpus,
        mac: job.mac,
        disks,
      };
      const image = imageDir(this.opts.dataDir);
      const token = await this.jobs.issueBootToken(job.id, { requester: "127.0.0.1", mac: job.mac, via: "drill", basis: "drill: the server booted its own throwaway machine" });
      const target = this.opts.httpTarget();
      const args = drillQemuArgs(spec, {
        vmlinuz: join(image, "vmlinuz"),
        initramfs: join(image, "initramfs"),
        cmdline: drillCmdline(job.id, token, job.mac),
        forward: `socat STDIO TCP:${target.host}:${target.port}`,
      });
      await this.jobs.recordAction(job.id, "drill", { phase: "restore", accel: accel.name, memoryMiB: spec.memoryMiB, cpus: spec.cpus, firmware: spec.firmware, disks: plan.disks }, ACTOR);
      log.info({ accel: accel.name }, "drill: rescue machine starting");
      const rescue = this.vm(startQemu(args, join(work, "rescue.serial")));
      const ended = await this.waitJobEnd(job.id, rescue, this.opts.config.restoreTimeoutMinutes * 60_000);
      await rescue.kill();
      restoreEnd = Date.now();
      if (ended.state !== "done") {
        const why = ended.state === "active" ? ended.reason : `the restore ended ${ended.state}: ${ended.reason}`;
        return void (await this.end(job, armedAt, { passed: false, reason: why }, accel.name, { restoreEnd }));
      }
      // The restored disk on its own: no kernel given, no way out.
      await this.jobs.recordAction(job.id, "drill", { phase: "boot", ready: ready.source, checks: admin.checks.map((c) => c.spec), address: admin.address }, ACTOR);
      const ports = await Promise.all(admin.checks.map(() => freePort()));
      const diskNet = admin.checks.length ? checkNetdev(admin.address, admin.checks.map((c, i) => ({ hostPort: ports[i]!, guestPort: c.kind === "tcp" ? c.port : 22 }))) : undefined;
      bootStart = Date.now();
      const booted = this.vm(startQemu(drillQemuArgs(spec, undefined, diskNet), join(work, "boot.serial")));
      try {
        await booted.waitSerial(ready, this.opts.config.bootTimeoutSeconds * 1000);
      } catch {
        const why = `the restored system did not show /${ready.source}/ within ${this.opts.config.bootTimeoutSeconds} s${booted.proc.exitCode !== null ? ` (it stopped: QEMU exited ${booted.proc.exitCode})` : ""}; console's last lines: ${consoleTail(booted.serial()) || "(nothing)"}`;
        await booted.kill();
        return void (await this.end(job, armedAt, { passed: false, reason: why }, accel.name, { restoreEnd, bootStart, bootEnd: null }));
      }
      const up = Date.now();
      // The checks, each given until the boot's time is out (services start after the login prompt).
      const until = bootStart + this.opts.config.bootTimeoutSeconds * 1000;
      const results: CheckResult[] = [];
      const halted = () =>
        this.current?.stopping ? "the server stopped during the drill" : booted.proc.exitCode !== null ? `the restored system stopped (QEMU exited ${booted.proc.exitCode})` : null;
      for (const [i, c] of admin.checks.entries()) results.push(await runCheck(c, ports[i]!, until, this.opts.config.sshKey, halted));
      await booted.kill();
      const verdict = checksVerdict(results);
      await this.end(job, armedAt, verdict, accel.name, { restoreEnd, bootStart, bootEnd: up }, results);
      log.info({ passed: verdict.passed }, "drill ended");
    } catch (err) {
      log.error({ err }, "drill failed to run");
      await this.end(job, armedAt, { passed: false, reason: `the drill could not run: ${(err as Error).message}` }, accel.name, { restoreEnd, bootStart, bootEnd: null });
    } finally {
      if (this.current) this.current.vm = undefined;
      rmSync(work, { recursive: true, force: true });
    }
  }

  private vm(vm: Vm): Vm {
    if (this.current) this.current.vm = vm;
    return vm;
  }

  private async firmwareOf(job: JobRecord): Promise<"bios" | "uefi"> {
    const profile = await this.store.profiles.get(job.profile);
    const rec = await this.store.layouts.get(job.hostname!, profile?.layoutVersion ?? undefined);
    const layout = parseLayout(rec!.document);
    return layout.boot.firmware === "uefi" ? "uefi" : "bios";
  }

  /** Waits for the job to end; a machine that stops first, a stop of the server, or the timeout end the wait with why. */
  private async waitJobEnd(id: string, vm: Vm, timeoutMs: number): Promise<{ state: string; reason: string }> {
    const until = Date.now() + timeoutMs;
    let exitedAt: number | null = null;
    for (;;) {
      const job = await this.jobs.get(id);
      if (!isActive(job.state)) return { state: job.state, reason: job.error ?? job.state };
      if (this.current?.stopping) return { state: "active", reason: "the server stopped during the drill" };
      if (vm.proc.exitCode !== null) {
        // Its last report may still be on its way: a moment's grace.
        exitedAt ??= Date.now();
        if (Date.now() - exitedAt > 10_000)
          return { state: "active", reason: `the rescue machine stopped (QEMU exited ${vm.proc.exitCode}) with the job ${job.state} at step ${job.step} of ${job.steps}; console's last lines: ${consoleTail(vm.serial()) || "(nothing)"}` };
      }
      if (Date.now() > until) return { state: "active", reason: `the restore did not end within drill.restoreTimeoutMinutes (${this.opts.config.restoreTimeoutMinutes}); console's last lines: ${consoleTail(vm.serial())}` };
      await sleep(1000);
    }
  }

  /** Records the drill's result: the job failed when it is still active, its `drill-result` event, the host's last drill. */
  private async end(
    job: JobRecord,
    armedAt: number,
    verdict: { passed: boolean; reason: string | null },
    accel: string | null,
    times: { restoreEnd?: number | null; bootStart?: number | null; bootEnd?: number | null } = {},
    checks?: CheckResult[],
  ): Promise<JobRecord> {
    let now = await this.jobs.get(job.id);
    if (!verdict.passed && isActive(now.state)) now = await this.jobs.fail(job.id, `drill: ${verdict.reason}`, ACTOR);
    const events = await this.store.jobs.events(job.id);
    const planAt = events.find((e) => e.type === "plan")?.at;
    const summary: DrillSummary = {
      job: job.id,
      host: job.hostname!,
      endedAt: new Date().toISOString(),
      passed: verdict.passed,
      reason: verdict.reason,
      restoreSeconds: planAt && times.restoreEnd ? seconds(Date.parse(planAt), times.restoreEnd) : null,
      bootSeconds: times.bootStart && times.bootEnd ? seconds(times.bootStart, times.bootEnd) : null,
      recoverSeconds: verdict.passed && times.bootEnd ? seconds(armedAt, times.bootEnd) : null,
      bytes: now.bytesDone,
      accel,
      ...(checks?.length ? { checks } : {}),
    };
    await this.jobs.recordAction(job.id, "drill-result", { ...summary }, ACTOR);
    await recordDrill(this.store, summary);
    return this.jobs.get(job.id);
  }

  /** Stops a drill under way (server stop): its machine is killed and the drill fails, saying so. */
  async stop(): Promise<void> {
    if (!this.current) return;
    this.current.stopping = true;
    await this.current.vm?.kill();
    await this.running;
  }
}
