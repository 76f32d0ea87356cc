/**
 * The PostgreSQL store (`store: { url: postgres://… }`): the same repositories as the SQLite one
 * (types.ts), for several Lifeboat servers sharing one list of hosts, profiles, jobs and audit.
 * Same columns and row mappings (rows.ts); every change that must be all or nothing runs in one
 * transaction on one connection, and a compare-and-set is one `UPDATE … WHERE state = $from`
 * (PostgreSQL re-reads the row after a concurrent writer commits, so of two racing transitions of
 * one job exactly one matches). Secrets are sealed here with this server's store key file, which
 * every server of one store must share: the first server to open the store records a check
 * value, and a server with another key is refused at start instead of failing at a key hand-out.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { UserError } from "../errors.ts";
import { ACTIVE_STATES, TERMINAL_STATES } from "../jobs/job-state.ts";
import type { CatalogDump } from "../amanda/model.ts";
import type { Migration } from "./migrations.ts";
import { pendingMigrations } from "./migrations.ts";
import { pgMigrations } from "./pg-migrations.ts";
import {
  JOB_COLUMNS,
  type Row,
  auditFrom,
  dumpFrom,
  eventFrom,
  hostFrom,
  jobColumn,
  jobFrom,
  keyContext,
  leaseFrom,
  now,
  powerFrom,
  amandaKeyContext,
  amandaKeyFrom,
  amandaKeyOf,
  amandaKeyText,
  powerSecretContext,
  profileFrom,
  refreshFrom,
  serverFrom,
  claimableSql,
} from "./rows.ts";
import { SecretBox, loadSecretKey } from "./secret-box.ts";
import { copyToSqlite } from "./copy.ts";
import { inTransaction } from "./pg-tx.ts";
import type {
  AssignmentRepo,
  AuditEntry,
  AuditRepo,
  CatalogRepo,
  HostRecord,
  HostRepo,
  JobEvent,
  JobRepo,
  JobState,
  LayoutRecord,
  LayoutRepo,
  LeaseRepo,
  PowerRepo,
  AmandaKeyRepo,
  ProfileRepo,
  ServerRepo,
  SettingsRepo,
  Store,
} from "./types.ts";

/** A pool or one connection of it (inside a transaction). */
type Db = Pick<pg.PoolClient, "query">;

/** Where the store key's check value lives (settings); never copied from or to another store. */
export const KEY_CHECK_SETTING = "store.keyCheck";
const KEY_CHECK_CONTEXT = "store key check";
/** The advisory lock servers take while migrating, so several starting at once migrate one after another. */
const MIGRATION_LOCK = 0x4c6966;
/** The channel job changes are announced on (watchJobs). */
const JOB_CHANNEL = "lifeboat_jobs";

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(not a URL)";
  }
}

/** BIGINT (counts, ids, byte totals) as numbers: Lifeboat's stay far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: string) => (oid === 20 ? Number : pg.types.getTypeParser(oid, format as "text"))) as typeof pg.types.getTypeParser,
};

const activeList = ACTIVE_STATES.map((s) => `'${s}'`).join(", ");
const terminalList = TERMINAL_STATES.map((s) => `'${s}'`).join(", ");

/** Applies every PostgreSQL migration not yet recorded, in id order, each in its own transaction; returns the ids applied now. */
export async function migratePg(pool: pg.Pool, where: string, migrations: Migration[] = pgMigrations): Promise<string[]> {
  const c = await pool.connect();
  try {
    await c.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT COLLATE "C" PRIMARY KEY, applied_at TEXT NOT NULL)`);
    const done = (await c.query<{ id: string }>("SELECT id FROM schema_migrations")).rows.map((r) => r.id);
    const applied: string[] = [];
    for (const m of pendingMigrations(done, migrations, where)) {
      await c.query("BEGIN");
      try {
        await c.query(m.sql);
        await c.query("INSERT INTO schema_migrations (id, applied_at) VALUES ($1, $2)", [m.id, now()]);
        await c.query("COMMIT");
      } catch (err) {
        await c.query("ROLLBACK");
        throw new UserError(`${where}: migration ${m.id} failed and was rolled back: ${(err as Error).message}`);
      }
      applied.push(m.id);
    }
    return applied;
  } finally {
    await c.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
    c.release();
  }
}

export class PgStore implements Store {
  readonly pool: pg.Pool;
  /** The URL without its password. */
  readonly where: string;
  private readonly box: SecretBox;
  private readonly ready: Promise<void>;

  /** `keyFile`: the store key (store-key beside the admin token); the same file on every server of this store. */
  constructor(
    private readonly url: string,
    opts: { keyFile: string; migrations?: Migration[] },
  ) {
    this.where = redactUrl(url);
    this.box = new SecretBox(loadSecretKey(opts.keyFile));
    this.pool = new pg.Pool({ connectionString: url, types, max: 8, application_name: "lifeboat" });
    // An idle connection that breaks (the database restarted) is dropped by the pool; the next query gets a new one.
    this.pool.on("error", () => undefined);
    this.ready = this.open(opts.migrations ?? pgMigrations, opts.keyFile);
    // Callers see the failure on their first call; this keeps it from counting as unhandled meanwhile.
    this.ready.catch(() => undefined);
  }

  private async open(migrations: Migration[], keyFile: string): Promise<void> {
    try {
      await this.pool.query("SELECT 1");
    } catch (err) {
      throw new UserError(`${this.where}: cannot open the store (${(err as Error).message})`);
    }
    await migratePg(this.pool, this.where, migrations);
    const check = await this.pool.query<Row>("SELECT value FROM settings WHERE key = $1", [KEY_CHECK_SETTING]);
    const sealed = check.rows[0]?.value as string | undefined;
    if (sealed === undefined) {
      await this.pool.query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", [KEY_CHECK_SETTING, this.box.seal("lifeboat", KEY_CHECK_CONTEXT)]);
    } else {
      try {
        this.box.open(sealed, KEY_CHECK_CONTEXT);
      } catch {
        throw new UserError(`${keyFile}: not the store key of ${this.where} (every server of one store needs the same store-key file: copy it from a server of that store)`);
      }
    }
  }

  /** This store handle's id in its change notices: its own are not news to it. */
  private readonly origin = randomBytes(6).toString("hex");

  /** Tells the other servers watching (watchJobs) that a job changed, when `db`'s transaction commits (at once outside one). */
  private async notifyJob(db: Db, id: string, eventId: number | null): Promise<void> {
    await this.run("SELECT pg_notify($1, $2)", [JOB_CHANNEL, JSON.stringify({ o: this.origin, j: id, e: eventId })], db);
  }

  /**
   * LISTEN on its own connection (kept apart from the pool); a lost connection is opened again
   * after a second, and `onJob` then hears of every active job once (what changed meanwhile).
   */
  async watchJobs(onJob: (id: string, eventId: number | null) => void): Promise<() => Promise<void>> {
    await this.ready;
    let client: pg.Client | undefined;
    let stopped = false;
    let retry: NodeJS.Timeout | undefined;
    const connect = async (again: boolean): Promise<void> => {
      const c = new pg.Client({ connectionString: this.url, types, application_name: "lifeboat-listen" });
      c.on("notification", (n) => {
        try {
          const m = JSON.parse(n.payload ?? "") as { o: string; j: string; e: number | null };
          if (m.o !== this.origin && typeof m.j === "string") onJob(m.j, typeof m.e === "number" ? m.e : null);
        } catch {
          // Not one of ours: ignored.
        }
      });
      c.on("error", () => {
        if (stopped || client !== c) return;
        client = undefined;
        void c.end().catch(() => undefined);
        retry = setTimeout(() => void connect(true).catch(() => undefined), 1000);
      });
      try {
        await c.connect();
        await c.query(`LISTEN ${JOB_CHANNEL}`);
      } catch (err) {
        await c.end().catch(() => undefined);
        if (!again) throw new UserError(`${this.where}: cannot listen for job changes (${(err as Error).message})`);
        retry = setTimeout(() => void connect(true).catch(() => undefined), 1000);
        return;
      }
      if (stopped) return void (await c.end());
      client = c;
      if (again) for (const j of await this.jobs.list({ state: [...ACTIVE_STATES] })) onJob(j.id, null);
    };
    await connect(false);
    return async () => {
      stopped = true;
      clearTimeout(retry);
      await client?.end().catch(() => undefined);
    };
  }

  readonly servers: ServerRepo = {
    beat: async (s) => {
      await this.run(
        `INSERT INTO servers (name, url, amanda, started_at, last_seen_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, amanda = excluded.amanda, started_at = excluded.started_at, last_seen_at = excluded.last_seen_at`,
        [s.name, s.url, JSON.stringify(s.amanda), s.startedAt, now()],
      );
    },
    list: async () => (await this.q("SELECT * FROM servers ORDER BY name")).map(serverFrom),
  };

  /** Waits for the store to be open (connected, migrated, key checked): a failure there is the first call's error. */
  async opened(): Promise<void> {
    await this.ready;
  }

  private async q(sql: string, args: unknown[] = [], db: Db = this.pool): Promise<Row[]> {
    await this.ready;
    return (await db.query<Row>(sql, args)).rows;
  }

  private async run(sql: string, args: unknown[] = [], db: Db = this.pool): Promise<number> {
    await this.ready;
    return (await db.query(sql, args)).rowCount ?? 0;
  }

  /** `fn` in one transaction on one connection: committed when it returns, rolled back when it throws. */
  async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    await this.ready;
    return inTransaction(this.pool, fn);
  }

  async migrations(): Promise<string[]> {
    return (await this.q("SELECT id FROM schema_migrations ORDER BY id")).map((r) => r.id as string);
  }

  async snapshot(file: string): Promise<void> {
    await this.ready;
    await copyToSqlite(this.pool, file);
  }

  async close(): Promise<void> {
    await this.ready.catch(() => undefined);
    await this.pool.end();
  }

  private async macsOf(name: string, db: Db = this.pool): Promise<string[]> {
    return (await this.q("SELECT mac FROM host_macs WHERE host = $1 ORDER BY mac", [name], db)).map((r) => r.mac as string);
  }

  private async setMacs(db: Db, name: string, macs: string[]): Promise<void> {
    await this.run("DELETE FROM host_macs WHERE host = $1", [name], db);
    for (const mac of macs) {
      const owner = (await this.q("SELECT host FROM host_macs WHERE mac = $1", [mac], db))[0];
      if (owner) throw new UserError(`MAC ${mac} already belongs to host ${String(owner.host)}`, 2);
      await this.run("INSERT INTO host_macs (mac, host) VALUES ($1, $2)", [mac, name], db);
    }
  }

  readonly hosts: HostRepo = {
    add: async (h) => {
      await this.tx(async (db) => {
        if ((await this.q("SELECT 1 FROM hosts WHERE name = $1", [h.name], db)).length) throw new UserError(`host ${h.name} already exists`, 2);
        await this.run(
          "INSERT INTO hosts (name, token_hash, smbios_uuid, amanda_config, dle_map, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
          [h.name, h.tokenHash, h.smbiosUuid, h.amandaConfig, JSON.stringify(h.dleMap), now()],
          db,
        ).catch((err: unknown) => {
          throw (err as { code?: string }).code === "23505" ? new UserError(`host ${h.name} already exists`, 2) : err;
        });
        await this.setMacs(db, h.name, h.macs);
      });
      return (await this.hosts.get(h.name))!;
    },
    get: async (name) => {
      const r = (await this.q("SELECT * FROM hosts WHERE name = $1", [name]))[0];
      return r ? hostFrom(r, await this.macsOf(name)) : undefined;
    },
    byMac: async (mac) => {
      const r = (await this.q("SELECT host FROM host_macs WHERE mac = $1", [mac]))[0];
      return r ? this.hosts.get(r.host as string) : undefined;
    },
    list: async () => {
      const macs = new Map<string, string[]>();
      for (const r of await this.q("SELECT mac, host FROM host_macs ORDER BY mac")) macs.set(r.host as string, [...(macs.get(r.host as string) ?? []), r.mac as string]);
      return (await this.q("SELECT * FROM hosts ORDER BY name")).map((r) => hostFrom(r, macs.get(r.name as string) ?? []));
    },
    update: async (name, patch): Promise<HostRecord> => {
      await this.tx(async (db) => {
        const r = (await this.q("SELECT * FROM hosts WHERE name = $1 FOR UPDATE", [name], db))[0];
        if (!r) throw new UserError(`no host named ${name}`, 2);
        const next = { ...hostFrom(r, []), ...patch };
        await this.run(
          "UPDATE hosts SET token_hash = $1, smbios_uuid = $2, amanda_config = $3, dle_map = $4 WHERE name = $5",
          [next.tokenHash, next.smbiosUuid, next.amandaConfig, JSON.stringify(next.dleMap), name],
          db,
        );
        if (patch.macs) await this.setMacs(db, name, patch.macs);
      });
      return (await this.hosts.get(name))!;
    },
    remove: async (name) => (await this.run("DELETE FROM hosts WHERE name = $1", [name])) > 0,
  };

  readonly layouts: LayoutRepo = {
    add: async (host, document, capturedAt = now()): Promise<LayoutRecord> => {
      const version = await this.tx(async (db) => {
        // The host's row, locked: two captures of one host at once number their versions one after the other.
        await this.q("SELECT 1 FROM hosts WHERE name = $1 FOR UPDATE", [host], db);
        const v = (((await this.q("SELECT MAX(version) AS v FROM layouts WHERE host = $1", [host], db))[0]!.v as number | null) ?? 0) + 1;
        await this.run("INSERT INTO layouts (host, version, captured_at, document) VALUES ($1, $2, $3, $4)", [host, v, capturedAt, JSON.stringify(document)], db);
        return v;
      });
      return { host, version, capturedAt, document };
    },
    get: async (host, version) => {
      const r = (
        version === undefined
          ? await this.q("SELECT * FROM layouts WHERE host = $1 ORDER BY version DESC LIMIT 1", [host])
          : await this.q("SELECT * FROM layouts WHERE host = $1 AND version = $2", [host, version])
      )[0];
      return r ? { host, version: r.version as number, capturedAt: r.captured_at as string, document: JSON.parse(r.document as string) } : undefined;
    },
    versions: async (host) =>
      (await this.q("SELECT version, captured_at FROM layouts WHERE host = $1 ORDER BY version", [host])).map((r) => ({
        host,
        version: r.version as number,
        capturedAt: r.captured_at as string,
      })),
    prune: async (keep) =>
      this.run(
        `DELETE FROM layouts WHERE version <= (SELECT MAX(version) FROM layouts AS l WHERE l.host = layouts.host) - $1
           AND NOT EXISTS (SELECT 1 FROM profiles AS p WHERE p.host = layouts.host AND p.layout_version = layouts.version)`,
        [keep],
      ),
  };

  readonly audit: AuditRepo = {
    append: async (e): Promise<AuditEntry> => {
      const at = now();
      const r = await this.q("INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5) RETURNING id", [
        at,
        e.actor,
        e.action,
        e.target,
        JSON.stringify(e.detail ?? null),
      ]);
      return { id: r[0]!.id as number, at, ...e };
    },
    list: async (opts = {}) =>
      (opts.target
        ? await this.q("SELECT * FROM audit WHERE target = $1 ORDER BY id DESC LIMIT $2", [opts.target, opts.limit ?? 1000])
        : await this.q("SELECT * FROM audit ORDER BY id DESC LIMIT $1", [opts.limit ?? 1000])
      ).map(auditFrom),
  };

  readonly settings: SettingsRepo = {
    get: async (key) => (await this.q("SELECT value FROM settings WHERE key = $1", [key]))[0]?.value as string | undefined,
    set: async (key, value) => {
      await this.run("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value]);
    },
  };

  readonly profiles: ProfileRepo = {
    put: async (p) => {
      await this.run(
        `INSERT INTO profiles (name, host, layout_version, at, options, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (name) DO UPDATE SET host = excluded.host, layout_version = excluded.layout_version, at = excluded.at, options = excluded.options`,
        [p.name, p.host, p.layoutVersion, p.at, JSON.stringify(p.options), now()],
      );
      return (await this.profiles.get(p.name))!;
    },
    get: async (name) => {
      const r = (await this.q("SELECT * FROM profiles WHERE name = $1", [name]))[0];
      return r ? profileFrom(r) : undefined;
    },
    list: async () => (await this.q("SELECT * FROM profiles ORDER BY name")).map(profileFrom),
    remove: async (name) => (await this.run("DELETE FROM profiles WHERE name = $1", [name])) > 0,
  };

  readonly assignments: AssignmentRepo = {
    set: async (mac, profile) => {
      await this.tx(async (db) => {
        if (!(await this.q("SELECT 1 FROM profiles WHERE name = $1 FOR SHARE", [profile], db)).length) throw new UserError(`no profile named ${profile}`, 2);
        await this.run("INSERT INTO assignments (mac, profile, created_at) VALUES ($1, $2, $3) ON CONFLICT (mac) DO UPDATE SET profile = excluded.profile", [mac, profile, now()], db);
      });
    },
    get: async (mac) => (await this.q("SELECT profile FROM assignments WHERE mac = $1", [mac]))[0]?.profile as string | undefined,
    list: async () =>
      (await this.q("SELECT * FROM assignments ORDER BY mac")).map((r) => ({ mac: r.mac as string, profile: r.profile as string, createdAt: r.created_at as string })),
    remove: async (mac) => (await this.run("DELETE FROM assignments WHERE mac = $1", [mac])) > 0,
  };

  private async getJob(id: string, db: Db = this.pool) {
    const r = (await this.q("SELECT * FROM jobs WHERE id = $1", [id], db))[0];
    return r ? jobFrom(r) : undefined;
  }

  /** `UPDATE jobs SET …` for a patch; with `from`, only while the job is in that state (compare-and-set). Returns the rows changed. */
  private async updateJob(db: Db, id: string, patch: object, from?: JobState): Promise<number> {
    const entries = Object.entries({ ...patch, updatedAt: now() }).filter(([f]) => f in JOB_COLUMNS);
    const args = [...entries.map(([f, v]) => jobColumn(f, v)), id, ...(from ? [from] : [])];
    const set = entries.map(([f], i) => `${JOB_COLUMNS[f]} = $${i + 1}`).join(", ");
    return this.run(`UPDATE jobs SET ${set} WHERE id = $${entries.length + 1}${from ? ` AND state = $${entries.length + 2}` : ""}`, args, db);
  }

  private async addEvent(db: Db, job: string, type: string, data: unknown): Promise<JobEvent> {
    const at = now();
    const r = await this.q("INSERT INTO job_events (job, at, type, data) VALUES ($1, $2, $3, $4) RETURNING id", [job, at, type, JSON.stringify(data ?? null)], db);
    return { id: r[0]!.id as number, job, at, type, data };
  }

  readonly jobs: JobRepo = {
    create: async (j) => {
      const t = now();
      const fields = Object.keys(JOB_COLUMNS).filter((f) => f !== "updatedAt");
      const cols = ["id", ...fields.map((f) => JOB_COLUMNS[f]), "created_at", "updated_at"];
      try {
        await this.run(`INSERT INTO jobs (${cols.join(", ")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")})`, [
          j.id,
          ...fields.map((f) => jobColumn(f, (j as unknown as Record<string, unknown>)[f])),
          t,
          t,
        ]);
        await this.notifyJob(this.pool, j.id, null);
      } catch (err) {
        if ((err as { constraint?: string }).constraint === "jobs_one_active_per_mac") {
          const other = (await this.q(`SELECT id, state FROM jobs WHERE mac = $1 AND state IN (${activeList})`, [j.mac]))[0];
          throw new UserError(`${j.mac} already has an active job${other ? ` (${String(other.id)}, ${String(other.state)})` : ""}: one per machine`, 2);
        }
        throw err;
      }
      return (await this.getJob(j.id))!;
    },
    get: async (id) => this.getJob(id),
    activeForMac: async (mac) => {
      const r = (await this.q(`SELECT * FROM jobs WHERE mac = $1 AND state IN (${activeList})`, [mac]))[0];
      return r ? jobFrom(r) : undefined;
    },
    list: async (opts = {}) => {
      const where: string[] = [];
      const args: unknown[] = [];
      if (opts.state?.length) {
        args.push(opts.state);
        where.push(`state = ANY($${args.length})`);
      }
      if (opts.mac) {
        args.push(opts.mac);
        where.push(`mac = $${args.length}`);
      }
      args.push(opts.limit ?? 1000);
      const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at DESC, id LIMIT $${args.length}`;
      return (await this.q(sql, args)).map(jobFrom);
    },
    inPowerWaves: async () =>
      (
        await this.q(
          `SELECT * FROM jobs WHERE jsonb_typeof(power_wave::jsonb) = 'object' AND (state IN (${activeList}) OR power_wave::jsonb ->> 'status' = 'waiting') ORDER BY created_at, id`,
        )
      ).map(jobFrom),
    update: async (id, patch) => {
      if ((await this.updateJob(this.pool, id, patch)) === 0) throw new UserError(`no job ${id}`, 2);
      await this.notifyJob(this.pool, id, null);
      return (await this.getJob(id))!;
    },
    transition: async (id, from, change) =>
      this.tx(async (db) => {
        if ((await this.updateJob(db, id, change.patch, from)) === 0) return undefined;
        const events: JobEvent[] = [];
        for (const e of change.events) events.push(await this.addEvent(db, id, e.type, e.data));
        if (change.dropKeys) await this.run("DELETE FROM job_keys WHERE job = $1", [id], db);
        await this.notifyJob(db, id, events.at(-1)?.id ?? null);
        return { job: (await this.getJob(id, db))!, events };
      }),
    addEvent: async (job, type, data) => {
      const e = await this.addEvent(this.pool, job, type, data);
      await this.notifyJob(this.pool, job, e.id);
      return e;
    },
    claim: async (id, server, tokenHash, deadBefore) => {
      const r = await this.q(`UPDATE jobs SET server = $1, token_hash = $3, updated_at = $4 WHERE id = $5 AND ${claimableSql((n) => `$${n}`)} RETURNING *`, [server, deadBefore, tokenHash, now(), id]);
      if (!r.length) return undefined;
      await this.notifyJob(this.pool, id, null);
      return jobFrom(r[0]!);
    },
    events: async (job, opts = {}) =>
      (await this.q("SELECT * FROM job_events WHERE job = $1 AND id > $2 ORDER BY id", [job, opts.afterId ?? 0])).map(eventFrom),
    eventBytes: async (job, type) => (await this.q("SELECT COALESCE(SUM(octet_length(data)), 0) AS n FROM job_events WHERE job = $1 AND type = $2", [job, type]))[0]!.n as number,
    pruneEvents: async (endedBefore) =>
      this.run(`DELETE FROM job_events WHERE job IN (SELECT id FROM jobs WHERE state IN (${terminalList}) AND updated_at < $1)`, [endedBefore]),
    // Sealed on the way in, opened on the way out: the database only ever holds ciphertext.
    setKey: async (job, uuid, secret) => {
      await this.run("INSERT INTO job_keys (job, uuid, secret) VALUES ($1, $2, $3) ON CONFLICT (job, uuid) DO UPDATE SET secret = excluded.secret", [
        job,
        uuid,
        this.box.seal(secret, keyContext(job, uuid)),
      ]);
    },
    // Locked, opened and deleted in one transaction: handed out at most once however many servers
    // ask at once; one that does not open stays for the admin to see.
    takeKey: async (job, uuid) =>
      this.tx(async (db) => {
        const r = (await this.q("SELECT secret FROM job_keys WHERE job = $1 AND uuid = $2 FOR UPDATE", [job, uuid], db))[0];
        if (!r) return undefined;
        const secret = this.box.open(r.secret as string, keyContext(job, uuid));
        await this.run("DELETE FROM job_keys WHERE job = $1 AND uuid = $2", [job, uuid], db);
        return secret;
      }),
    keyIds: async (job) => (await this.q("SELECT uuid FROM job_keys WHERE job = $1 ORDER BY uuid", [job])).map((r) => r.uuid as string),
    dropKeys: async (job) => {
      await this.run("DELETE FROM job_keys WHERE job = $1", [job]);
    },
  };

  readonly leases: LeaseRepo = {
    list: async () => (await this.q("SELECT * FROM dhcp_leases ORDER BY ip")).map(leaseFrom),
    byIp: async (ip) => {
      const r = (await this.q("SELECT * FROM dhcp_leases WHERE ip = $1", [ip]))[0];
      return r ? leaseFrom(r) : undefined;
    },
    byClient: async (client, server) => {
      const r = (await this.q("SELECT * FROM dhcp_leases WHERE client = $1 AND server = $2 AND state <> 'declined'", [client, server]))[0];
      return r ? leaseFrom(r) : undefined;
    },
    put: async (l) => {
      await this.tx(async (db) => {
        // A client has one offered or bound address at a time; the addresses it declined stay out for their hold time.
        if (l.state !== "declined") await this.run("DELETE FROM dhcp_leases WHERE client = $1 AND server = $2 AND ip <> $3 AND state <> 'declined'", [l.client, l.server, l.ip], db);
        await this.run(
          `INSERT INTO dhcp_leases (ip, client, mac, state, hostname, expires_at, server) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (ip) DO UPDATE SET client = excluded.client, mac = excluded.mac, state = excluded.state, hostname = excluded.hostname, expires_at = excluded.expires_at, server = excluded.server`,
          [l.ip, l.client, l.mac, l.state, l.hostname, l.expiresAt, l.server],
          db,
        );
      });
    },
    remove: async (ip) => (await this.run("DELETE FROM dhcp_leases WHERE ip = $1", [ip])) > 0,
    prune: async (before, boundBefore) => this.run("DELETE FROM dhcp_leases WHERE (state <> 'bound' AND expires_at < $1) OR expires_at < $2", [before, boundBefore]),
  };

  readonly catalog: CatalogRepo = {
    replace: async (amanda: string, dumps: CatalogDump[], warnings: string[]) => {
      await this.tx(async (db) => {
        await this.run("DELETE FROM catalog_dumps WHERE amanda = $1", [amanda], db);
        for (const d of dumps)
          await this.run(
            `INSERT INTO catalog_dumps (amanda, id, host, disk, level, datestamp, record) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (amanda, id) DO UPDATE SET host = excluded.host, disk = excluded.disk, level = excluded.level, datestamp = excluded.datestamp, record = excluded.record`,
            [amanda, d.id, d.host, d.disk, d.level, d.datestamp, JSON.stringify(d)],
            db,
          );
        await this.run(
          "INSERT INTO catalog_refreshes (amanda, at, dumps, warnings) VALUES ($1, $2, $3, $4) ON CONFLICT (amanda) DO UPDATE SET at = excluded.at, dumps = excluded.dumps, warnings = excluded.warnings",
          [amanda, now(), dumps.length, JSON.stringify(warnings)],
          db,
        );
      });
    },
    list: async (f = {}) => {
      const where: string[] = [];
      const args: unknown[] = [];
      for (const col of ["amanda", "host", "disk"] as const) {
        if (f[col] === undefined) continue;
        args.push(f[col]);
        where.push(`${col} = $${args.length}`);
      }
      return (await this.q(`SELECT record FROM catalog_dumps ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY host, disk, datestamp, level`, args)).map(dumpFrom);
    },
    get: async (id) => {
      const r = (await this.q("SELECT record FROM catalog_dumps WHERE id = $1 ORDER BY amanda LIMIT 1", [id]))[0];
      return r ? dumpFrom(r) : undefined;
    },
    refreshes: async () => (await this.q("SELECT * FROM catalog_refreshes ORDER BY amanda")).map(refreshFrom),
  };

  readonly power: PowerRepo = {
    get: async (host) => {
      const r = (await this.q("SELECT * FROM host_power WHERE host = $1", [host]))[0];
      return r ? powerFrom(r) : undefined;
    },
    put: async (host, config, secret) => {
      const r = await this.q(
        `INSERT INTO host_power (host, config, secret, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (host) DO UPDATE SET config = excluded.config, secret = excluded.secret, updated_at = excluded.updated_at RETURNING *`,
        [host, JSON.stringify(config), secret === null ? null : this.box.seal(secret, powerSecretContext(host)), now()],
      );
      return powerFrom(r[0]!);
    },
    secret: async (host) => {
      const sealed = (await this.q("SELECT secret FROM host_power WHERE host = $1", [host]))[0]?.secret as string | null | undefined;
      return sealed ? this.box.open(sealed, powerSecretContext(host)) : undefined;
    },
  };

  readonly amandaKeys: AmandaKeyRepo = {
    list: async () => (await this.q("SELECT * FROM amanda_keys ORDER BY amanda")).map(amandaKeyFrom),
    put: async (amanda, key) => {
      const r = await this.q(
        `INSERT INTO amanda_keys (amanda, has_passphrase, has_secret_key, secret, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (amanda) DO UPDATE SET has_passphrase = excluded.has_passphrase, has_secret_key = excluded.has_secret_key, secret = excluded.secret, updated_at = excluded.updated_at RETURNING *`,
        [amanda, key.passphrase !== null, key.secretKey !== null, this.box.seal(amandaKeyText(key), amandaKeyContext(amanda)), now()],
      );
      return amandaKeyFrom(r[0]!);
    },
    get: async (amanda) => {
      const sealed = (await this.q("SELECT secret FROM amanda_keys WHERE amanda = $1", [amanda]))[0]?.secret as string | undefined;
      return sealed ? amandaKeyOf(this.box.open(sealed, amandaKeyContext(amanda))) : undefined;
    },
    remove: async (amanda) => (await this.q("DELETE FROM amanda_keys WHERE amanda = $1 RETURNING amanda", [amanda])).length > 0,
  };
}
