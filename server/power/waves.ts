/**
 * Clones at scale (`jobs arm --clone PROFILE --macs FILE --power`): the machines of a batch are
 * all armed at once, then powered in bounded waves (config power.waveSize, default 8), so the
 * DHCP, TFTP and restore-stream load stays within what the server sustains. The decision is
 * pure (jobs in, actions out); power-service.ts runs it on every change of such a job and at start.
 *
 * A slot is held from power-on until the machine stops loading the server: while its job boots
 * (DHCP, TFTP, the rescue image), plans and streams its restore. Freeing it when the job leaves
 * the booting phase would bound only DHCP and TFTP: a rack of 40 would then stream 40 restores at
 * once, the heaviest and longest load. A stalled job (silent agent) or an ended one frees its slot.
 */
import type { JobRecord, JobState } from "../store/types.ts";

/**
 * Where a machine of a batch is: waiting for its turn; powered (the power-on was started: set
 * before the BMC is asked, so a restart mid-way never powers a machine twice); skipped (its job
 * was no longer armed at its turn: cancelled, expired, or booted without Lifeboat's power);
 * refused (on at its turn, without --force: its job is cancelled, nothing is cycled); failed
 * (its BMC failed: the job stays armed for a power-on by hand).
 */
export const WAVE_STATUSES = ["waiting", "powered", "skipped", "refused", "failed"] as const;
export type WaveStatus = (typeof WAVE_STATUSES)[number];

/** A job's place in a powered batch, stored with the job (JobRecord.powerWave). */
export interface PowerWaveEntry {
  /** The batch (one `jobs arm --macs … --power`). */
  wave: string;
  /** Its turn in the batch, from 1, of `of`. */
  position: number;
  of: number;
  /** When the batch was armed: earlier batches go first. */
  queuedAt: string;
  status: WaveStatus;
  /** --force: a machine found on at its turn is powered off, then on (without it: refused). */
  force: boolean;
  /** What was done, or why not. */
  note: string | null;
}

/** What the wave scheduler asks for: power a machine on (its turn came), or mark it skipped. */
export type WaveAction = { job: string; do: "power" } | { job: string; do: "skip"; note: string };

type WaveJob = Pick<JobRecord, "id" | "state" | "powerWave">;

/** States of a job whose machine loads the server (booting, planning, restoring). */
const LOADING_STATES: readonly JobState[] = ["armed", "booted", "planning", "running"];

/** Does this job take one of the wave's slots? An armed one only once it was powered (before, its machine is off). */
export function holdsSlot(j: WaveJob): boolean {
  if (!j.powerWave) return false;
  if (j.state === "armed") return j.powerWave.status === "powered";
  return LOADING_STATES.includes(j.state);
}

const turnOrder = (a: WaveJob, b: WaveJob) =>
  a.powerWave!.queuedAt.localeCompare(b.powerWave!.queuedAt) || a.powerWave!.wave.localeCompare(b.powerWave!.wave) || a.powerWave!.position - b.powerWave!.position;

/**
 * The next actions (pure), over every job of the batches that are under way: waiting machines
 * whose job is no longer armed are skipped; then as many waiting ones as there are free slots
 * (`size` less the slots held, across all batches: the bound is the server's) are powered, in
 * batch order, then turn order.
 */
export function planWaves(jobs: WaveJob[], size: number): WaveAction[] {
  const waiting = jobs.filter((j) => j.powerWave?.status === "waiting").sort(turnOrder);
  const actions: WaveAction[] = waiting
    .filter((j) => j.state !== "armed")
    .map((j) => ({ job: j.id, do: "skip", note: `its job was ${j.state} at its turn: not powered by Lifeboat` }));
  let free = size - jobs.filter(holdsSlot).length;
  for (const j of waiting) {
    if (free <= 0) break;
    if (j.state !== "armed") continue;
    actions.push({ job: j.id, do: "power" });
    free--;
  }
  return actions;
}

/** A job's place in its batch in a few words, for `jobs list` (empty when it is in none). */
export function waveWords(w: PowerWaveEntry | null): string {
  return w ? `${w.status} ${w.position}/${w.of}` : "";
}
