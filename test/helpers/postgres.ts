/**
 * A throwaway PostgreSQL for tests: `initdb` in a temp dir, `pg_ctl` listening only on a Unix
 * socket in that dir (no TCP port, nothing shared with the machine), trust auth for the
 * `lifeboat` superuser, durability off (a test's data dies with it). As root, initdb refuses to
 * run, so the server runs as the `postgres` user (runuser). No system service is used.
 */
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import pg from "pg";
import { spawnSync } from "node:child_process";
import type { Missing } from "./needs.ts";

/** Debian's binaries (newest version first), else whatever PATH has. */
function binDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  return versions.map((v) => join(root, v, "bin")).find((d) => existsSync(join(d, "initdb")) && existsSync(join(d, "pg_ctl")));
}

const asRoot = process.getuid?.() === 0;

function postgresUid(): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postgres:"));
    if (!line) return undefined;
    const f = line.split(":");
    return { uid: Number(f[2]), gid: Number(f[3]) };
  } catch {
    return undefined;
  }
}

/** Why a throwaway PostgreSQL cannot start here, or null. */
export function postgresUnavailable(): Missing {
  if (!binDir()) return "PostgreSQL's initdb and pg_ctl (/usr/lib/postgresql/N/bin; apt package postgresql)";
  if (asRoot && !postgresUid()) return "a postgres user to run PostgreSQL as (initdb refuses root; apt package postgresql makes it)";
  return null;
}

export interface TestPostgres {
  /** The socket directory (host= in URLs). */
  dir: string;
  /** A URL for database `db` on this server. */
  url(db: string): string;
  /** Creates a fresh, empty database and returns its URL. */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
}

let dbCount = 0;

/**
 * Starts a PostgreSQL. The caller stops it (`afterAll(() => pg.stop())` beside its `beforeAll`:
 * a hook registered from inside another hook never runs); if the test process ends first, an
 * exit handler stops it, so no server and no directory is left behind either way.
 */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = binDir()!;
  const dir = mkdtempSync(join(tmpdir(), "lifeboat-pg-"));
  const data = join(dir, "data");
  const owner = asRoot ? postgresUid()! : undefined;
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const run = (cmd: string, args: string[]) => (owner ? execa("runuser", ["-u", "postgres", "--", join(bin, cmd), ...args]) : execa(join(bin, cmd), args));
  await run("initdb", ["-D", data, "-U", "lifeboat", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
  const opts = `-c listen_addresses='' -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  await run("pg_ctl", ["-D", data, "-o", opts, "-l", join(dir, "log"), "-w", "-s", "start"]);
  let stopped = false;
  const url = (db: string) => `postgresql://lifeboat@localhost/${db}?host=${encodeURIComponent(dir)}`;
  const pgCtlStop = [join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-s", "stop"];
  const onExit = () => {
    if (stopped) return;
    stopped = true;
    spawnSync(owner ? "runuser" : pgCtlStop[0]!, owner ? ["-u", "postgres", "--", ...pgCtlStop] : pgCtlStop.slice(1));
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  const stop = async () => {
    process.off("exit", onExit);
    if (stopped) return;
    stopped = true;
    await run("pg_ctl", ["-D", data, "-m", "immediate", "-s", "stop"]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    dir,
    url,
    stop,
    async createDatabase() {
      const name = `t${process.pid}_${++dbCount}`;
      const c = new pg.Client({ connectionString: url("postgres") });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url(name);
    },
  };
}
