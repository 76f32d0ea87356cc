/**
 * Recoverability at a glance (issue 24): can this host be recovered right now, and if not, why.
 * `assessRecoverability` is pure: the host, its captured layout and that layout's age, the
 * catalog's chains per DLE (the very chains a plan would stream, through `restoreChains`), the
 * rescue image and the host's last drill → `{recoverable, reasons[]}` with the facts behind it.
 * `hostsRecoverability` gathers those values from the store and the image directory for
 * `hosts list`, `GET /api/v1/hosts`, the page and `/metrics`.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type ImageInfo, readImageInfo } from "../../rescue-image/build.ts";
import type { CatalogDump } from "../amanda/model.ts";
import { parseLayout } from "../layout/layout.ts";
import type { HostRecord, LayoutRecord, Store } from "../store/types.ts";
import { type DrillSummary, lastDrill } from "./drill-record.ts";
import { hostDles, restoreChains } from "./job-plan.ts";
import { type AmandaKeyHolding, keyHolding } from "../amanda/decrypt.ts";

export interface RecoverabilityInput {
  host: HostRecord;
  /** The layout a recovery of the host would use (its profile's pinned version, else the newest); undefined: none captured. */
  layout: LayoutRecord | undefined;
  /** The layout version the host's profile pins, when it pins one (named in the reason when it is missing). */
  pinnedVersion: number | null;
  /** Restore point a recovery would use (the host's profile's); null: the newest dumps. */
  at: string | null;
  /** The catalog of the host's Amanda config (every config when the host names none), as the planner reads it. */
  catalog: CatalogDump[];
  /** The Amanda configs Lifeboat holds a key for (an encrypted dump without one makes the chain fail). */
  keys: AmandaKeyHolding;
  /** The rescue image a booting machine would get; undefined: not built. */
  image: ImageInfo | undefined;
  lastDrill: DrillSummary | undefined;
  now: Date;
  /** A layout captured longer ago than this may no longer describe the machine's disks. */
  layoutMaxAgeDays: number;
}

export interface DleChainStatus {
  dle: string;
  mountpoint: string;
  ok: boolean;
  /** The chain's levels in order (0, 1, …) when complete. */
  levels: number[];
  bytes: number;
  /** Why there is no complete chain: names the missing level, part or dump. */
  reason: string | null;
}

export interface Recoverability {
  recoverable: boolean;
  /** Each thing that stops a recovery right now, one line each; empty when recoverable. */
  reasons: string[];
  layout: { version: number; capturedAt: string; ageSeconds: number } | null;
  chains: DleChainStatus[];
  image: { builtAt: string; kernelVersion: string } | null;
  lastDrill: (DrillSummary & { ageSeconds: number }) | null;
}

const DAY = 86_400;

export function assessRecoverability(i: RecoverabilityInput): Recoverability {
  const reasons: string[] = [];
  const name = i.host.name;
  let layout: Recoverability["layout"] = null;
  let chains: DleChainStatus[] = [];
  if (!i.layout) {
    reasons.push(i.pinnedVersion ? `layout version ${i.pinnedVersion} (pinned by profile ${name}) is not stored` : "no layout captured (install capture.sh on it: lifeboat capture install)");
  } else {
    const ageSeconds = Math.max(0, Math.round((i.now.getTime() - Date.parse(i.layout.capturedAt)) / 1000));
    layout = { version: i.layout.version, capturedAt: i.layout.capturedAt, ageSeconds };
    if (ageSeconds > i.layoutMaxAgeDays * DAY)
      reasons.push(`layout v${i.layout.version} is ${Math.floor(ageSeconds / DAY)} days old (more than ${i.layoutMaxAgeDays}): is capture.sh still running on it?`);
    try {
      const dles = hostDles(parseLayout(i.layout.document, `layout v${i.layout.version}`), i.host);
      if (Object.keys(dles).length === 0) reasons.push("no DLE to restore: the layout names none and the host maps none (lifeboat hosts add --dle)");
      chains = Object.entries(dles)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([dle, mountpoint]) => chainStatus(i.catalog, i.keys, name, dle, mountpoint, i.at));
      for (const c of chains) if (c.reason) reasons.push(`DLE ${JSON.stringify(c.dle)} (${c.mountpoint}): ${c.reason}`);
    } catch (err) {
      reasons.push((err as Error).message);
    }
  }
  if (!i.image) reasons.push("the rescue image is not built (lifeboat image build)");
  const drill = i.lastDrill ? { ...i.lastDrill, ageSeconds: Math.max(0, Math.round((i.now.getTime() - Date.parse(i.lastDrill.endedAt)) / 1000)) } : null;
  // A drill that failed proved the host does not come back as things stand; one never run proves nothing either way.
  if (drill && !drill.passed) reasons.push(`last drill (${drill.job}, ${drill.endedAt}) failed: ${drill.reason ?? "no reason recorded"}`);
  return {
    recoverable: reasons.length === 0,
    reasons,
    layout,
    chains,
    image: i.image ? { builtAt: i.image.builtAt, kernelVersion: i.image.kernelVersion } : null,
    lastDrill: drill,
  };
}

/** One DLE's chain through the planner's own `restoreChains` (gaps, missing parts, programs and compressions it cannot restore). */
function chainStatus(catalog: CatalogDump[], keys: AmandaKeyHolding, host: string, dle: string, mountpoint: string, at: string | null): DleChainStatus {
  try {
    const [chain] = restoreChains(catalog, host, { [dle]: mountpoint }, at, keys);
    const dumps = chain!.dumps;
    return { dle, mountpoint, ok: true, levels: dumps.map((d) => d.level), bytes: dumps.reduce((n, d) => n + (d.sizeBytes ?? 0), 0), reason: null };
  } catch (err) {
    return { dle, mountpoint, ok: false, levels: [], bytes: 0, reason: (err as Error).message };
  }
}

/** The rescue image `serve` hands out (`lifeboat image build` writes it there), when its kernel and initramfs are present. */
export function rescueImage(dataDir: string): ImageInfo | undefined {
  const dir = imageDir(dataDir);
  const info = readImageInfo(dir);
  return info && existsSync(join(dir, "vmlinuz")) && existsSync(join(dir, "initramfs")) ? info : undefined;
}

/** Where `lifeboat image build` puts vmlinuz, initramfs and info.json by default, and where `serve` serves them from. */
export function imageDir(dataDir: string): string {
  return join(dataDir, "image");
}

/** Every host's recoverability, read from the store, the catalog and the image directory. */
export async function hostsRecoverability(
  store: Store,
  opts: { dataDir: string; layoutMaxAgeDays: number; now?: Date },
): Promise<Array<{ host: HostRecord; recoverability: Recoverability }>> {
  const now = opts.now ?? new Date();
  const image = rescueImage(opts.dataDir);
  const catalogs = new Map<string, Promise<CatalogDump[]>>();
  const catalogOf = (amanda: string | null) => {
    const key = amanda ?? "";
    if (!catalogs.has(key)) catalogs.set(key, store.catalog.list(amanda ? { amanda } : {}));
    return catalogs.get(key)!;
  };
  const keys = keyHolding(await store.amandaKeys.list());
  const out = [];
  for (const host of await store.hosts.list()) {
    // A recovery of the host by its MAC uses the profile of its name (made on first use: jobs/job-service.ts).
    const profile = await store.profiles.get(host.name);
    const pinned = profile?.host === host.name ? profile.layoutVersion : null;
    out.push({
      host,
      recoverability: assessRecoverability({
        host,
        layout: await store.layouts.get(host.name, pinned ?? undefined),
        pinnedVersion: pinned,
        at: profile?.host === host.name ? profile.at : null,
        catalog: (await catalogOf(host.amandaConfig)).filter((d) => d.host === host.name),
        keys,
        image,
        lastDrill: await lastDrill(store, host.name),
        now,
        layoutMaxAgeDays: opts.layoutMaxAgeDays,
      }),
    });
  }
  return out;
}
