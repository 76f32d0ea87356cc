import { ConflictError, UserError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ArmRequest, JobService } from "../jobs/job-service.ts";
import type { HostRecord, JobRecord, Store } from "../store/types.ts";
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
  type PowerStep,
  describePowerSteps,
  netBootOf,
  planArmPower,
  powerTarget,
} from "./power.ts";
import { RedfishDriver } from "./redfish.ts";
import { WolDriver } from "./wol.ts";

export interface PowerServiceOptions {
  /** The boot interface (listen.interface): where Wake-on-LAN packets go out. */
  bootInterface: string;
  log: Logger;
  /** How long a forced power-off may take to show as off, and how often it is asked. */
  confirmOffMs?: number;
  pollMs?: number;
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
    const config = rec.config;
    switch (config.kind) {
      case "ipmi":
        return { driver: new IpmiDriver(config, (await this.store.power.secret(host.name)) ?? ""), config };
      case "redfish":
        return { driver: new RedfishDriver(config, (await this.store.power.secret(host.name)) ?? ""), config };
      case "wol": {
        const mac = host.macs[0];
        if (!mac) throw new UserError(`host ${host.name} has no MAC to wake`, 2);
        return { driver: new WolDriver(mac, this.opts.bootInterface), config };
      }
    }
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

  /**
   * `jobs arm --power`: the machine's state first (a machine that is on is refused unless
   * `force`, before anything is armed); then the job is armed and the steps run, each in the
   * job's history. A BMC that fails after arming leaves the job armed, for a manual power-on,
   * and says so in one line.
   */
  async armWithPower(req: ArmRequest, force: boolean): Promise<{ job: JobRecord; power: ArmPowerResult }> {
    const host = await this.store.hosts.byMac(req.mac);
    if (!host) throw new UserError(`${req.mac} belongs to no host: --power uses the power config of the host that owns the MAC`, 2);
    const { driver, config } = await this.driverFor(host);
    const target = `${powerTarget(config)} (${host.name})`;
    let before: PowerState | undefined;
    let statusError: PowerError | undefined;
    try {
      before = driver.can.status ? await driver.status() : "unknown";
    } catch (err) {
      if (!(err instanceof PowerError)) throw err;
      statusError = err;
    }
    const plan = before === undefined ? undefined : planArmPower({ host: host.name, state: before, force, can: driver.can });
    if (plan && !plan.ok) {
      await this.store.audit.append({ actor: req.actor, action: "host.power", target: `host:${host.name}`, detail: { action: "arm", via: config.kind, state: before, refused: plan.reason } });
      throw new ConflictError(plan.reason);
    }
    const job = await this.jobs.arm(req);
    const record = (data: Record<string, unknown>) => this.jobs.recordAction(job.id, "power", { via: config.kind, target: powerTarget(config), ...data }, req.actor);
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
    this.opts.log.info({ job: job.id, host: host.name, via: config.kind, steps: plan.steps }, "job armed and powered");
    return {
      job,
      power: { host: host.name, via: config.kind, target, before: before!, steps: plan.steps, netBoot, firmware, summary: describePowerSteps(plan.steps, netBoot, firmware), notes: plan.notes },
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
