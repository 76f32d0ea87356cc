/**
 * Restore chains (pure): for a host, a disk and a point in time, the dumps a restore
 * applies in order — as amrecover picks them: walking back from the point in time, each
 * dump whose level is lower than every one taken so far, down to a level 0. The result
 * must be levels 0, 1, 2, … without a gap, and every dump in it readable; otherwise a
 * ChainError names what is missing. Never a partial chain.
 */
import { pad14 } from "./catalog.ts";
import { type CatalogDump, dumpName } from "./model.ts";

export class ChainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChainError";
  }
}

/** "20261124", "20261124020601", "2026-11-24", "2026-11-24 02:06:01" or "2026-11-24T02:06:01" → 14 digits. */
export function normaliseDatestamp(s: string): string {
  const digits = s.replace(/[-:T\s]/g, "");
  if (!/^(\d{8}|\d{14})$/.test(digits)) throw new ChainError(`bad point in time ${JSON.stringify(s)}: expected YYYYMMDD[HHMMSS] or YYYY-MM-DD[ HH:MM:SS]`);
  // An 8-digit point in time means the end of that day.
  return digits.length === 8 ? `${digits}235959` : digits;
}

export interface Chain {
  host: string;
  disk: string;
  at: string | null;
  dumps: CatalogDump[];
}

export function selectChain(all: readonly CatalogDump[], host: string, disk: string, at?: string): Chain {
  const limit = at ? normaliseDatestamp(at) : null;
  const mine = all.filter((d) => d.host === host && d.disk === disk);
  const what = `${host}:${JSON.stringify(disk)}${limit ? ` at ${limit}` : ""}`;
  if (mine.length === 0) throw new ChainError(`no dumps of ${host}:${JSON.stringify(disk)} in the catalog`);
  const candidates = mine
    .filter((d) => d.status === "ok" && (!limit || pad14(d.datestamp) <= limit))
    .sort((a, b) => pad14(b.datestamp).localeCompare(pad14(a.datestamp)) || a.level - b.level);
  const picked: CatalogDump[] = [];
  let lowest = Number.POSITIVE_INFINITY;
  for (const d of candidates) {
    if (d.level < lowest) {
      picked.push(d);
      lowest = d.level;
      if (d.level === 0) break;
    }
  }
  if (lowest !== 0) {
    const oldest = mine.map((d) => d.datestamp).sort((a, b) => pad14(a).localeCompare(pad14(b)))[0];
    throw new ChainError(`no level 0 of ${what} (oldest dump in the catalog: ${oldest})`);
  }
  picked.reverse();
  picked.forEach((d, i) => {
    if (d.level !== i) {
      const prev = picked[i - 1]!;
      throw new ChainError(`chain of ${what} has a gap: no level ${i} between ${dumpName(prev)} and ${dumpName(d)}`);
    }
  });
  for (const d of picked) {
    if (d.problem) throw new ChainError(`chain of ${what} needs ${dumpName(d)}, which cannot be read: ${d.problem}`);
  }
  return { host, disk, at: limit, dumps: picked };
}
