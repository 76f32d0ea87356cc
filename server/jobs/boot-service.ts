/**
 * The boot service: the one place asked what a booting machine gets. The DHCP server tells it
 * what it answered (`dhcpAnswered`, `dhcpRequested`); GET /boot/ipxe asks `boot` (which issues
 * the token the policy allows); `lifeboat hosts boot-script` asks `previewBoot` (which issues
 * nothing). The decision itself is pure (boot-policy.ts); this gathers its facts and carries it
 * out: arms a clone, issues the token, records refusals in the job and the audit log.
 *
 * DHCP answers are kept in memory only: they matter for the two minutes a boot takes, and a
 * restarted server has not answered anyone (the machine boots again).
 */
import type { DhcpMode } from "../config/schema.ts";
import { ConflictError, NotFoundError, RefusedError, UserError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { recognisedUuid } from "../smbios-uuid.ts";
import type { JobRecord, Store } from "../store/types.ts";
import { hashToken, newOneTimeCode, normaliseOneTimeCode } from "../tokens.ts";
import {
  type BootDecision,
  type DhcpAnswer,
  DHCP_ANSWER_WINDOW_MS,
  ONE_TIME_CODE_MAX_HOURS,
  ONE_TIME_CODE_WINDOW_MS,
  type OneTimeCode,
  bootFor,
  oneTimeCodeRefusal,
} from "./boot-policy.ts";
import { PREVIEW_TOKEN, type ScriptFormat, machineScript } from "./boot-scripts.ts";
import { isBootable } from "./job-state.ts";
import type { JobService } from "./job-service.ts";

/** What the DHCP server tells the boot service (server/dhcp/server.ts). */
export interface DhcpWitness {
  /** Lifeboat's DHCP pointed this MAC at its boot file; `address`: the client's, if the packet shows it. */
  dhcpAnswered(mac: string, address: string | null): void;
  /** A REQUEST from this MAC names the address it takes (the LAN server's offer, in proxy mode). */
  dhcpRequested(mac: string, address: string): void;
}

/** The address of a request as the policy compares it: an IPv4-mapped IPv6 one as plain IPv4. */
export function requesterAddress(ip: string): string {
  return ip.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");
}

/** The active job for a booting machine that may still boot, if any (see activeJobForMachine). */
export async function jobForMachine(store: Store, mac: string, uuid?: string): Promise<{ job: JobRecord; via: string } | undefined> {
  const found = await activeJobForMachine(store, mac, uuid);
  return found && isBootable(found.job) ? found : undefined;
}

/**
 * The active job for a booting machine: by its MAC, else through the host it belongs to
 * (by this MAC or by SMBIOS UUID) and that host's other MACs, so a multi-NIC server or a
 * docked laptop booting from another NIC is still found.
 */
export async function activeJobForMachine(store: Store, mac: string, uuid?: string): Promise<{ job: JobRecord; via: string } | undefined> {
  const direct = await store.jobs.activeForMac(mac);
  if (direct) return { job: direct, via: "mac" };
  const hosts = [];
  const byMac = await store.hosts.byMac(mac);
  if (byMac) hosts.push(byMac);
  const wanted = recognisedUuid(uuid);
  if (wanted.length) hosts.push(...(await store.hosts.list()).filter((h) => h.smbiosUuid && wanted.includes(h.smbiosUuid.toLowerCase())));
  for (const h of hosts) {
    for (const m of h.macs) {
      const job = await store.jobs.activeForMac(m);
      if (job) return { job, via: `host ${h.name}` };
    }
  }
  return undefined;
}

export interface BootRequest {
  mac: string;
  uuid?: string;
  /** The address the request came from. */
  requester: string;
  /** The base URL the machine reached us at (boot-scripts.ts bootBaseUrl). */
  base: string;
  /** Who asks: iPXE (default) or the signed GRUB. */
  format?: ScriptFormat;
}

export class BootService implements DhcpWitness {
  /** Lifeboat's latest DHCP answer per MAC that no token has used yet. */
  private readonly answers = new Map<string, DhcpAnswer>();
  /** One-time codes by their hash (ISO/USB boots): never the code itself. */
  private readonly codes = new Map<string, OneTimeCode>();
  /** Each requester's wrong codes (times), within the window. */
  private readonly wrongCodes = new Map<string, number[]>();

  constructor(
    private readonly store: Store,
    private readonly jobs: JobService,
    private readonly opts: { dhcpMode: DhcpMode; log: Logger; now?: () => number },
  ) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  dhcpAnswered(mac: string, address: string | null): void {
    this.prune();
    // A later exchange of the same boot (iPXE's own DHCP after the ROM's) keeps the address already seen.
    const seen = this.answers.get(mac)?.address ?? null;
    this.answers.set(mac, { at: this.now(), address: address ?? seen });
  }

  dhcpRequested(mac: string, address: string): void {
    const a = this.answers.get(mac);
    if (a && this.now() - a.at <= DHCP_ANSWER_WINDOW_MS) a.address = address;
  }

  /** Answers older than the window vouch for nobody: dropped so the map stays small. */
  private prune(): void {
    const oldest = this.now() - DHCP_ANSWER_WINDOW_MS;
    for (const [mac, a] of this.answers) if (a.at < oldest) this.answers.delete(mac);
  }

  /** The facts the policy decides on, read from the store and the answers. */
  private async decide(mac: string, uuid: string | undefined, requester: string): Promise<BootDecision> {
    const found = await jobForMachine(this.store, mac, uuid);
    const cloneWindow = found ? undefined : await this.jobs.cloneWindow();
    return bootFor({
      mac,
      requester,
      now: this.now(),
      dhcpMode: this.opts.dhcpMode,
      found,
      answer: this.answers.get(mac),
      cloneWindow,
      knownMachine: cloneWindow ? await this.jobs.isKnownMachine(mac) : true,
    });
  }

  /** A machine's iPXE asks for its script: the rescue system with a fresh token if the policy allows, else `exit`. */
  async boot(r: BootRequest): Promise<{ script: string; decision: BootDecision }> {
    const log = this.opts.log.child({ mac: r.mac, uuid: r.uuid, requester: r.requester });
    const decision = await this.decide(r.mac, r.uuid, r.requester);
    if (decision.kind === "local") {
      if (decision.refused) {
        log.warn({ job: decision.job?.id }, `boot refused: ${decision.reason}`);
        const refusal = { requester: r.requester, mac: r.mac, reason: decision.reason };
        if (decision.job) await this.jobs.bootRefused(decision.job.id, refusal);
        else await this.store.audit.append({ actor: `boot:${r.requester}`, action: "clone-window.boot-refused", target: `mac:${r.mac}`, detail: refusal });
      } else log.info(`exit to local boot: ${decision.reason}`);
      return { script: machineScript({ base: r.base, mac: r.mac, format: r.format }), decision };
    }
    const job = decision.kind === "rescue" ? decision.job : await this.jobs.armFromCloneWindow(r.mac);
    if (!job) {
      log.info("exit to local boot: the clone window closed meanwhile");
      return { script: machineScript({ base: r.base, mac: r.mac, format: r.format }), decision };
    }
    // One token per DHCP answer: a second request of the same boot, from anyone, gets none.
    if (decision.usesAnswer) this.answers.delete(r.mac);
    const via = decision.kind === "rescue" ? decision.via : "clone window";
    let token: string;
    try {
      token = await this.jobs.issueBootToken(job.id, { requester: r.requester, mac: r.mac, via, basis: decision.basis });
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      // Another live server took this boot (two servers answered it): that one serves it, this one sends the machine on.
      log.warn({ job: job.id }, `boot refused: ${err.message}`);
      await this.jobs.bootRefused(job.id, { requester: r.requester, mac: r.mac, reason: err.message });
      return { script: machineScript({ base: r.base, mac: r.mac }), decision };
    }
    log.info({ job: job.id, via, basis: decision.basis }, "rescue system for an active job");
    return { script: machineScript({ base: r.base, mac: r.mac, job, token, net: job.options.rescueNet, format: r.format }), decision };
  }

  /**
   * A one-time code for a job's machine booting from an ISO or USB stick (`jobs code`, `image iso
   * --host`): valid `validHours`, traded once for a boot token (`redeemCode`); a new code for the
   * same job ends the previous one. The code is returned once and kept only as its hash.
   */
  async issueCode(jobId: string, validHours: number, actor: string): Promise<{ code: string; job: string; expiresAt: string }> {
    if (!(validHours > 0 && validHours <= ONE_TIME_CODE_MAX_HOURS)) throw new UserError(`validHours: between 0 and ${ONE_TIME_CODE_MAX_HOURS}, got ${validHours}`, 2);
    const job = await this.store.jobs.get(jobId);
    if (!job) throw new NotFoundError(`no job ${jobId}`);
    if (job.kind === "drill") throw new ConflictError(`job ${jobId} is a drill: its machine is started by the server, no code boots it`);
    if (!isBootable(job)) throw new ConflictError(`job ${jobId} is ${job.state}: it boots no machine any more`);
    this.pruneCodes();
    for (const [h, c] of this.codes) if (c.job === jobId && !c.used) this.codes.delete(h);
    const code = newOneTimeCode();
    const now = this.now();
    const entry: OneTimeCode = { job: jobId, issuedAt: now, expiresAt: now + validHours * 3600_000 };
    this.codes.set(hashToken(normaliseOneTimeCode(code)), entry);
    const expiresAt = new Date(entry.expiresAt).toISOString();
    await this.jobs.recordAction(jobId, "code-issued", { expiresAt }, actor);
    return { code, job: jobId, expiresAt };
  }

  /**
   * The agent of a machine booted from an ISO or USB stick trades its one-time code for its job and
   * a fresh boot token, once (server/jobs/boot-policy.ts oneTimeCodeRefusal). A refusal is a
   * RefusedError naming why, in the job's history when the code named a job, and in the audit log.
   */
  async redeemCode(typed: string, requester: string, mac: string | undefined): Promise<{ job: JobRecord; token: string }> {
    this.pruneCodes();
    const now = this.now();
    const hash = hashToken(normaliseOneTimeCode(typed));
    const entry = this.codes.get(hash);
    const job = entry ? await this.store.jobs.get(entry.job) : undefined;
    const wrong = (this.wrongCodes.get(requester) ?? []).filter((t) => now - t < ONE_TIME_CODE_WINDOW_MS);
    const reason = oneTimeCodeRefusal({ entry, job, bootable: job ? isBootable(job) : false, wrongRecently: wrong.length, now });
    const log = this.opts.log.child({ requester, mac });
    if (reason) {
      if (!entry) this.wrongCodes.set(requester, [...wrong, now]);
      log.warn({ job: entry?.job }, `one-time code refused: ${reason}`);
      const refusal = { requester, mac: mac ?? job?.mac ?? "", reason };
      if (job) await this.jobs.bootRefused(job.id, refusal);
      else await this.store.audit.append({ actor: `boot:${requester}`, action: "code.refused", target: "code", detail: refusal });
      throw new RefusedError(reason);
    }
    // Spent before the token is issued: of two racing trades of one code, only the first gets here.
    entry!.used = { at: now, by: requester };
    const token = await this.jobs.issueBootToken(job!.id, { requester, mac: mac ?? job!.mac, via: "one-time code", basis: "one-time code typed or carried on the boot medium" });
    log.info({ job: job!.id }, "rescue system from a boot medium: one-time code traded for a boot token");
    return { job: job!, token };
  }

  /** Codes past their expiry, and wrong tries past the window, are forgotten. */
  private pruneCodes(): void {
    const now = this.now();
    for (const [h, c] of this.codes) if (now > c.expiresAt) this.codes.delete(h);
    for (const [r, ts] of this.wrongCodes) if (ts.every((t) => now - t >= ONE_TIME_CODE_WINDOW_MS)) this.wrongCodes.delete(r);
  }

}

/** What a MAC would get now, issuing nothing (`lifeboat hosts boot-script`, on the store alone); the token is a placeholder. */
export async function previewBoot(store: Store, mac: string, uuid: string | undefined, base: string, format: ScriptFormat = "ipxe") {
  const found = await jobForMachine(store, mac, uuid);
  return {
    mac,
    job: found?.job.id ?? null,
    via: found?.via ?? null,
    format,
    script: machineScript({ base, mac, job: found?.job, token: found ? PREVIEW_TOKEN : undefined, net: found?.job.options.rescueNet, format }),
  };
}
