/**
 * Refreshing Lifeboat's copy of the catalog: read each configured Amanda config (logs,
 * media, and `amadmin find` as a cross-check when Amanda is installed here), store the
 * result. A config that cannot be read keeps its previous copy: a dead Amanda server
 * must not take the catalog with it.
 */
import { existsSync, realpathSync } from "node:fs";
import { join } from "node:path";
import type { AmandaConfig } from "../config/schema.ts";
import type { Service, ServerContext } from "../context.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Store } from "../store/types.ts";
import { amadminFind, type FindRow } from "./amadmin.ts";
import { buildCatalog, type CatalogResult, yieldToLoop } from "./catalog.ts";
import { type AmandaSetup, readAmandaConfig } from "./conf.ts";
import { type CatalogDump, dumpKey, dumpName } from "./model.ts";

export function setupOf(a: AmandaConfig): AmandaSetup {
  return readAmandaConfig(a.configDir, { name: a.name, vtapeRoot: a.vtapeRoot, holdingDirs: a.holdingDirs, helperSocket: a.helperSocket });
}

/** True when `amadmin NAME` would read this very config directory (Amanda only looks in /etc/amanda/NAME). */
export function amadminReads(setup: AmandaSetup): boolean {
  try {
    return realpathSync(join("/etc/amanda", setup.name)) === realpathSync(setup.configDir) && ["/usr/sbin/amadmin", "/usr/bin/amadmin"].some(existsSync);
  } catch {
    return false;
  }
}

/** Pure: compares `amadmin find` rows with the catalog; marks agreeing dumps, returns the disagreements. */
export function crossCheck(dumps: CatalogDump[], rows: FindRow[], name: string): string[] {
  const warnings: string[] = [];
  const byKey = new Map(dumps.map((d) => [dumpKey(d), d]));
  const seen = new Set<string>();
  for (const r of rows) {
    if (!/^OK/.test(r.status)) continue;
    const k = dumpKey(r);
    if (seen.has(k)) continue;
    seen.add(k);
    const d = byKey.get(k);
    if (!d) {
      warnings.push(`amadmin ${name} find lists ${dumpName(r)} on ${r.label}, which the logs and media do not show`);
      continue;
    }
    const where = r.storage === "HOLDING" ? "HOLDING" : r.label;
    if (where !== d.location.label) warnings.push(`${dumpName(d)}: amadmin find says ${where}, the catalog says ${d.location.label}`);
    else d.sources = [...new Set([...d.sources, "amadmin" as const])];
  }
  for (const d of dumps) if (!seen.has(dumpKey(d)) && !d.problem) warnings.push(`${dumpName(d)} is not listed by amadmin ${name} find`);
  return warnings;
}

export async function readCatalog(setup: AmandaSetup, opts: { onProgress?: (m: string) => void; amadmin?: boolean } = {}): Promise<CatalogResult> {
  const result = await buildCatalog(setup, opts.onProgress);
  if (opts.amadmin !== false && amadminReads(setup)) {
    try {
      opts.onProgress?.(`cross-checking with amadmin ${setup.name} find`);
      result.warnings.push(...crossCheck(result.dumps, await amadminFind(setup.name, setup), setup.name));
    } catch (err) {
      result.warnings.push(errorMessage(err));
    }
  }
  return result;
}

export interface RefreshSummary {
  amanda: string;
  dumps: number;
  warnings: string[];
  error: string | null;
}

/**
 * The refresh running against each store: one at a time. A caller that comes while one runs
 * shares it when it covers what was asked (all configs, or the same one), else waits for it
 * to end and then runs its own; so the hourly schedule, `POST /api/v1/catalog/refresh` and
 * `lifeboat catalog refresh` (through the API when a server runs) never scan twice at once.
 */
const running = new WeakMap<Store, { names: string[]; done: Promise<RefreshSummary[]> }>();

/** Refreshes the named config (or all), or shares the refresh under way; a config that fails keeps its old copy and reports the error. */
export async function refreshCatalogs(
  configs: AmandaConfig[],
  store: Store,
  opts: { only?: string; log?: Logger; onProgress?: (m: string) => void } = {},
): Promise<RefreshSummary[]> {
  const names = configs.filter((c) => !opts.only || c.name === opts.only).map((c) => c.name);
  for (let cur = running.get(store); cur; cur = running.get(store)) {
    const under = cur.names;
    if (names.every((n) => under.includes(n))) return (await cur.done).filter((r) => names.includes(r.amanda));
    await cur.done;
  }
  const entry = { names, done: refreshNow(configs, store, opts) };
  running.set(store, entry);
  try {
    return await entry.done;
  } finally {
    running.delete(store);
  }
}

async function refreshNow(configs: AmandaConfig[], store: Store, opts: { only?: string; log?: Logger; onProgress?: (m: string) => void }): Promise<RefreshSummary[]> {
  const out: RefreshSummary[] = [];
  for (const a of configs.filter((c) => !opts.only || c.name === opts.only)) {
    try {
      const r = await readCatalog(setupOf(a), { onProgress: opts.onProgress });
      await yieldToLoop();
      await store.catalog.replace(a.name, r.dumps, r.warnings);
      out.push({ amanda: a.name, dumps: r.dumps.length, warnings: r.warnings, error: null });
      opts.log?.info({ amanda: a.name, dumps: r.dumps.length, warnings: r.warnings.length }, "catalog refreshed");
      for (const w of r.warnings) opts.log?.warn({ amanda: a.name }, w);
    } catch (err) {
      out.push({ amanda: a.name, dumps: 0, warnings: [], error: errorMessage(err) });
      opts.log?.error({ amanda: a.name, err: errorMessage(err) }, "catalog refresh failed; keeping the previous copy");
    }
  }
  return out;
}

/** Refreshes every configured catalog at start and then every catalog.refreshMinutes (0: never, not even at start). */
export function catalogRefreshService(ctx: ServerContext): Service {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const log = ctx.log.child({ svc: "catalog" });
  const tick = () => {
    running = refreshCatalogs(ctx.config.amanda, ctx.store, { log }).catch((err: unknown) => log.error({ err }, "catalog refresh failed"));
  };
  return {
    name: "catalog",
    async start() {
      const every = ctx.config.catalog.refreshMinutes;
      if (ctx.config.amanda.length === 0) return "no Amanda configs (none to refresh)";
      if (every === 0) return "automatic refresh off (catalog.refreshMinutes 0)";
      tick();
      timer = setInterval(tick, every * 60_000).unref();
      return `refreshing ${ctx.config.amanda.length} Amanda config(s) every ${every} min`;
    },
    async stop() {
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
