/**
 * Recovery bundles kept apart, on a schedule (config `bundle`): `serve` writes one bundle and
 * delivers it to each target (a directory: a mounted USB disk or NFS; another Lifeboat server:
 * HTTP push with that server's admin token), keeps the newest `bundle.keep` per server there,
 * and records each target's last success and failure in the store, where the admin page,
 * `/metrics` and `lifeboat store bundles` read them. A server that receives pushed bundles
 * keeps them under its data dir (receiveBundle), capped in size and pruned by the same rule.
 */
import { createReadStream, createWriteStream, copyFileSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Gauge, type Registry } from "prom-client";
import type { BundleTarget, Config } from "../config/schema.ts";
import type { Service } from "../context.ts";
import { TooLargeError, UserError, errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Store } from "../store/types.ts";
import { exportBundle, serverId } from "./export.ts";
import { fileKind } from "./gpg.ts";
import { BUNDLE_FILE, BundleError, bundleFileName } from "./manifest.ts";
import { verifySeal } from "./tar.ts";

const STATUS_KEY = "bundle.status";
const LAST_RUN_KEY = "bundle.last-run";

export interface TargetStatus {
  lastSuccess: { at: string; file: string; bytes: number } | null;
  lastFailure: { at: string; error: string } | null;
}

export interface TargetView extends TargetStatus {
  name: string;
  type: string;
  where: string;
  /** The last attempt succeeded; null before the first. */
  ok: boolean | null;
}

export interface BundlesView {
  everyHours: number;
  keep: number;
  lastRun: string | null;
  targets: TargetView[];
  /** Bundles other servers pushed here, newest first. */
  received: Array<{ file: string; bytes: number; at: string }>;
}

const str = { type: "string" } as const;
const when = { type: ["object", "null"], additionalProperties: true } as const;
/** BundlesView as JSON Schema: the API's answer (GET /api/v1/bundles); test/integration/bundle/targets.test.ts compares it with the CLI's view. */
export const bundlesViewSchema = {
  type: "object",
  required: ["everyHours", "keep", "lastRun", "targets", "received"],
  properties: {
    everyHours: { type: "number" },
    keep: { type: "integer" },
    lastRun: { type: ["string", "null"] },
    targets: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "type", "where", "lastSuccess", "lastFailure", "ok"],
        properties: { name: str, type: str, where: str, lastSuccess: when, lastFailure: when, ok: { type: ["boolean", "null"] } },
      },
    },
    received: { type: "array", items: { type: "object", required: ["file", "bytes", "at"], properties: { file: str, bytes: { type: "integer" }, at: str } } },
  },
} as const;

/** Pure: which of `files` (names in one directory) go so that only the newest `keep` of each server stay. */
export function toPrune(files: string[], keep: number): string[] {
  const byServer = new Map<string, string[]>();
  for (const f of files) {
    const m = BUNDLE_FILE.exec(f);
    if (m) byServer.set(m[1]!, [...(byServer.get(m[1]!) ?? []), f]);
  }
  // Names sort by time within a server (bundleFileName).
  return [...byServer.values()].flatMap((fs) => fs.sort().reverse().slice(keep));
}

/** Pure: milliseconds until the next run: now when none ran or the last is older than everyHours. */
export function nextRunDelay(lastRun: string | null, everyHours: number, now: Date): number {
  if (!lastRun) return 0;
  return Math.max(0, Date.parse(lastRun) + everyHours * 3_600_000 - now.getTime());
}

/** Pure: where a target puts bundles, as the page shows it. */
export function targetWhere(t: BundleTarget): string {
  return t.type === "directory" ? (t.path ?? "") : (t.url ?? "");
}

async function readStatus(store: Store): Promise<Record<string, TargetStatus>> {
  return JSON.parse((await store.settings.get(STATUS_KEY)) ?? "{}") as Record<string, TargetStatus>;
}

export function receivedDir(dataDir: string): string {
  return join(dataDir, "bundles", "received");
}

function listReceived(dataDir: string): BundlesView["received"] {
  let names: string[] = [];
  try {
    names = readdirSync(receivedDir(dataDir)).filter((f) => BUNDLE_FILE.test(f));
  } catch {
    return [];
  }
  return names
    .map((file) => {
      const st = statSync(join(receivedDir(dataDir), file));
      return { file, bytes: st.size, at: st.mtime.toISOString() };
    })
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
}

/** What the page, the API and `lifeboat store bundles` show. */
export async function bundlesView(config: Config, store: Store): Promise<BundlesView> {
  const status = await readStatus(store);
  return {
    everyHours: config.bundle.everyHours,
    keep: config.bundle.keep,
    lastRun: (await store.settings.get(LAST_RUN_KEY)) ?? null,
    targets: config.bundle.targets.map((t) => {
      const s = status[t.name] ?? { lastSuccess: null, lastFailure: null };
      const ok = s.lastSuccess || s.lastFailure ? !s.lastFailure || (!!s.lastSuccess && s.lastSuccess.at > s.lastFailure.at) : null;
      return { name: t.name, type: t.type, where: targetWhere(t), ...s, ok };
    }),
    received: listReceived(config.dataDir),
  };
}

/** Copies into a directory target (`.part`, then renamed: a reader never sees half a bundle) and prunes it. */
function toDirectory(dir: string, file: string, name: string, keep: number): void {
  const part = join(dir, `.${name}.part`);
  try {
    copyFileSync(file, part);
    renameSync(part, join(dir, name));
  } finally {
    rmSync(part, { force: true });
  }
  for (const old of toPrune(readdirSync(dir), keep)) rmSync(join(dir, old), { force: true });
}

/** Pushes to another Lifeboat: PUT /api/v1/bundles/NAME with its admin token. */
async function toLifeboat(t: BundleTarget, file: string, name: string): Promise<void> {
  const token = readFileSync(t.tokenFile!, "utf8").trim();
  const url = new URL(`/api/v1/bundles/${encodeURIComponent(name)}`, t.url);
  let res: Response;
  try {
    res = await fetch(url, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream", "content-length": String(statSync(file).size) },
      body: Readable.toWeb(createReadStream(file)) as ReadableStream,
      duplex: "half",
    } as RequestInit);
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`cannot reach ${t.url} (${cause?.code ?? cause?.message ?? errorMessage(err)})`);
  }
  if (!res.ok) {
    const text = await res.text();
    let msg = text;
    try {
      msg = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      /* not JSON */
    }
    throw new Error(`${url.origin} answered ${res.status}: ${msg.slice(0, 200)}`);
  }
}

/**
 * Writes one bundle and delivers it to every target, recording each one's outcome. Resolves
 * with the outcomes; never throws for a target's failure (it is recorded and shown).
 */
export async function writeBundles(ctx: { config: Config; store: Store; log: Logger }): Promise<Record<string, TargetStatus>> {
  const { config, store, log } = ctx;
  const now = new Date();
  const status = await readStatus(store);
  const outgoing = join(config.dataDir, "bundles", "outgoing");
  mkdirSync(outgoing, { recursive: true, mode: 0o700 });
  const name = bundleFileName(await serverId(store), now.toISOString(), !!config.bundle.recipient);
  const file = join(outgoing, name);
  let made: Awaited<ReturnType<typeof exportBundle>> | undefined;
  let madeError = "";
  try {
    made = await exportBundle({ store, amanda: config.amanda, out: file, recipient: config.bundle.recipient || undefined, now });
    for (const n of made.manifest.notes) log.warn({ svc: "bundle" }, n);
  } catch (err) {
    madeError = `the bundle could not be written: ${errorMessage(err)}`;
  }
  try {
    for (const t of config.bundle.targets) {
      const prev = status[t.name] ?? { lastSuccess: null, lastFailure: null };
      try {
        if (!made) throw new Error(madeError);
        if (t.type === "directory") toDirectory(t.path!, file, name, config.bundle.keep);
        else await toLifeboat(t, file, name);
        status[t.name] = { ...prev, lastSuccess: { at: new Date().toISOString(), file: name, bytes: made.bytes } };
        log.info({ svc: "bundle", target: t.name, file: name, bytes: made.bytes }, `bundle delivered to ${t.name}`);
      } catch (err) {
        status[t.name] = { ...prev, lastFailure: { at: new Date().toISOString(), error: errorMessage(err) } };
        log.error({ svc: "bundle", target: t.name, err: errorMessage(err) }, `bundle not delivered to ${t.name}`);
      }
    }
  } finally {
    rmSync(file, { force: true });
  }
  await store.settings.set(STATUS_KEY, JSON.stringify(status));
  await store.settings.set(LAST_RUN_KEY, now.toISOString());
  return status;
}

/** Writes bundles at start when due, then every bundle.everyHours; nothing without targets. */
export function bundleService(ctx: { config: Config; store: Store; log: Logger }): Service {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;
  const { bundle } = ctx.config;
  const schedule = (delay: number) => {
    timer = setTimeout(() => {
      running = writeBundles(ctx)
        .catch((err: unknown) => ctx.log.error({ svc: "bundle", err }, "bundle run failed"))
        .finally(() => {
          if (!stopped) schedule(bundle.everyHours * 3_600_000);
        });
    }, delay);
    timer.unref();
  };
  return {
    name: "bundle",
    async start() {
      if (bundle.targets.length === 0) return "no bundle targets (bundle.targets)";
      const delay = nextRunDelay((await ctx.store.settings.get(LAST_RUN_KEY)) ?? null, bundle.everyHours, new Date());
      schedule(delay);
      return `a recovery bundle every ${bundle.everyHours} h to ${bundle.targets.map((t) => t.name).join(", ")}${delay === 0 ? " (one now)" : ""}`;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/** `lifeboat_bundle_*{target}`: each target's last success and failure times, and whether its last attempt worked. */
export function registerBundleMetrics(registry: Registry, config: Config, store: Store): void {
  const gauges = [
    ["lifeboat_bundle_last_success_timestamp_seconds", "When a recovery bundle last reached the target (0: never)", (v: TargetView) => (v.lastSuccess ? Date.parse(v.lastSuccess.at) / 1000 : 0)],
    ["lifeboat_bundle_last_failure_timestamp_seconds", "When a recovery bundle last failed to reach the target (0: never)", (v: TargetView) => (v.lastFailure ? Date.parse(v.lastFailure.at) / 1000 : 0)],
    ["lifeboat_bundle_target_ok", "1 when the last bundle reached the target, 0 when it failed or none was tried yet", (v: TargetView) => (v.ok ? 1 : 0)],
  ] as const;
  for (const [name, help, value] of gauges) {
    registry.removeSingleMetric(name);
    new Gauge({
      name,
      help,
      labelNames: ["target"],
      registers: [registry],
      async collect() {
        for (const t of (await bundlesView(config, store)).targets) this.set({ target: t.name }, value(t));
      },
    });
  }
}

/**
 * Keeps a bundle another server pushed: streamed to `<data dir>/bundles/received/NAME.part`
 * with a size cap (TooLargeError), its seal checked when it is not encrypted (a damaged one is
 * refused), then renamed; the newest bundle.keep per server stay.
 */
export async function receiveBundle(config: Config, name: string, body: Readable): Promise<{ file: string; bytes: number }> {
  if (!BUNDLE_FILE.test(name)) throw new UserError(`${JSON.stringify(name.slice(0, 80))} is not a bundle file name (lifeboat-SERVERID-TIME.bundle[.gpg])`, 2);
  const dir = receivedDir(config.dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const part = join(dir, `.${name}.part`);
  const cap = config.bundle.maxReceiveBytes;
  let bytes = 0;
  try {
    await pipeline(
      body,
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          bytes += chunk.length;
          if (bytes > cap) throw new TooLargeError(`a bundle larger than bundle.maxReceiveBytes (${cap} bytes) is not kept`);
          yield chunk;
        }
      },
      createWriteStream(part, { mode: 0o600 }),
    );
    const kind = fileKind(part);
    if (kind === "unknown") throw new UserError(`${name} is not a Lifeboat bundle`, 2);
    if (kind === "tar") {
      try {
        await verifySeal(part);
      } catch (err) {
        if (err instanceof BundleError) throw new UserError(`${name}: refused: ${err.message}`, 2);
        throw err;
      }
    }
    renameSync(part, join(dir, name));
  } finally {
    rmSync(part, { force: true });
  }
  for (const old of toPrune(readdirSync(dir), config.bundle.keep)) rmSync(join(dir, old), { force: true });
  return { file: name, bytes };
}
