import { randomBytes } from "node:crypto";
import type { Service } from "../context.ts";
import { ConflictError, UserError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ArmRequest, JobService } from "../jobs/job-service.ts";
import { TERMINAL_STATES, isActive } from "../jobs/job-state.ts";
import type { HostRecord, JobEvent, JobRecord, Store } from "../store/types.ts";
import { IpmiDriver } from "./ipmi.ts";
import {
  type Firmware,
  type NetBoot,
  type PowerAction,
  type PowerConfig,
  type PowerDriver,
  PowerError,
  type PowerKind,
  type PowerState,
  type PowerPlan,
  type PowerStep,
  type RecordedPowerStep,
  describePowerSteps,
  netBootOf,
  planAfterEnd,
  planArmPower,
  powerTarget,
} from "./power.ts";
import { type PowerWaveEntry, planWaves } from "./waves.ts";
import { RedfishDriver } from "./redfish.ts";
import { WolDriver } from "./wol.ts";

export interface PowerServiceOptions {
  /** The boot interface (listen.interface): where Wake-on-LAN packets go out. */
  bootInterface: string;
  log: Logger;
  /** How many machines of powered batches may load the server at once (config power.waveSize). */
  waveSize: number;
  /** Builds a host's driver; the real ones (powerDriver) unless a test stands in for the BMCs. */
  driver?: typeof powerDriver;
  /** How long a forced power-off may take to show as off, and how often it is asked. */
  confirmOffMs?: number;
  pollMs?: number;
}

/** The driver a host's power config names, with its opened password (the edges: ipmi.ts, redfish.ts, wol.ts). */
export function powerDriver(host: HostRecord, config: PowerConfig, secret: string, bootInterface: string): PowerDriver {
  switch (config.kind) {
    case "ipmi":
      return new IpmiDriver(config, secret);
    case "redfish":
      return new RedfishDriver(config, secret);
    case "wol": {
      const mac = host.macs[0];
      if (!mac) throw new UserError(`host ${host.name} has no MAC to wake`, 2);
      return new WolDriver(mac, bootInterface);
    }
  }
}

/** What a power action did, as the API, CLI and page show it. */
export interface PowerResult {
  host: string;
  via: PowerKind;
  target: string;
  action: PowerAction;
  state: PowerState;
}

/** What `jobs arm --power` did to the machine. */
export interface ArmPowerResult {
  host: string;
  via: PowerKind;
  target: string;
  /** The state found before anything was done. */
  before: PowerState;
  steps: PowerStep[];
  netBoot: NetBoot;
  /** How the one-time boot was set; null when none was (Wake-on-LAN). */
  firmware: Firmware | null;
  /** The steps in words. */
  summary: string;
  notes: string[];
}

/** The host's power config as shown: never the password, only whether one is stored. */
export function powerConfigView(host: string, config: PowerConfig, hasSecret: boolean) {
  return { host, ...config, target: powerTarget(config), hasPassword: hasSecret };
}

/**
 * Power control as the admin drives it: a host's power config (its BMC password sealed in the
 * store, never shown or logged), power actions on a host, and the power half of
 * `jobs arm --power`. Every use of a host's credentials is audited, with its outcome; the
 * power actions of a job are in its history too.
 */
export class PowerService {
  constructor(
    private readonly store: Store,
    private readonly jobs: JobService,
    private readonly opts: PowerServiceOptions,
  ) {}

  async configure(host: string, config: PowerConfig, password: string | null, actor: string) {
    if (!(await this.store.hosts.get(host))) throw new UserError(`no host named ${host}`, 2);
    if (config.kind !== "wol" && !password) throw new UserError(`${config.kind} needs the BMC user's password (--password-file)`, 2);
    const rec = await this.store.power.put(host, config, config.kind === "wol" ? null : password);
    await this.store.audit.append({ actor, action: "host.power-config", target: `host:${host}`, detail: { ...config, password: rec.hasSecret ? "(sealed)" : null } });
    return powerConfigView(host, rec.config, rec.hasSecret);
  }

  async view(host: string) {
    const rec = await this.store.power.get(host);
    if (!rec) throw new UserError(`host ${host} has no power config (lifeboat hosts power-config ${host} --ipmi|--redfish|--wol)`, 2);
    return powerConfigView(host, rec.config, rec.hasSecret);
  }

  /** The driver for a host, its credentials opened (the caller audits their use). */
  private async driverFor(host: HostRecord): Promise<{ driver: PowerDriver; config: PowerConfig }> {
    const rec = await this.store.power.get(host.name);
    if (!rec) throw new UserError(`host ${host.name} has no power config (lifeboat hosts power-config ${host.name} --ipmi|--redfish|--wol)`, 2);
    const secret = rec.hasSecret ? ((await this.store.power.secret(host.name)) ?? "") : "";
    return { driver: (this.opts.driver ?? powerDriver)(host, rec.config, secret, this.opts.bootInterface), config: rec.config };
  }

  private async host(name: string): Promise<HostRecord> {
    const h = await this.store.hosts.get(name);
    if (!h) throw new UserError(`no host named ${name}`, 2);
    return h;
  }

  /** `hosts power NAME ACTION`: "on" of a machine that is on does nothing (never a hidden cycle). */
  async act(name: string, action: PowerAction, actor: string): Promise<PowerResult> {
    const host = await this.host(name);
    const { driver, config } = await this.driverFor(host);
    const audit = (detail: Record<string, unknown>) =>
      this.store.audit.append({ actor, action: "host.power", target: `host:${name}`, detail: { action, via: config.kind, target: powerTarget(config), ...detail } });
    try {
      let state = driver.can.status ? await driver.status() : "unknown";
      if (action === "on" && state !== "on") await driver.on();
      if (action === "off") await driver.off();
      if (action === "cycle") await driver.cycle();
      if (action !== "status" && driver.can.status) state = await driver.status();
      await audit({ state });
      return { host: name, via: config.kind, target: powerTarget(config), action, state };
    } catch (err) {
      await audit({ error: (err as Error).message });
      throw err;
    }
  }

  /** The host owning a MAC, and its power driver; a one-line refusal when either is missing. */
  private async driverForMac(mac: string): Promise<{ host: HostRecord; driver: PowerDriver; config: PowerConfig }> {
    const host = await this.store.hosts.byMac(mac);
    if (!host) throw new UserError(`${mac} belongs to no host: --power uses the power config of the host that owns the MAC`, 2);
    return { host, ...(await this.driverFor(host)) };
  }

  /** The machine's state, or the BMC's failure to tell it (kept: after arming it is one line naming the job). */
  private async probe(driver: PowerDriver): Promise<{ before?: PowerState; statusError?: PowerError }> {
    try {
      return { before: driver.can.status ? await driver.status() : "unknown" };
    } catch (err) {
      if (!(err instanceof PowerError)) throw err;
      return { statusError: err };
    }
  }

  /**
   * `jobs arm --power`: the machine's state first (a machine that is on is refused unless
   * `force`, before anything is armed); then the job is armed and the steps run, each in the
   * job's history. A BMC that fails after arming leaves the job armed, for a manual power-on,
   * and says so in one line.
   */
  async armWithPower(req: ArmRequest, force: boolean): Promise<{ job: JobRecord; power: ArmPowerResult }> {
    const { host, driver, config } = await this.driverForMac(req.mac);
    const { before, statusError } = await this.probe(driver);
    const plan = before === undefined ? undefined : planArmPower({ host: host.name, state: before, force, can: driver.can });
    if (plan && !plan.ok) {
      await this.store.audit.append({ actor: req.actor, action: "host.power", target: `host:${host.name}`, detail: { action: "arm", via: config.kind, state: before, refused: plan.reason } });
      throw new ConflictError(`${plan.reason} (nothing armed)`);
    }
    const job = await this.jobs.arm(req);
    return { job, power: await this.powerArmed(job, host, driver, config, { before, statusError, plan }, req.actor) };
  }

  /**
   * Runs the power plan of an armed job's machine, each step in the job's history. A BMC that
   * fails leaves the job armed and says so in one line (PowerError).
   */
  private async powerArmed(
    job: JobRecord,
    host: HostRecord,
    driver: PowerDriver,
    config: PowerConfig,
    found: { before?: PowerState; statusError?: PowerError; plan?: PowerPlan },
    actor: string,
  ): Promise<ArmPowerResult> {
    const { before, statusError, plan } = found;
    const record = (data: Record<string, unknown>) => this.jobs.recordAction(job.id, "power", { via: config.kind, target: powerTarget(config), ...data }, actor);
    const armedButFailed = async (step: string, err: PowerError): Promise<never> => {
      await record({ step, error: err.message });
      throw new PowerError(err.failure, `${err.message}; ${job.id} stays armed: power ${host.name} on by hand`);
    };
    if (statusError || !plan?.ok) return armedButFailed("status", statusError!);
    // Only a one-time boot needs the firmware (Wake-on-LAN sets none); UEFI's flag differs from BIOS's.
    const firmware = plan.steps.includes("set-boot") ? await this.firmwareOf(job) : null;
    const netBoot = netBootOf(config);
    await record({ step: "status", state: before, plan: plan.steps });
    for (const step of plan.steps) {
      try {
        await this.runStep(driver, step, netBoot, firmware, host.name);
      } catch (err) {
        if (err instanceof PowerError) await armedButFailed(step, err);
        throw err;
      }
      await record({ step, ...(step === "set-boot" ? { netBoot, firmware } : {}) });
    }
    this.opts.log.info({ job: job.id, host: host.name, via: config.kind, steps: plan.steps }, "job's machine powered");
    return {
      host: host.name,
      via: config.kind,
      target: `${powerTarget(config)} (${host.name})`,
      before: before!,
      steps: plan.steps,
      netBoot,
      firmware,
      summary: describePowerSteps(plan.steps, netBoot, firmware),
      notes: plan.notes,
    };
  }

  /**
   * `jobs arm --clone P --macs FILE --power`: every MAC must belong to a host with a power config
   * (checked before anything is armed); all are armed, each with its place in the batch, and the
   * wave scheduler powers them power.waveSize at a time. Answers once the first wave was powered.
   */
  async armWave(reqs: ArmRequest[], force: boolean, actor: string): Promise<JobRecord[]> {
    for (const r of reqs) {
      const host = await this.store.hosts.byMac(r.mac);
      if (!host) throw new UserError(`${r.mac} belongs to no host: --power uses the power config of the host that owns the MAC (nothing armed)`, 2);
      if (!(await this.store.power.get(host.name)))
        throw new UserError(`host ${host.name} (${r.mac}) has no power config (lifeboat hosts power-config ${host.name} --ipmi|--redfish|--wol); nothing armed`, 2);
    }
    const wave = `wave-${randomBytes(4).toString("hex")}`;
    const queuedAt = new Date().toISOString();
    const armed: JobRecord[] = [];
    for (const [i, r] of reqs.entries())
      armed.push(await this.jobs.arm({ ...r, powerWave: { wave, position: i + 1, of: reqs.length, queuedAt, status: "waiting", force, note: null } }));
    await this.store.audit.append({ actor, action: "job.power-wave", target: `wave:${wave}`, detail: { jobs: armed.map((j) => j.id), force, waveSize: this.opts.waveSize } });
    this.opts.log.info({ wave, machines: armed.length, waveSize: this.opts.waveSize }, "batch armed; powering it in waves");
    await this.kickWaves();
    return Promise.all(armed.map((j) => this.jobs.get(j.id)));
  }

  private wavePass: Promise<void> | undefined;
  private waveAgain = false;

  /**
   * Runs the wave scheduler now, or once more after the pass under way (passes never overlap:
   * two could power the same machine). Resolves when no pass is left to run.
   */
  kickWaves(): Promise<void> {
    if (this.wavePass) {
      this.waveAgain = true;
      return this.wavePass;
    }
    const loop = async () => {
      do {
        this.waveAgain = false;
        try {
          await this.runWaves();
        } catch (err) {
          this.opts.log.error({ err }, "power wave pass failed");
        }
      } while (this.waveAgain);
    };
    this.wavePass = loop().finally(() => {
      this.wavePass = undefined;
    });
    return this.wavePass;
  }

  /** One pass of the wave scheduler (waves.ts) over the stored batches, its actions run one by one. */
  private async runWaves(): Promise<void> {
    const jobs = await this.store.jobs.inPowerWaves();
    for (const action of planWaves(jobs, this.opts.waveSize)) {
      const job = jobs.find((j) => j.id === action.job)!;
      const entry = job.powerWave!;
      if (action.do === "skip") {
        await this.jobs.setPowerWave(job.id, { ...entry, status: "skipped", note: action.note });
        continue;
      }
      // Marked before the BMC is asked: a restart mid-way leaves it powered, never powered twice.
      await this.jobs.setPowerWave(job.id, { ...entry, status: "powered", note: null });
      await this.jobs.setPowerWave(job.id, { ...entry, ...(await this.powerTurn(job, entry)) });
    }
  }

  /** Powers one machine at its turn: what its batch entry becomes. */
  private async powerTurn(job: JobRecord, entry: PowerWaveEntry): Promise<Pick<PowerWaveEntry, "status" | "note">> {
    const actor = "power-wave";
    try {
      const { host, driver, config } = await this.driverForMac(job.mac);
      const { before, statusError } = await this.probe(driver);
      const plan = before === undefined ? undefined : planArmPower({ host: host.name, state: before, force: entry.force, can: driver.can });
      if (plan && !plan.ok) {
        // On at its turn: nothing is cycled, and its job is cancelled so no later boot of it is cloned.
        const note = `${plan.reason} (its job cancelled)`;
        await this.jobs.recordAction(job.id, "power", { via: config.kind, target: powerTarget(config), step: "status", state: before, refused: note }, actor);
        await this.jobs.cancel(job.id, actor);
        return { status: "refused", note };
      }
      const r = await this.powerArmed(job, host, driver, config, { before, statusError, plan }, actor);
      return { status: "powered", note: r.summary };
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      this.opts.log.warn({ job: job.id, err: err.message }, "power wave: a machine was not powered");
      return { status: "failed", note: err.message };
    }
  }

  private afterEndRunning = new Set<string>();

  /**
   * Once a job has ended, the one-time boot override its arm set is cleared (planAfterEnd), so
   * the next boot is the disk's; in the job's history either way. Never throws: a BMC's failure
   * is recorded and logged.
   */
  async afterEnd(id: string): Promise<void> {
    if (this.afterEndRunning.has(id)) return;
    this.afterEndRunning.add(id);
    try {
      const job = await this.jobs.get(id);
      const history = powerHistory(await this.jobs.events(id));
      // Most jobs were never powered: no driver built, no credentials opened.
      if (isActive(job.state) || !history.some((h) => h.step === "set-boot")) return;
      const host = await this.store.hosts.byMac(job.mac);
      if (!host || !(await this.store.power.get(host.name))) return;
      const { driver, config } = await this.driverFor(host);
      for (const step of planAfterEnd({ ended: true, history, can: driver.can })) {
        const record = (data: Record<string, unknown>) => this.jobs.recordAction(id, "power", { via: config.kind, target: powerTarget(config), step, ...data }, "power-after-end");
        try {
          await this.runStep(driver, step, netBootOf(config), null, host.name);
          await record({ jobState: job.state });
        } catch (err) {
          if (!(err instanceof PowerError)) throw err;
          this.opts.log.warn({ job: id, host: host.name, err: err.message }, "the one-time boot override was not cleared");
          await record({ jobState: job.state, error: err.message });
        }
      }
    } catch (err) {
      this.opts.log.error({ err, job: id }, "power after the job's end failed");
    } finally {
      this.afterEndRunning.delete(id);
    }
  }

  /**
   * The part of `serve` that follows jobs: when a job in a powered batch changes state the wave
   * scheduler runs, and a job that ended gets its boot override cleared. At start, both catch
   * up with what happened while the server was down (the batches are stored with their jobs).
   */
  followUp(): Service {
    const pending = new Set<Promise<void>>();
    const track = (p: Promise<void>) => {
      pending.add(p);
      void p.finally(() => pending.delete(p));
    };
    // A batch moves on when one of its jobs changes state; the progress an agent posts does not
    // move it, so it asks for no pass (each pass is a store query over every batch).
    const stateOf = new Map<string, JobRecord["state"]>();
    const onJob = (job: JobRecord) => {
      if (job.powerWave && stateOf.get(job.id) !== job.state) {
        stateOf.set(job.id, job.state);
        track(this.kickWaves());
      }
      if (!isActive(job.state)) {
        stateOf.delete(job.id);
        track(this.afterEnd(job.id));
      }
    };
    return {
      name: "power",
      start: async () => {
        this.jobs.changes.on("job", onJob);
        track(this.kickWaves());
        // Recently ended jobs whose override may still be set (the server stopped before it was cleared).
        for (const j of await this.store.jobs.list({ state: [...TERMINAL_STATES], limit: 50 })) track(this.afterEnd(j.id));
        return `batches powered ${this.opts.waveSize} machines at a time (power.waveSize); boot overrides cleared when a job ends`;
      },
      stop: async (graceMs) => {
        this.jobs.changes.off("job", onJob);
        // Work under way (a BMC being asked) gets graceMs; the timer is cleared so it holds no exit.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([Promise.allSettled([...pending]), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
        clearTimeout(timer);
      },
    };
  }

  private async runStep(driver: PowerDriver, step: PowerStep, netBoot: NetBoot, firmware: Firmware | null, host: string): Promise<void> {
    switch (step) {
      case "off":
        return driver.off();
      case "confirm-off": {
        const until = Date.now() + (this.opts.confirmOffMs ?? 60_000);
        while ((await driver.status()) !== "off") {
          if (Date.now() > until) throw new PowerError("refused", `${host} did not power off within ${Math.round((this.opts.confirmOffMs ?? 60_000) / 1000)} s`);
          await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 1000));
        }
        return;
      }
      case "set-boot":
        return driver.setOneTimeBoot(netBoot, firmware!);
      case "clear-boot":
        return driver.clearOneTimeBoot();
      case "on":
      case "wake":
        return driver.on();
    }
  }

  /** How the job's machine boots: the firmware of the layout its plan restores. */
  private async firmwareOf(job: JobRecord): Promise<Firmware> {
    const profile = await this.store.profiles.get(job.profile);
    const layout = profile && (await this.store.layouts.get(profile.host, profile.layoutVersion ?? undefined));
    const firmware = (layout?.document as { boot?: { firmware?: unknown } } | undefined)?.boot?.firmware;
    if (firmware !== "bios" && firmware !== "uefi") throw new UserError(`profile ${job.profile}: its layout names no boot firmware (bios or uefi)`, 2);
    return firmware;
  }
}

/** The power steps a job's history holds, in order (its "power" events). */
export function powerHistory(events: JobEvent[]): RecordedPowerStep[] {
  return events
    .filter((e) => e.type === "power")
    .map((e) => e.data as { step?: RecordedPowerStep["step"]; error?: string })
    .filter((d): d is RecordedPowerStep => typeof d.step === "string")
    .map((d) => (d.error === undefined ? { step: d.step } : { step: d.step, error: d.error }));
}
