/**
 * Writing a recovery bundle (docs/bundle-format.md): Lifeboat's store (a consistent snapshot
 * without sealed secrets), each configured Amanda config's files, `amadmin CONFIG export`,
 * Amanda's trace logs and index, and each protected host's essential facts, under a manifest,
 * in a sealed tar, optionally encrypted to an OpenPGP recipient. The manifest is built by the
 * pure functions of manifest.ts; this is the edge that reads and writes files.
 */
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, createReadStream, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { amadminExport } from "../amanda/amadmin.ts";
import { amadminReads, setupOf } from "../amanda/refresh.ts";
import type { AmandaConfig } from "../config/schema.ts";
import { errorMessage } from "../errors.ts";
import { makePrivate } from "../private-file.ts";
import { sqliteMigrations } from "../store/sqlite.ts";
import type { Store } from "../store/types.ts";
import { version } from "../version.ts";
import { encryptTo } from "./gpg.ts";
import { type BundleMember, BUNDLE_FORMAT, MANIFEST_NAME, type Manifest, SEAL_NAME, SECRETS_POLICY, memberPathProblem, renderManifest } from "./manifest.ts";
import { SEAL_PLACEHOLDER, verifySeal, writeSealedTar } from "./tar.ts";

const SERVER_ID_KEY = "server-id";

/** This server's id (32 hex digits), made at first need: it names its bundles and where a receiving server keeps them. */
export async function serverId(store: Pick<Store, "settings">): Promise<string> {
  const have = await store.settings.get(SERVER_ID_KEY);
  if (have) return have;
  const id = randomBytes(16).toString("hex");
  await store.settings.set(SERVER_ID_KEY, id);
  return id;
}

/** A new id for a store brought in by an import: two live servers never share one. */
export async function renewServerId(store: Pick<Store, "settings">): Promise<string> {
  const id = randomBytes(16).toString("hex");
  await store.settings.set(SERVER_ID_KEY, id);
  return id;
}

export interface ExportOptions {
  store: Store;
  amanda: AmandaConfig[];
  /** The bundle file to write (replaced whole, never left half-written). */
  out: string;
  /** OpenPGP recipient (key id, fingerprint or user id in the gpg keyring): the bundle is encrypted to it. */
  recipient?: string;
  now?: Date;
}

export interface ExportResult {
  file: string;
  bytes: number;
  encrypted: boolean;
  manifest: Manifest;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** The sha256 of a file, streamed. */
export async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Copies what one Amanda config holds for a recovery into `stage/amanda/NAME/`; what cannot go in becomes a note. */
async function collectAmanda(a: AmandaConfig, stage: string, notes: string[]): Promise<void> {
  const base = `amanda/${a.name}`;
  if (memberPathProblem(`${base}/x`)) {
    notes.push(`amanda ${JSON.stringify(a.name)}: the name cannot be a bundle path; left out`);
    return;
  }
  let setup;
  try {
    setup = setupOf(a);
  } catch (err) {
    notes.push(`amanda ${a.name}: ${errorMessage(err)}; its files are left out`);
    return;
  }
  // Files keep their absolute path under files/, so they go back where they were (and never collide).
  const copy = (file: string, required: boolean) => {
    const to = join(stage, base, "files", file);
    try {
      if (!statSync(file).isFile()) return;
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(file, to);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (required || code !== "ENOENT") notes.push(`amanda ${a.name}: cannot read ${file} (${code ?? errorMessage(err)})`);
    }
  };
  copy(join(setup.configDir, "amanda.conf"), true);
  for (const f of setup.includes) copy(f, true);
  copy(setup.diskfile, true);
  copy(setup.tapelist, true);
  for (const f of setup.changerFiles) copy(f, false);
  const listed = (dir: string, keep: (name: string) => boolean, what: string) => {
    try {
      return readdirSync(dir).filter(keep);
    } catch (err) {
      notes.push(`amanda ${a.name}: cannot list the ${what} ${dir} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
      return [];
    }
  };
  // The trace logs (what `amadmin find` and Lifeboat's catalog read), not amdump's debug logs.
  for (const f of listed(setup.logdir, (n) => /^log\.\d+\.\d+$/.test(n), "log dir")) copy(join(setup.logdir, f), false);
  if (setup.indexdir) {
    try {
      for (const f of filesUnder(setup.indexdir)) copy(f, false);
    } catch (err) {
      notes.push(`amanda ${a.name}: cannot read the index ${setup.indexdir} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
    }
  }
  if (!amadminReads(setup)) notes.push(`amanda ${a.name}: amadmin export not run (Amanda is not installed here, or /etc/amanda/${a.name} is not ${setup.configDir})`);
  else {
    try {
      writeFileSync(join(stage, base, "amadmin-export"), await amadminExport(setup.name, setup));
    } catch (err) {
      notes.push(errorMessage(err));
    }
  }
  const { helperSocket: _socket, ...where } = setup;
  writeFileSync(join(stage, base, "setup.json"), `${JSON.stringify(where, null, 2)}\n`);
}

/** Each protected host's essential facts: the host record (no token), its newest layout, its installed packages. */
async function collectHosts(store: Store, stage: string): Promise<void> {
  for (const h of await store.hosts.list()) {
    const dir = join(stage, "hosts", h.name);
    mkdirSync(dir, { recursive: true });
    const { tokenHash: _token, ...facts } = h;
    writeFileSync(join(dir, "host.json"), `${JSON.stringify(facts, null, 2)}\n`);
    const layout = await store.layouts.get(h.name);
    if (!layout) continue;
    writeFileSync(join(dir, "layout.json"), `${JSON.stringify(layout, null, 2)}\n`);
    const packages = (layout.document as { system?: { packages?: { manager: string; list: Array<[string, string]> } | null } }).system?.packages;
    if (packages?.list.length) writeFileSync(join(dir, "packages.txt"), `# ${packages.manager}: name<TAB>version\n${packages.list.map(([n, v]) => `${n}\t${v}`).join("\n")}\n`);
  }
}

/** Writes the bundle; resolves with where and what. A failure leaves no file at `out`. */
export async function exportBundle(o: ExportOptions): Promise<ExportResult> {
  const now = o.now ?? new Date();
  const stage = mkdtempSync(join(tmpdir(), "lifeboat-bundle-"));
  const partial = `${o.out}.part`;
  try {
    const notes: string[] = [];
    mkdirSync(join(stage, "store"));
    await o.store.snapshot(join(stage, "store", "lifeboat.db"));
    await collectHosts(o.store, stage);
    for (const a of o.amanda) await collectAmanda(a, stage, notes);
    const members: BundleMember[] = [];
    for (const f of filesUnder(stage)) {
      const path = relative(stage, f);
      const problem = memberPathProblem(path);
      if (problem) {
        rmSync(f);
        notes.push(`${JSON.stringify(path)} left out: its path ${problem}`);
        continue;
      }
      members.push({ path, size: statSync(f).size, sha256: await sha256File(f) });
    }
    const manifest: Manifest = {
      format: BUNDLE_FORMAT,
      lifeboat: version,
      createdAt: now.toISOString(),
      serverId: await serverId(o.store),
      // The snapshot's own (an SQLite file whatever the store: a PostgreSQL store's migrations are not its).
      schema: sqliteMigrations(join(stage, "store", "lifeboat.db")),
      secrets: SECRETS_POLICY,
      notes,
      members,
    };
    writeFileSync(join(stage, MANIFEST_NAME), renderManifest(manifest));
    writeFileSync(join(stage, SEAL_NAME), SEAL_PLACEHOLDER);
    const tarFile = o.recipient ? join(stage, "bundle.tar") : partial;
    await writeSealedTar(stage, readdirSync(stage).filter((e) => e !== "bundle.tar"), tarFile, now);
    await verifySeal(tarFile);
    if (o.recipient) await encryptTo(tarFile, partial, o.recipient);
    makePrivate(partial);
    renameSync(partial, o.out);
    return { file: o.out, bytes: statSync(o.out).size, encrypted: !!o.recipient, manifest };
  } finally {
    rmSync(partial, { force: true });
    rmSync(stage, { recursive: true, force: true });
  }
}
