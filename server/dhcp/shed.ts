/**
 * Overload shedding for full-mode DHCP. When the event loop is saturated, the kernel's
 * receive queue overflows and drops datagrams at random: REQUESTs of handshakes already
 * half done are lost as often as new DISCOVERs, every OFFER sent for them was wasted work,
 * and completed handshakes per second collapse as the offered rate grows. Shedding new
 * DISCOVERs early (a decode and a counter, no store, no reply) while busy keeps the loop for
 * the REQUESTs that finish handshakes; a client whose DISCOVER was shed retries it (RFC 2131
 * 4.1: 4 s, then 8 s...). `nextShedding` is the decision; `Shedder` samples the loop through
 * a `LoopMeter` (performance's by default, a fake one in tests).
 */
import { performance } from "node:perf_hooks";

/** Event-loop utilization (0..1) at which new DISCOVERs start being shed. */
export const SHED_START = 0.9;
/** ...and below which shedding stops (hysteresis: no flapping around one value). */
export const SHED_STOP = 0.75;
/** How often the utilization is sampled. */
export const SHED_SAMPLE_MS = 20;
/**
 * Datagrams a sample must have seen before shedding starts (1000/s): a loop busy with
 * something else (start-up, a catalog refresh) while a handful of machines boot sheds nothing.
 */
export const SHED_MIN_PACKETS = 20;

/** The next shedding state from the loop's utilization and the datagrams received over the last sample. */
export function nextShedding(shedding: boolean, utilization: number, packets: number): boolean {
  if (shedding) return utilization >= SHED_STOP;
  return utilization >= SHED_START && packets >= SHED_MIN_PACKETS;
}

/** A clock in ms and the loop's cumulative busy and idle ms (performance.eventLoopUtilization()'s active and idle). */
export interface LoopMeter {
  now(): number;
  load(): { active: number; idle: number };
}

export const processLoop: LoopMeter = { now: () => performance.now(), load: () => performance.eventLoopUtilization() };

/** The shedding state of one service: counts new DISCOVERs, samples the loop every SHED_SAMPLE_MS. */
export class Shedder {
  private last: { active: number; idle: number };
  private at: number;
  private packets = 0;
  shedding = false;

  constructor(private readonly meter: LoopMeter = processLoop) {
    this.last = meter.load();
    this.at = meter.now();
  }

  /** A new DISCOVER arrived: whether to shed it. */
  discover(): boolean {
    this.packets++;
    const now = this.meter.now();
    if (now - this.at < SHED_SAMPLE_MS) return this.shedding;
    const cur = this.meter.load();
    const active = cur.active - this.last.active;
    const total = active + cur.idle - this.last.idle;
    this.shedding = nextShedding(this.shedding, total > 0 ? active / total : 0, this.packets);
    this.last = cur;
    this.at = now;
    this.packets = 0;
    return this.shedding;
  }
}
