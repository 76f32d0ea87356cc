/** A drill schedule's period (config drill.every, a profile's drillEvery): parsed in one place, pure (drill/schedule.ts). */
const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** `7d`, `12h`, `90m`, `2w` → milliseconds; `off` or "" → null (never); anything else: a message saying what is expected. */
export function parseEvery(s: string): number | null | { problem: string } {
  const t = s.trim();
  if (t === "" || t === "off") return null;
  const m = /^(\d{1,5})([mhdw])$/.exec(t);
  if (!m || Number(m[1]) === 0) return { problem: `expected a period like 7d, 12h, 90m or 2w (or off), got ${JSON.stringify(s)}` };
  return Number(m[1]) * UNITS[m[2]!]!;
}

/** The same as a schema refinement's check: the message, or null when `s` is a period or off. */
export function everyProblem(s: string): string | null {
  const p = parseEvery(s);
  return p !== null && typeof p === "object" ? p.problem : null;
}
