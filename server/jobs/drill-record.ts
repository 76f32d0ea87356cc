/**
 * A host's last drill as recoverability and `/metrics` read it: one summary per host in the
 * store's settings (`drill.last.HOST`), written when a drill job ends (server/drill/). The
 * drill's whole history (its steps, streams, the console's last lines) is its job's events.
 */
import type { Store } from "../store/types.ts";

export interface DrillSummary {
  job: string;
  host: string;
  endedAt: string;
  passed: boolean;
  /** Why it failed (the missing dump, the console's last line, …); null when it passed. */
  reason: string | null;
  /** Seconds: the plan's restore steps, power-on of the restored disk to its readiness, and arm → ready. */
  restoreSeconds: number | null;
  bootSeconds: number | null;
  recoverSeconds: number | null;
  bytes: number;
  /** How QEMU ran: "kvm" or "tcg". */
  accel: string | null;
  /** The admin's checks once the system was up (drill/checks.ts), in the order given; absent in drills from before checks. */
  checks?: Array<{ check: string; passed: boolean; detail: string }>;
}

const key = (host: string) => `drill.last.${host}`;

export async function lastDrill(store: Store, host: string): Promise<DrillSummary | undefined> {
  const raw = await store.settings.get(key(host));
  const s = raw ? (JSON.parse(raw) as DrillSummary | null) : null;
  return s ?? undefined;
}

export async function recordDrill(store: Store, s: DrillSummary): Promise<void> {
  await store.settings.set(key(s.host), JSON.stringify(s));
}
