import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { UserError } from "../errors.ts";
import { type Migration, migrations as allMigrations, pendingMigrations } from "./migrations.ts";
import { ensurePrivateFile, makePrivate } from "../private-file.ts";
import { SecretBox, loadSecretKey } from "./secret-box.ts";
import { sealPlaintextKeys, sqliteAssignments, sqliteJobs, sqliteProfiles } from "./sqlite-jobs.ts";
import { sqliteCatalog } from "./sqlite-catalog.ts";
import { sqliteLeases } from "./sqlite-leases.ts";
import { sqlitePower } from "./sqlite-power.ts";
import { sqliteAmandaKeys } from "./sqlite-amanda-keys.ts";
import { type Row, auditFrom, hostFrom, now, serverFrom } from "./rows.ts";
import type { AmandaKeyRepo, AssignmentRepo, AuditEntry, CatalogRepo, HostRecord, JobRepo, LayoutRecord, LeaseRepo, PowerRepo, ProfileRepo, ServerRepo, Store } from "./types.ts";

/** Applies every migration not yet recorded, in id order, each in its own transaction; returns the ids applied now. */
export function migrate(db: Database.Database, migrations: Migration[] = allMigrations): string[] {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)");
  const done = (db.prepare("SELECT id FROM schema_migrations").all() as Row[]).map((r) => r.id as string);
  const applied: string[] = [];
  for (const m of pendingMigrations(done, migrations, db.name)) {
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)").run(m.id, now());
    })();
    applied.push(m.id);
  }
  return applied;
}

/**
 * The SQLite store: one file under the data dir, WAL mode so the CLI and the server can share
 * it. The file and its WAL are 0600 (SQLite gives the WAL and shm the database file's mode),
 * deleted rows are overwritten (secure_delete), and secrets are sealed under the key in
 * `keyFile` (default: `store-key` beside the database; an in-memory store gets a fresh key).
 */
export class SqliteStore implements Store {
  readonly db: Database.Database;
  readonly profiles: ProfileRepo;
  readonly assignments: AssignmentRepo;
  readonly jobs: JobRepo;
  readonly leases: LeaseRepo;
  private readonly flushLeases: () => void;
  readonly catalog: CatalogRepo;
  readonly power: PowerRepo;
  readonly amandaKeys: AmandaKeyRepo;

  constructor(file: string, opts: { keyFile?: string } = {}) {
    let box = SecretBox.ephemeral();
    if (file !== ":memory:") {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      box = new SecretBox(loadSecretKey(opts.keyFile ?? join(dirname(file), "store-key")));
      ensurePrivateFile(file, () => "");
      for (const f of [`${file}-wal`, `${file}-shm`]) if (existsSync(f)) makePrivate(f);
    }
    try {
      this.db = new Database(file);
    } catch (err) {
      throw new UserError(`${file}: cannot open the store (${(err as Error).message})`);
    }
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("secure_delete = ON");
    migrate(this.db);
    sealPlaintextKeys(this.db, box);
    this.profiles = sqliteProfiles(this.db);
    this.assignments = sqliteAssignments(this.db);
    this.jobs = sqliteJobs(this.db, box);
    const leases = sqliteLeases(this.db);
    this.leases = leases;
    this.flushLeases = leases.flush;
    this.catalog = sqliteCatalog(this.db);
    this.power = sqlitePower(this.db, box);
    this.amandaKeys = sqliteAmandaKeys(this.db, box);
  }

  async migrations(): Promise<string[]> {
    return (this.db.prepare("SELECT id FROM schema_migrations ORDER BY id").all() as Row[]).map((r) => r.id as string);
  }

  async close(): Promise<void> {
    this.flushLeases();
    this.db.close();
  }

  async snapshot(file: string): Promise<void> {
    // The online backup API: a consistent copy even with the server writing (WAL), never a file copy.
    await this.db.backup(file);
    const copy = new Database(file);
    try {
      copy.pragma("secure_delete = ON");
      copy.exec("DELETE FROM job_keys");
      // One file, no WAL beside it, and no free pages left holding what was deleted.
      copy.pragma("journal_mode = DELETE");
      copy.exec("VACUUM");
    } finally {
      copy.close();
    }
    makePrivate(file);
  }

  private macsOf(name: string): string[] {
    return (this.db.prepare("SELECT mac FROM host_macs WHERE host = ? ORDER BY mac").all(name) as Row[]).map(
      (r) => r.mac as string,
    );
  }

  private setMacs(name: string, macs: string[]): void {
    this.db.prepare("DELETE FROM host_macs WHERE host = ?").run(name);
    const ins = this.db.prepare("INSERT INTO host_macs (mac, host) VALUES (?, ?)");
    for (const mac of macs) {
      const owner = this.db.prepare("SELECT host FROM host_macs WHERE mac = ?").get(mac) as Row | undefined;
      if (owner) throw new UserError(`MAC ${mac} already belongs to host ${String(owner.host)}`, 2);
      ins.run(mac, name);
    }
  }

  readonly hosts = {
    add: async (h: Omit<HostRecord, "createdAt">): Promise<HostRecord> => {
      if (this.db.prepare("SELECT 1 FROM hosts WHERE name = ?").get(h.name))
        throw new UserError(`host ${h.name} already exists`, 2);
      this.db.transaction(() => {
        this.db
          .prepare(
            "INSERT INTO hosts (name, token_hash, smbios_uuid, amanda_config, dle_map, created_at) VALUES (?, ?, ?, ?, ?, ?)",
          )
          .run(h.name, h.tokenHash, h.smbiosUuid, h.amandaConfig, JSON.stringify(h.dleMap), now());
        this.setMacs(h.name, h.macs);
      })();
      return (await this.hosts.get(h.name))!;
    },
    get: async (name: string): Promise<HostRecord | undefined> => {
      const r = this.db.prepare("SELECT * FROM hosts WHERE name = ?").get(name) as Row | undefined;
      return r ? hostFrom(r, this.macsOf(name)) : undefined;
    },
    byMac: async (mac: string): Promise<HostRecord | undefined> => {
      const r = this.db.prepare("SELECT host FROM host_macs WHERE mac = ?").get(mac) as Row | undefined;
      return r ? this.hosts.get(r.host as string) : undefined;
    },
    list: async (): Promise<HostRecord[]> =>
      (this.db.prepare("SELECT * FROM hosts ORDER BY name").all() as Row[]).map((r) =>
        hostFrom(r, this.macsOf(r.name as string)),
      ),
    update: async (name: string, patch: Partial<Omit<HostRecord, "name" | "createdAt">>): Promise<HostRecord> => {
      const cur = await this.hosts.get(name);
      if (!cur) throw new UserError(`no host named ${name}`, 2);
      const next = { ...cur, ...patch };
      this.db.transaction(() => {
        this.db
          .prepare("UPDATE hosts SET token_hash = ?, smbios_uuid = ?, amanda_config = ?, dle_map = ? WHERE name = ?")
          .run(next.tokenHash, next.smbiosUuid, next.amandaConfig, JSON.stringify(next.dleMap), name);
        if (patch.macs) this.setMacs(name, patch.macs);
      })();
      return (await this.hosts.get(name))!;
    },
    remove: async (name: string): Promise<boolean> =>
      this.db.prepare("DELETE FROM hosts WHERE name = ?").run(name).changes > 0,
  };

  readonly layouts = {
    add: async (host: string, document: unknown, capturedAt = now()): Promise<LayoutRecord> => {
      const version = this.db.transaction(() => {
        const r = this.db.prepare("SELECT MAX(version) AS v FROM layouts WHERE host = ?").get(host) as Row;
        const v = ((r.v as number | null) ?? 0) + 1;
        this.db
          .prepare("INSERT INTO layouts (host, version, captured_at, document) VALUES (?, ?, ?, ?)")
          .run(host, v, capturedAt, JSON.stringify(document));
        return v;
      })();
      return { host, version, capturedAt, document };
    },
    get: async (host: string, version?: number): Promise<LayoutRecord | undefined> => {
      const r = (
        version === undefined
          ? this.db.prepare("SELECT * FROM layouts WHERE host = ? ORDER BY version DESC LIMIT 1").get(host)
          : this.db.prepare("SELECT * FROM layouts WHERE host = ? AND version = ?").get(host, version)
      ) as Row | undefined;
      if (!r) return undefined;
      return {
        host,
        version: r.version as number,
        capturedAt: r.captured_at as string,
        document: JSON.parse(r.document as string),
      };
    },
    versions: async (host: string) =>
      (
        this.db.prepare("SELECT version, captured_at FROM layouts WHERE host = ? ORDER BY version").all(host) as Row[]
      ).map((r) => ({ host, version: r.version as number, capturedAt: r.captured_at as string })),
    // The newest versions are the highest numbers (a host's next version is its highest + 1).
    prune: async (keep: number): Promise<number> =>
      this.db
        .prepare(
          `DELETE FROM layouts WHERE version <= (SELECT MAX(version) FROM layouts AS l WHERE l.host = layouts.host) - ?
             AND NOT EXISTS (SELECT 1 FROM profiles AS p WHERE p.host = layouts.host AND p.layout_version = layouts.version)`,
        )
        .run(keep).changes,
  };

  readonly audit = {
    append: async (e: Omit<AuditEntry, "id" | "at">): Promise<AuditEntry> => {
      const at = now();
      const info = this.db
        .prepare("INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)")
        .run(at, e.actor, e.action, e.target, JSON.stringify(e.detail ?? null));
      return { id: Number(info.lastInsertRowid), at, ...e };
    },
    list: async (opts: { target?: string; limit?: number } = {}): Promise<AuditEntry[]> => {
      const rows = (
        opts.target
          ? this.db.prepare("SELECT * FROM audit WHERE target = ? ORDER BY id DESC LIMIT ?").all(opts.target, opts.limit ?? 1000)
          : this.db.prepare("SELECT * FROM audit ORDER BY id DESC LIMIT ?").all(opts.limit ?? 1000)
      ) as Row[];
      return rows.map(auditFrom);
    },
  };

  readonly servers: ServerRepo = {
    beat: async (s) => {
      this.db
        .prepare(
          `INSERT INTO servers (name, url, amanda, started_at, last_seen_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(name) DO UPDATE SET url = excluded.url, amanda = excluded.amanda, started_at = excluded.started_at, last_seen_at = excluded.last_seen_at`,
        )
        .run(s.name, s.url, JSON.stringify(s.amanda), s.startedAt, now());
    },
    list: async () => (this.db.prepare("SELECT * FROM servers ORDER BY name").all() as Row[]).map(serverFrom),
  };

  /** One server per SQLite file: no other server changes its jobs. */
  async watchJobs(): Promise<() => Promise<void>> {
    return async () => undefined;
  }

  readonly settings = {
    get: async (key: string): Promise<string | undefined> =>
      (this.db.prepare("SELECT value FROM settings WHERE key = ?").get(key) as Row | undefined)?.value as
        | string
        | undefined,
    set: async (key: string, value: string): Promise<void> => {
      this.db.prepare("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(key, value);
    },
  };
}

/** The migrations an SQLite store file records, in id order (a snapshot's, for its bundle's manifest). */
export function sqliteMigrations(file: string): string[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT id FROM schema_migrations ORDER BY id").all() as Row[]).map((r) => r.id as string);
  } finally {
    db.close();
  }
}
