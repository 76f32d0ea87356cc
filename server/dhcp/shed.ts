/**
 * Overload shedding for full-mode DHCP. When the event loop is saturated, the kernel's
 * receive queue overflows and drops datagrams at random: REQUESTs of handshakes already
 * half done are lost as often as new DISCOVERs, every OFFER sent for them was wasted work,
 * and completed handshakes per second collapse as the offered rate grows. Shedding new
 * DISCOVERs early (a decode and a counter, no store, no reply) while busy keeps the loop for
 * the REQUESTs that finish handshakes; a client whose DISCOVER was shed retries it (RFC 2131
 * 4.1: 4 s, then 8 s...). Pure: the socket shell feeds it the loop's utilization.
 */

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
