/**
 * A real Amanda 3.5 lab for tests: built ONCE per machine by scripts/amanda-lab/build.sh
 * (three amdumps, ~30 s) into a cache dir keyed by AMANDA_LAB_VERSION, and reused by
 * every later test run while it is intact. Needs root and the Debian packages listed
 * in scripts/apt-packages.txt (amanda-server, amanda-client, libencode-locale-perl).
 *
 *   const lab = await amandaLab();      // builds or reuses; links /etc/amanda/<lab.config>
 *   lab.runs                            // [{run: 1, datestamp, level: 0, taped: true}, ...]
 *   lab.dles                            // [{tag: "plain", disk, device, compressed: false}, ...]
 *   lab.manifest("plain", 2)            // the tree of DLE "plain" right after run 2
 *   await lab.amanda(["amfetchdump", ...])   // an Amanda command as the dump user
 *   await lab.release()                 // the last user removes the /etc/amanda link (keeps the cache)
 *
 * Tests must treat the lab as read-only (copy what they break); Amanda itself adds one
 * trace log per amfetchdump call, which is harmless.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type Result } from "execa";
import { alive, withLock } from "./dir-lock.ts";

/** Bump when build.sh changes what it makes: a new cache dir and Amanda config name. */
export const AMANDA_LAB_VERSION = 1;
const CACHE = process.env.LIFEBOAT_AMANDA_LAB_CACHE ?? "/var/cache/lifeboat/amanda-lab";
const scripts = fileURLToPath(new URL("../../scripts/amanda-lab/", import.meta.url));

export interface AmandaLabDle {
  tag: "plain" | "gz";
  host: string;
  /** Amanda disk name (what the catalog and chains use). */
  disk: string;
  /** The directory that was dumped. */
  device: string;
  compressed: boolean;
}

export interface AmandaLabRun {
  run: number;
  datestamp: string;
  level: number;
  /** false: the dumps of this run stay on the holding disk (amdump --no-taper). */
  taped: boolean;
}

export interface AmandaLab {
  root: string;
  /** Amanda config name; /etc/amanda/<config> links to configDir while the lab is in use. */
  config: string;
  configDir: string;
  vtapes: string;
  holding: string;
  logdir: string;
  dumpuser: string;
  dles: AmandaLabDle[];
  runs: AmandaLabRun[];
  /** Tree fingerprint (scripts/amanda-lab/manifest.sh) of a DLE right after a run. */
  manifest(tag: AmandaLabDle["tag"], run: number): string;
  /** Runs an Amanda command as the dump user, one at a time across processes, stdin from /dev/null (amfetchdump reads it). */
  amanda(argv: string[], opts?: { encoding?: "buffer" }): Promise<Result>;
  /** Unregisters this process; the last user removes the /etc/amanda link (the cache stays). */
  release(): Promise<void>;
}

/** Why the lab cannot be built here, or null. Tests print it and fail (CI is root with Amanda). */
export function amandaLabUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "the Amanda lab needs root (dumps run as user backup, trees have foreign owners)";
  if (!existsSync("/usr/sbin/amdump")) return "amanda-server is not installed (scripts/apt-packages.txt; run scripts/bootstrap)";
  return null;
}

/** The fingerprint of a tree, in the format of the lab's manifests. */
export async function treeManifest(dir: string): Promise<string> {
  return (await execa(join(scripts, "manifest.sh"), [dir])).stdout;
}

/**
 * Builds a lab with `script ROOT CONFIG` into the cache (or reuses it), links
 * /etc/amanda/<config> to ROOT/config and registers this process as a user of it; the
 * returned release unregisters, and the last user removes the link.
 */
async function cachedLab(root: string, config: string, script: string): Promise<{ configDir: string; release: () => Promise<void> }> {
  const ready = join(root, "READY");
  mkdirSync(CACHE, { recursive: true });
  await withLock(`${root}.lock`, async () => {
    if (existsSync(ready)) return;
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    const r = await execa(join(scripts, script), [root, config], { reject: false, stdin: "ignore", all: true });
    if (r.exitCode !== 0) throw new Error(`building the Amanda lab (${script}) failed (exit ${r.exitCode}):\n${String(r.all).slice(-4000)}`);
    writeFileSync(ready, new Date().toISOString());
  });
  const link = join("/etc/amanda", config);
  const configDir = join(root, "config");
  // Several test files (in parallel processes) use the lab: each registers its pid, and
  // the /etc/amanda link goes away with the last user.
  const users = join(root, "users");
  await withLock(`${root}.lock`, async () => {
    mkdirSync(users, { recursive: true });
    writeFileSync(join(users, String(process.pid)), "");
    let current = "";
    try {
      current = readlinkSync(link);
    } catch {
      /* not there */
    }
    if (current !== configDir) {
      mkdirSync(dirname(link), { recursive: true });
      rmSync(link, { force: true });
      symlinkSync(configDir, link);
    }
  });
  const release = () =>
    withLock(`${root}.lock`, async () => {
      rmSync(join(users, String(process.pid)), { force: true });
      const others = readdirSync(users).filter((p) => alive(Number(p)));
      if (others.length === 0) rmSync(link, { force: true });
    });
  return { configDir, release };
}

/** Runs an Amanda command of a lab as the dump user, one at a time per lab (flock: its vtape changer is one drive), stdin from /dev/null. */
function labAmanda(root: string): AmandaLab["amanda"] {
  return (argv, opts = {}) =>
    execa("flock", [join(root, "amanda.lock"), "runuser", "-u", "backup", "--", ...argv], {
      stdin: "ignore",
      reject: false,
      ...(opts.encoding ? { encoding: "buffer" as const } : {}),
    });
}

/** Builds the lab (or reuses the cached one) and links /etc/amanda/<config> to it. */
export async function amandaLab(): Promise<AmandaLab> {
  const why = amandaLabUnavailable();
  if (why) throw new Error(why);
  const root = join(CACHE, `v${AMANDA_LAB_VERSION}`);
  const config = `lifeboat-lab-v${AMANDA_LAB_VERSION}`;
  const { configDir, release } = await cachedLab(root, config, "build.sh");
  const runs = readFileSync(join(root, "runs.txt"), "utf8")
    .trim()
    .split("\n")
    .map((l) => {
      const [run, datestamp, level] = l.split(" ");
      return { run: Number(run), datestamp: datestamp!, level: Number(level), taped: Number(run) !== 3 };
    });
  return {
    root,
    config,
    configDir,
    vtapes: join(root, "vtapes"),
    holding: join(root, "holding"),
    logdir: join(root, "state", "log"),
    dumpuser: "backup",
    dles: [
      { tag: "plain", host: "localhost", disk: join(root, "trees", "plain"), device: join(root, "trees", "plain"), compressed: false },
      { tag: "gz", host: "localhost", disk: "Lab Docs $HOME", device: join(root, "trees", "gz docs"), compressed: true },
    ],
    runs,
    manifest: (tag, run) => readFileSync(join(root, "manifests", `run${run}.${tag}.txt`), "utf8"),
    amanda: labAmanda(root),
    release,
  };
}

/** Bump when build-crypt.sh changes what it makes: a new cache dir and Amanda config name. */
export const AMANDA_CRYPT_LAB_VERSION = 1;

/** The encrypted-dumps lab (scripts/amanda-lab/build-crypt.sh): one level 0 per DLE on a vtape, and the keys. */
export interface AmandaCryptLab {
  root: string;
  config: string;
  vtapes: string;
  logdir: string;
  /** amcryptsimple, `encrypt server`; amgpgcrypt, `encrypt client`. */
  dles: Array<{ tag: "simple" | "gpg"; host: "localhost"; disk: string; datestamp: string }>;
  /** amcryptsimple's passphrase (a 0600 file) and amgpgcrypt's armoured secret key (a 0600 file). */
  passphraseFile: string;
  secretKeyFile: string;
  amanda: AmandaLab["amanda"];
  release(): Promise<void>;
}

/** Builds the encrypted-dumps lab (~20 s, cached like the main lab) or reuses it, and links /etc/amanda/<config> to it. */
export async function amandaCryptLab(): Promise<AmandaCryptLab> {
  const why = amandaLabUnavailable();
  if (why) throw new Error(why);
  const root = join(CACHE, `crypt-v${AMANDA_CRYPT_LAB_VERSION}`);
  const config = `lifeboat-crypt-v${AMANDA_CRYPT_LAB_VERSION}`;
  const { release } = await cachedLab(root, config, "build-crypt.sh");
  const runs = readFileSync(join(root, "runs.txt"), "utf8").trim().split("\n").map((l) => l.split(" "));
  const ds = (dle: string) => runs.find((r) => r[3] === dle)![1]!;
  return {
    root,
    config,
    vtapes: join(root, "vtapes"),
    logdir: join(root, "state", "log"),
    dles: [
      { tag: "simple", host: "localhost", disk: "crypt-simple", datestamp: ds("crypt-simple") },
      { tag: "gpg", host: "localhost", disk: "crypt-gpg", datestamp: ds("crypt-gpg") },
    ],
    passphraseFile: join(root, "keys", "passphrase"),
    secretKeyFile: join(root, "keys", "secret-key.asc"),
    amanda: labAmanda(root),
    release,
  };
}
