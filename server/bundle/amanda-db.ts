/**
 * Putting an Amanda server's database back from an imported bundle (issue 23 item 3): the
 * config's files, trace logs and index go back where they were, owned by its dump user, the
 * curinfo database comes from `amadmin CONFIG import`, and /etc/amanda/CONFIG names the config,
 * so `amadmin CONFIG find` and `amrecover` answer as before the loss. Which bundle members may
 * be written where is decided by `putBackPlan` (pure); this module's edge does the writing, as
 * root, and only once every member was found acceptable: a refusal writes nothing.
 */
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, symlinkSync } from "node:fs";
import { chown, chmod } from "node:fs/promises";
import { dirname, isAbsolute, join, normalize, relative } from "node:path";
import { execa } from "execa";
import { readAmandaConfig } from "../amanda/conf.ts";
import { UserError } from "../errors.ts";
import { sha256File } from "./export.ts";
import { RESTORED_DIR } from "./import.ts";

/** Where an Amanda config keeps what the bundle holds (its setup.json, as written at export). */
export interface AmandaPlaces {
  configDir: string;
  logdir: string;
  indexdir: string | null;
  tapelist: string;
  diskfile: string;
  includes: string[];
  changerFiles: string[];
  dumpuser: string;
}

export type MemberState = "missing" | "same" | "differs";

export interface PutBackPlan {
  write: string[];
  unchanged: string[];
  /** Present with other bytes: written only with --force. */
  conflicts: string[];
  /** Not one of the config's places: never written. */
  outside: string[];
}

const inside = (dir: string, p: string) => p.startsWith(`${dir.replace(/\/+$/, "")}/`);

/** Pure: which restored files go back, given each one's state on this machine. */
export function putBackPlan(places: AmandaPlaces, files: Array<{ path: string; state: MemberState }>, force: boolean): PutBackPlan {
  const exact = new Set([join(places.configDir, "amanda.conf"), places.tapelist, places.diskfile, ...places.includes, ...places.changerFiles]);
  const dirs = [places.configDir, places.logdir, ...(places.indexdir ? [places.indexdir] : [])];
  const plan: PutBackPlan = { write: [], unchanged: [], conflicts: [], outside: [] };
  for (const f of files) {
    const fine = isAbsolute(f.path) && normalize(f.path) === f.path && (exact.has(f.path) || dirs.some((d) => inside(d, f.path)));
    if (!fine) plan.outside.push(f.path);
    else if (f.state === "same") plan.unchanged.push(f.path);
    else if (f.state === "missing" || force) plan.write.push(f.path);
    else plan.conflicts.push(f.path);
  }
  return plan;
}

/** Pure: the places of setup.json, or a one-line reason it cannot be trusted. */
export function placesOf(json: unknown): AmandaPlaces | string {
  const o = json as Record<string, unknown>;
  const path = (k: string, v: unknown) => (typeof v === "string" && isAbsolute(v) && normalize(v) === v ? null : `${k} is not an absolute path`);
  if (!o || typeof o !== "object") return "not an object";
  for (const k of ["configDir", "logdir", "tapelist", "diskfile"]) {
    const why = path(k, o[k]);
    if (why) return why;
  }
  if (o.indexdir !== null && path("indexdir", o.indexdir)) return "indexdir is not an absolute path";
  for (const k of ["includes", "changerFiles"]) if (!Array.isArray(o[k]) || (o[k] as unknown[]).some((v) => path(k, v))) return `${k} is not a list of absolute paths`;
  if (typeof o.dumpuser !== "string" || !/^[a-z_][a-z0-9_-]{0,31}$/.test(o.dumpuser)) return "dumpuser is not a user name";
  return {
    configDir: o.configDir as string,
    logdir: o.logdir as string,
    indexdir: (o.indexdir as string | null) ?? null,
    tapelist: o.tapelist as string,
    diskfile: o.diskfile as string,
    includes: o.includes as string[],
    changerFiles: o.changerFiles as string[],
    dumpuser: o.dumpuser,
  };
}

export interface PutBackResult {
  config: string;
  from: string;
  written: string[];
  unchanged: string[];
  /** /etc/amanda/CONFIG made a link to the config dir (null: it already named it). */
  linked: string | null;
  infofile: string | null;
  /** `amadmin CONFIG import` ran on the bundle's export. */
  imported: boolean;
  notes: string[];
}

async function ids(user: string): Promise<{ uid: number; gid: number }> {
  const [u, g] = await Promise.all([execa("id", ["-u", user], { reject: false }), execa("id", ["-g", user], { reject: false })]);
  if (u.exitCode !== 0 || g.exitCode !== 0) throw new UserError(`the dump user ${user} does not exist here (install amanda-server first); nothing written`, 2);
  return { uid: Number(u.stdout), gid: Number(g.stdout) };
}

/** mkdir -p, each directory it makes owned by the dump user; resolves when `dir` exists. */
async function makeDirs(dir: string, owner: { uid: number; gid: number }): Promise<void> {
  if (existsSync(dir)) return;
  await makeDirs(dirname(dir), owner);
  mkdirSync(dir, { mode: 0o750 });
  await chown(dir, owner.uid, owner.gid);
}

/**
 * `lifeboat store amanda-db NAME`: puts config NAME back from `<dataDir>/restored/amanda/NAME`
 * (what `store import` left there). Root only: it writes Amanda's own files.
 */
export async function putBackAmanda(o: { dataDir: string; name: string; force: boolean; etcAmanda?: string }): Promise<PutBackResult> {
  const base = join(o.dataDir, RESTORED_DIR, "amanda");
  const from = join(base, o.name);
  if (!/^[A-Za-z0-9._-]+$/.test(o.name) || !existsSync(join(from, "setup.json"))) {
    const have = existsSync(base) ? readdirSync(base).filter((n) => existsSync(join(base, n, "setup.json"))) : [];
    throw new UserError(`no Amanda config ${JSON.stringify(o.name)} in ${base} (${have.length ? `it holds ${have.join(", ")}` : "run lifeboat store import FILE first"}); nothing written`, 2);
  }
  if (process.getuid?.() !== 0) throw new UserError("store amanda-db writes Amanda's own files and runs amadmin as its dump user: run it as root; nothing written", 2);
  const places = placesOf(JSON.parse(readFileSync(join(from, "setup.json"), "utf8")));
  if (typeof places === "string") throw new UserError(`${join(from, "setup.json")}: ${places}; nothing written`, 2);
  const etc = join(o.etcAmanda ?? "/etc/amanda", o.name);
  // amadmin reads /etc/amanda/NAME only: it must be (or become) the config dir the bundle names.
  const etcTarget = existsSync(etc) ? realpathSync(etc) : null;
  if (etcTarget !== null && etcTarget !== places.configDir && (!existsSync(places.configDir) || realpathSync(places.configDir) !== etcTarget))
    throw new UserError(`${etc} is ${etcTarget}, not ${places.configDir} (the config's dir in the bundle): amadmin ${o.name} would read another config; nothing written`, 2);
  const owner = await ids(places.dumpuser);

  const filesDir = join(from, "files");
  const found: Array<{ path: string; state: MemberState }> = [];
  for (const e of existsSync(filesDir) ? readdirSync(filesDir, { recursive: true, withFileTypes: true }) : []) {
    if (!e.isFile()) continue;
    const path = `/${relative(filesDir, join(e.parentPath, e.name))}`;
    let state: MemberState = "missing";
    if (existsSync(path)) state = lstatSync(path).isFile() && (await sha256File(path)) === (await sha256File(join(filesDir, path))) ? "same" : "differs";
    found.push({ path, state });
  }
  const plan = putBackPlan(places, found, o.force);
  if (plan.outside.length) throw new UserError(`${plan.outside[0]} (of ${plan.outside.length} bundle files) is not in config ${o.name}'s places (${places.configDir}, ${places.logdir}${places.indexdir ? `, ${places.indexdir}` : ""}); nothing written`, 2);
  if (plan.conflicts.length)
    throw new UserError(`${plan.conflicts.length} files exist here with other contents than the bundle's (first: ${plan.conflicts[0]}); nothing written (--force replaces them)`, 2);

  for (const path of plan.write) {
    await makeDirs(dirname(path), owner);
    const part = `${path}.lifeboat-part`;
    copyFileSync(join(filesDir, path), part);
    await chmod(part, 0o600);
    await chown(part, owner.uid, owner.gid);
    renameSync(part, path);
  }
  const notes: string[] = [];
  let linked: string | null = null;
  if (etcTarget === null && etc !== places.configDir) {
    await makeDirs(dirname(etc), owner);
    symlinkSync(places.configDir, etc);
    linked = etc;
  }
  // The curinfo database is a directory amadmin import fills; the config says where.
  const { infofile } = readAmandaConfig(places.configDir, { name: o.name });
  if (infofile) await makeDirs(infofile, owner);
  let imported = false;
  const exportFile = join(from, "amadmin-export");
  if (!existsSync(exportFile)) notes.push(`the bundle has no amadmin export of ${o.name} (see its notes): the curinfo database stays empty until the next amdump`);
  else {
    const r = await execa("runuser", ["-u", places.dumpuser, "--", "amadmin", o.name, "import"], { inputFile: exportFile, reject: false, all: true });
    if (r.exitCode !== 0) throw new UserError(`amadmin ${o.name} import failed (exit ${r.exitCode}): ${String(r.all).trim().split("\n").slice(-2).join(" ")}; the files are back, the curinfo database is not`, 1);
    imported = true;
  }
  return { config: o.name, from, written: plan.write, unchanged: plan.unchanged, linked, infofile, imported, notes };
}
