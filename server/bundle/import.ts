/**
 * Restoring a recovery bundle into an empty data dir (docs/bundle-format.md, "Import"). Every
 * check comes before anything is written there: the data dir is empty, the file decrypts,
 * its format is one this Lifeboat reads, its seal holds, its store's schema is not newer,
 * and every member is the one its manifest names. Then the store goes in place (with a new
 * server id and an audit entry, its secret key new) and the rest of the bundle (Amanda's
 * files and database export, the hosts' facts) under `restored/` for the Amanda server's
 * own recovery.
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { UserError } from "../errors.ts";
import { makePrivate, securePrivateDir } from "../private-file.ts";
import { migrations } from "../store/migrations.ts";
import { migrateSqliteFile } from "../store/copy.ts";
import { openStore } from "../store/open.ts";
import type { PgStore } from "../store/postgres.ts";
import { renewServerId, sha256File } from "./export.ts";
import { decryptTo, fileKind } from "./gpg.ts";
import { BUNDLE_FORMAT, BundleError, MANIFEST_NAME, type Manifest, SEAL_NAME, manifestFormat, membersProblem, parseManifest, schemaProblem } from "./manifest.ts";
import { extractTar, readMember, verifySeal } from "./tar.ts";

/** Where an import puts what is not the store: Amanda's files, its database export and the hosts' facts. */
export const RESTORED_DIR = "restored";

export interface ImportResult {
  dataDir: string;
  manifest: Manifest;
  /** The new server id the imported store got. */
  serverId: string;
  restored: string;
}

/**
 * Checks `file` and, only when it is a whole bundle this Lifeboat can read, extracts it into
 * `work`; resolves with its manifest. A BundleError says, in one line, why not.
 */
export async function openBundle(file: string, work: string): Promise<Manifest> {
  let tarFile = file;
  const kind = fileKind(file);
  if (kind === "unknown") throw new BundleError("not a Lifeboat bundle (neither a tar archive nor OpenPGP-encrypted)");
  if (kind === "openpgp") {
    tarFile = join(work, "bundle.tar");
    await decryptTo(file, tarFile);
  }
  // The format first: a newer one may seal differently, and "newer" is the reason to give then.
  const text = await readMember(tarFile, MANIFEST_NAME);
  if ((manifestFormat(text) ?? 0) > BUNDLE_FORMAT) parseManifest(text); // throws, naming the newer format
  await verifySeal(tarFile);
  const manifest = parseManifest(text);
  const problem = schemaProblem(manifest, migrations.map((m) => m.id));
  if (problem) throw new BundleError(problem);
  const into = join(work, "x");
  mkdirSync(into, { mode: 0o700 });
  await extractTar(tarFile, into);
  const found = new Map<string, { size: number; sha256: string }>();
  for (const e of readdirSync(into, { recursive: true, withFileTypes: true })) {
    const path = relative(into, join(e.parentPath, e.name));
    if (e.isDirectory()) continue;
    if (!e.isFile()) throw new BundleError(`member ${path} is not a file`);
    if (path === MANIFEST_NAME || path === SEAL_NAME) continue;
    found.set(path, { size: statSync(join(into, path)).size, sha256: await sha256File(join(into, path)) });
  }
  const mismatch = membersProblem(manifest, found);
  if (mismatch) throw new BundleError(`${mismatch}: damaged`);
  return manifest;
}

/** Imports `file` into `cfg.dataDir`, which must be empty (or not exist). Refusals are one-line UserErrors (exit 2). */
export async function importBundle(file: string, cfg: { dataDir: string; adminTokenFile: string; store: { url: string } }, actor: string): Promise<ImportResult> {
  const dataDir = cfg.dataDir;
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0)
    throw new UserError(`${dataDir}: the data dir is not empty; a bundle is imported only into an empty one (--data-dir DIR)`, 2);
  try {
    if (!statSync(file).isFile()) throw new UserError(`${file}: not a file`, 2);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 2);
  }
  const work = mkdtempSync(join(tmpdir(), "lifeboat-import-"));
  try {
    let manifest: Manifest;
    try {
      manifest = await openBundle(file, work);
    } catch (err) {
      if (err instanceof BundleError) throw new UserError(`${file}: refused: ${err.message}`, 2);
      throw err;
    }
    securePrivateDir(dataDir);
    const x = join(work, "x");
    const db = join(dataDir, "lifeboat.db");
    copyFileSync(join(x, "store", "lifeboat.db"), db);
    makePrivate(db);
    rmSync(join(x, "store"), { recursive: true });
    const restored = join(dataDir, RESTORED_DIR);
    cpSync(x, restored, { recursive: true });
    // A PostgreSQL store gets the bundle's store copied in (refused unless empty); the data dir keeps no SQLite copy.
    if (cfg.store.url) {
      const target = openStore(cfg) as PgStore;
      try {
        await target.opened();
        await migrateSqliteFile(db, target.pool, target.where);
      } finally {
        await target.close();
      }
      rmSync(db);
    }
    const store = openStore(cfg);
    try {
      const serverId = await renewServerId(store);
      await store.audit.append({
        actor,
        action: "store.import",
        target: "store",
        detail: { file, from: manifest.serverId, createdAt: manifest.createdAt, lifeboat: manifest.lifeboat, notes: manifest.notes },
      });
      return { dataDir, manifest, serverId, restored };
    } finally {
      await store.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
