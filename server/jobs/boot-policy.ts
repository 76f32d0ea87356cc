/**
 * Which machine boots what, as a pure decision (pixiecore's Booter is the model): the boot
 * service gathers the facts (the machine's active job, the clone window, what Lifeboat's DHCP
 * answered) and asks `bootFor`; the DHCP server, GET /boot/ipxe and `hosts boot-script` all
 * go through that service.
 *
 * A boot token goes only to the requester that Lifeboat's own DHCP (proxy or full) just
 * answered for that MAC, once per DHCP answer: a MAC is no secret (ARP, labels, switch tables),
 * but being the address our DHCP answered a moment ago is harder to fake. With dhcp.mode off
 * there is no answer to check: only a job the admin armed with trustHttpBoot gets a token then.
 */
import type { DhcpMode } from "../config/schema.ts";
import { macUnderPrefix } from "../mac.ts";
import type { JobRecord } from "../store/types.ts";
import type { CloneWindow } from "./job-service.ts";

/** How long after Lifeboat's DHCP answered a MAC its iPXE may ask for the boot script (a boot takes seconds). */
export const DHCP_ANSWER_WINDOW_MS = 120_000;

/** Lifeboat's DHCP answered this MAC's network boot at `at` (ms); `address`: the client's, null until seen. */
export interface DhcpAnswer {
  at: number;
  address: string | null;
}

export interface BootState {
  mac: string;
  /** The address the script request came from. */
  requester: string;
  now: number;
  dhcpMode: DhcpMode;
  /** The machine's active job that may still boot (by its MAC, its host's other MACs or its SMBIOS UUID). */
  found?: { job: JobRecord; via: string };
  /** The latest DHCP answer for this MAC not yet used for a token. */
  answer?: DhcpAnswer;
  /** The open clone window, if any. */
  cloneWindow?: CloneWindow;
  /** Does Lifeboat know this machine already (a host's MAC, an assignment, a past job)? A known machine never becomes a clone. */
  knownMachine: boolean;
}

/** What vouches for the requester: Lifeboat's DHCP answer, or the admin's say-so for the job (trustHttpBoot). */
export type BootBasis = "dhcp-answer" | "trusted-http-boot";

export type BootDecision =
  /** The rescue system with a fresh token; `usesAnswer`: the DHCP answer is spent (one token per boot). */
  | { kind: "rescue"; job: JobRecord; via: string; basis: BootBasis; usesAnswer: boolean }
  /** Arm the next clone from the open window, then the rescue system as for "rescue". */
  | { kind: "clone"; window: CloneWindow; basis: BootBasis; usesAnswer: true }
  /** `exit` to the local disk. `refused`: a job or the clone window was at stake (audited); else nothing to do. */
  | { kind: "local"; reason: string; refused: boolean; job?: JobRecord };

type Vouch = { ok: true; basis: BootBasis; usesAnswer: boolean } | { ok: false; reason: string };

/** Does Lifeboat's DHCP answer vouch for this requester? */
function dhcpVouch(s: BootState): Vouch {
  const a = s.answer;
  const secs = (ms: number) => `${Math.round(ms / 1000)} s`;
  if (s.dhcpMode === "off") return { ok: false, reason: "dhcp.mode is off: no DHCP answer of Lifeboat's vouches for the requester" };
  if (!a) return { ok: false, reason: `Lifeboat's DHCP has not answered ${s.mac} since its last token (one token per boot, to the address Lifeboat's DHCP answered)` };
  if (s.now - a.at > DHCP_ANSWER_WINDOW_MS)
    return { ok: false, reason: `Lifeboat's DHCP answered ${s.mac} ${secs(s.now - a.at)} ago, longer than the ${secs(DHCP_ANSWER_WINDOW_MS)} a boot may take` };
  if (a.address === null) return { ok: false, reason: `Lifeboat's DHCP answered ${s.mac} but never saw the address it took (no REQUEST or ACK with it)` };
  if (a.address !== s.requester) return { ok: false, reason: `Lifeboat's DHCP answered ${s.mac} at ${a.address}, not ${s.requester}` };
  return { ok: true, basis: "dhcp-answer", usesAnswer: true };
}

/** The decision for one request for a machine's boot script. Pure. */
export function bootFor(s: BootState): BootDecision {
  const vouch = dhcpVouch(s);
  if (s.found) {
    const { job, via } = s.found;
    // A drill's machine is the server's own throwaway VM, booted with its token on the command line
    // (server/drill/): no network boot, whoever asks and whatever vouches, ever gets a drill's token.
    if (job.kind === "drill") return { kind: "local", reason: `job ${job.id} is a drill: its machine is started by the server, never network-booted`, refused: true, job };
    if (vouch.ok) return { kind: "rescue", job, via, basis: vouch.basis, usesAnswer: vouch.usesAnswer };
    // The admin said this job's machine may boot without Lifeboat's DHCP (dhcp.mode off, a relay, a typed URL).
    if (job.trustHttpBoot) return { kind: "rescue", job, via, basis: "trusted-http-boot", usesAnswer: false };
    const hint = s.dhcpMode === "off" ? " (the job was not armed with --trust-http-boot)" : "";
    return { kind: "local", reason: `no token for job ${job.id}: ${vouch.reason}${hint}`, refused: true, job };
  }
  const w = s.cloneWindow;
  if (!w) return { kind: "local", reason: "no active job", refused: false };
  if (s.knownMachine) return { kind: "local", reason: "no active job; a known machine never becomes a clone", refused: false };
  if (w.only.length && !macUnderPrefix(s.mac, w.only))
    return { kind: "local", reason: `no active job; outside the clone window's limits (${w.only.join(", ")})`, refused: false };
  if (!vouch.ok) return { kind: "local", reason: `clone window: no clone armed: ${vouch.reason}`, refused: true };
  return { kind: "clone", window: w, basis: vouch.basis, usesAnswer: true };
}

/**
 * A one-time code (ISO/USB boot, no network boot): the admin issued it for one job (`jobs code`,
 * `image iso --host`); the rescue agent booted from the medium trades it once for a boot token.
 * Kept in the issuing server's memory only (hashed): a restarted server has issued none.
 */
export interface OneTimeCode {
  job: string;
  issuedAt: number;
  expiresAt: number;
  /** Set once it was traded for a token (kept until it expires, so a replay is named as one). */
  used?: { at: number; by: string };
}

/** How many wrong codes one address may send in ONE_TIME_CODE_WINDOW_MS before every code it sends is refused. */
export const ONE_TIME_CODE_MAX_WRONG = 5;
export const ONE_TIME_CODE_WINDOW_MS = 600_000;
/** The longest a code may be valid (a job armed and never booted expires after jobs.expireHours anyway). */
export const ONE_TIME_CODE_MAX_HOURS = 72;
/** Unless the admin says otherwise: long enough to write a stick and walk it to the machine. */
export const ONE_TIME_CODE_DEFAULT_HOURS = 4;

/**
 * Does this code vouch for the requester now? Pure. `entry`: what the server keeps under the
 * code's hash (undefined: never issued here, or issued before a restart); `job`: its job now;
 * `wrongRecently`: the requester's wrong codes within the window. A reason (refused) or null.
 */
export function oneTimeCodeRefusal(s: { entry?: OneTimeCode; job?: JobRecord; bootable: boolean; wrongRecently: number; now: number }): string | null {
  if (s.wrongRecently >= ONE_TIME_CODE_MAX_WRONG)
    return `too many wrong one-time codes from this address (${s.wrongRecently} in ${ONE_TIME_CODE_WINDOW_MS / 60_000} min): try again later`;
  const e = s.entry;
  if (!e) return "no such one-time code on this server (mistyped, or issued before it restarted): ask the admin for a new one (lifeboat jobs code JOB)";
  if (e.used) return `this one-time code was used already (at ${new Date(e.used.at).toISOString()} from ${e.used.by}): each code boots one machine once; ask the admin for a new one`;
  if (s.now > e.expiresAt) return `this one-time code expired at ${new Date(e.expiresAt).toISOString()}: ask the admin for a new one`;
  if (!s.job) return `job ${e.job} no longer exists`;
  if (s.job.kind === "drill") return `job ${e.job} is a drill: its machine is started by the server`;
  if (!s.bootable) return `job ${e.job} is ${s.job.state}: it boots no machine any more`;
  return null;
}
