/**
 * Overload shedding for full-mode DHCP. When the server falls behind, the kernel's receive
 * queue overflows and drops datagrams at random: REQUESTs of handshakes already half done are
 * lost as often as new DISCOVERs, every OFFER sent for them was wasted work, and completed
 * handshakes per second collapse as the offered rate grows. Shedding new DISCOVERs early (a
 * decode and a counter, no store, no reply) while behind keeps the loop for the REQUESTs that
 * finish handshakes; a client whose DISCOVER was shed retries it (RFC 2131 4.1: 4 s, then 8 s...).
 *
 * "Behind" is read from the socket itself, not from the loop's utilization (which a busy but
 * keeping-up loop, or one kept spinning by the lease group commits' setImmediate, reads as
 * saturated: sampled by utilization, shedding started at a 2000/s offer and halved what was
 * completed at every rate). libuv reads at most SHED_BATCH datagrams per wake-up of a socket;
 * a turn of the loop that handled a full batch left more waiting in the queue. `nextShedding`
 * is the decision; `Shedder` counts the datagrams of each turn through a `LoopTurns` (setImmediate
 * by default, a hand-driven one in tests).
 */

/** Datagrams libuv reads from a socket per wake-up (uv__udp_recvmsg): a turn with this many found a queue. */
export const SHED_BATCH = 32;
/** A turn with fewer datagrams than this found the queue drained: shedding stops (hysteresis). */
export const SHED_STOP = 8;

/** The next shedding state from the datagrams the turn that just ended handled. */
export function nextShedding(shedding: boolean, datagrams: number): boolean {
  return shedding ? datagrams >= SHED_STOP : datagrams >= SHED_BATCH;
}

/** Runs a function once the current turn of the loop has handled its I/O. */
export interface LoopTurns {
  afterTurn(fn: () => void): void;
}

export const processTurns: LoopTurns = { afterTurn: (fn) => void setImmediate(fn) };

/**
 * The shedding state of one service: counts the datagrams of each turn, decides at its end.
 * While shedding, every turn is watched, those with no datagram too: a turn that found the
 * queue empty ends it (no stale state after a flood stops).
 */
export class Shedder {
  private inTurn = 0;
  private armed = false;
  shedding = false;

  constructor(private readonly turns: LoopTurns = processTurns) {}

  /** A datagram arrived (any kind, well-formed or not): counted in this turn. */
  datagram(): void {
    this.inTurn++;
    this.arm();
  }

  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    this.turns.afterTurn(() => {
      this.armed = false;
      this.shedding = nextShedding(this.shedding, this.inTurn);
      this.inTurn = 0;
      if (this.shedding) this.arm();
    });
  }
}
