import type Database from "better-sqlite3";
import { UserError } from "../errors.ts";
import { ACTIVE_STATES, TERMINAL_STATES } from "../jobs/job-state.ts";
import { SecretBox } from "./secret-box.ts";
import { JOB_COLUMNS, type Row, claimableSql, eventFrom, jobColumn, jobFrom, keyContext, now, profileFrom } from "./rows.ts";
import type { AssignmentRepo, JobEvent, JobRecord, JobRepo, JobState, ProfileRepo } from "./types.ts";

export function sqliteProfiles(db: Database.Database): ProfileRepo {
  const from = profileFrom;
  const get = async (name: string) => {
    const r = db.prepare("SELECT * FROM profiles WHERE name = ?").get(name) as Row | undefined;
    return r ? from(r) : undefined;
  };
  return {
    put: async (p) => {
      db.prepare(
        `INSERT INTO profiles (name, host, layout_version, at, options, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET host = excluded.host, layout_version = excluded.layout_version,
           at = excluded.at, options = excluded.options`,
      ).run(p.name, p.host, p.layoutVersion, p.at, JSON.stringify(p.options), now());
      return (await get(p.name))!;
    },
    get,
    list: async () => (db.prepare("SELECT * FROM profiles ORDER BY name").all() as Row[]).map(from),
    remove: async (name) => db.prepare("DELETE FROM profiles WHERE name = ?").run(name).changes > 0,
  };
}

export function sqliteAssignments(db: Database.Database): AssignmentRepo {
  return {
    set: async (mac, profile) => {
      if (!db.prepare("SELECT 1 FROM profiles WHERE name = ?").get(profile)) throw new UserError(`no profile named ${profile}`, 2);
      db.prepare(
        "INSERT INTO assignments (mac, profile, created_at) VALUES (?, ?, ?) ON CONFLICT(mac) DO UPDATE SET profile = excluded.profile",
      ).run(mac, profile, now());
    },
    get: async (mac) => (db.prepare("SELECT profile FROM assignments WHERE mac = ?").get(mac) as Row | undefined)?.profile as string | undefined,
    list: async () =>
      (db.prepare("SELECT * FROM assignments ORDER BY mac").all() as Row[]).map((r) => ({
        mac: r.mac as string,
        profile: r.profile as string,
        createdAt: r.created_at as string,
      })),
    remove: async (mac) => db.prepare("DELETE FROM assignments WHERE mac = ?").run(mac).changes > 0,
  };
}

/** A job field's value as SQLite holds it: it has no booleans. */
const column = (field: string, value: unknown): unknown => (typeof value === "boolean" ? (value ? 1 : 0) : jobColumn(field, value));

/**
 * Seals the job keys an older release stored in plaintext, then rewrites the file
 * (VACUUM, WAL truncated) so the plaintext is not left in freed pages. Returns how many.
 */
export function sealPlaintextKeys(db: Database.Database, box: SecretBox): number {
  const plain = (db.prepare("SELECT job, uuid, secret FROM job_keys").all() as Row[]).filter((r) => !SecretBox.isSealed(r.secret as string));
  if (!plain.length) return 0;
  const update = db.prepare("UPDATE job_keys SET secret = ? WHERE job = ? AND uuid = ?");
  db.transaction(() => {
    for (const r of plain) update.run(box.seal(r.secret as string, keyContext(r.job as string, r.uuid as string)), r.job, r.uuid);
  })();
  db.exec("VACUUM");
  db.pragma("wal_checkpoint(TRUNCATE)");
  return plain.length;
}

export function sqliteJobs(db: Database.Database, box: SecretBox): JobRepo {
  const activeList = ACTIVE_STATES.map((s) => `'${s}'`).join(", ");
  const terminalList = TERMINAL_STATES.map((s) => `'${s}'`).join(", ");
  const getNow = (id: string) => {
    const r = db.prepare("SELECT * FROM jobs WHERE id = ?").get(id) as Row | undefined;
    return r ? jobFrom(r) : undefined;
  };
  const get = async (id: string) => getNow(id);
  /** `UPDATE jobs SET …` for a patch; `where` adds conditions after `id = ?`. */
  const updateNow = (id: string, patch: Partial<JobRecord>, where = "", ...args: unknown[]) => {
    const entries = Object.entries({ ...patch, updatedAt: now() }).filter(([f]) => f in JOB_COLUMNS);
    return db
      .prepare(`UPDATE jobs SET ${entries.map(([f]) => `${JOB_COLUMNS[f]} = ?`).join(", ")} WHERE id = ?${where}`)
      .run(...entries.map(([f, v]) => column(f, v)), id, ...args).changes;
  };
  const addEventNow = (job: string, type: string, data: unknown): JobEvent => {
    const at = now();
    const info = db.prepare("INSERT INTO job_events (job, at, type, data) VALUES (?, ?, ?, ?)").run(job, at, type, JSON.stringify(data ?? null));
    return { id: Number(info.lastInsertRowid), job, at, type, data };
  };
  const dropKeysNow = (job: string) => db.prepare("DELETE FROM job_keys WHERE job = ?").run(job);
  const transition = db.transaction((id: string, from: JobState, change: Parameters<JobRepo["transition"]>[2]) => {
    if (updateNow(id, change.patch, " AND state = ?", from) === 0) return undefined;
    const events = change.events.map((e) => addEventNow(id, e.type, e.data));
    if (change.dropKeys) dropKeysNow(id);
    return { job: getNow(id)!, events };
  });
  return {
    create: async (j) => {
      const t = now();
      const fields = Object.keys(JOB_COLUMNS).filter((f) => f !== "updatedAt");
      try {
        db.prepare(
          `INSERT INTO jobs (id, ${fields.map((f) => JOB_COLUMNS[f]).join(", ")}, created_at, updated_at)
           VALUES (?, ${fields.map(() => "?").join(", ")}, ?, ?)`,
        ).run(j.id, ...fields.map((f) => column(f, (j as unknown as Record<string, unknown>)[f])), t, t);
      } catch (err) {
        if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
          const other = db.prepare(`SELECT id, state FROM jobs WHERE mac = ? AND state IN (${activeList})`).get(j.mac) as Row | undefined;
          throw new UserError(`${j.mac} already has an active job${other ? ` (${String(other.id)}, ${String(other.state)})` : ""}: one per machine`, 2);
        }
        throw err;
      }
      return (await get(j.id))!;
    },
    get,
    activeForMac: async (mac) => {
      const r = db.prepare(`SELECT * FROM jobs WHERE mac = ? AND state IN (${activeList})`).get(mac) as Row | undefined;
      return r ? jobFrom(r) : undefined;
    },
    list: async (opts = {}) => {
      const where: string[] = [];
      const args: unknown[] = [];
      if (opts.state?.length) {
        where.push(`state IN (${opts.state.map(() => "?").join(", ")})`);
        args.push(...opts.state);
      }
      if (opts.mac) {
        where.push("mac = ?");
        args.push(opts.mac);
      }
      const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at DESC, id LIMIT ?`;
      return (db.prepare(sql).all(...args, opts.limit ?? 1000) as Row[]).map(jobFrom);
    },
    inPowerWaves: async () =>
      (
        db
          .prepare(
            `SELECT * FROM jobs WHERE json_type(power_wave) = 'object' AND (state IN (${activeList}) OR json_extract(power_wave, '$.status') = 'waiting') ORDER BY created_at, id`,
          )
          .all() as Row[]
      ).map(jobFrom),
    update: async (id, patch) => {
      if (updateNow(id, patch) === 0) throw new UserError(`no job ${id}`, 2);
      return getNow(id)!;
    },
    transition: async (id, from, change) => transition(id, from, change),
    claim: async (id, server, tokenHash, deadBefore) => {
      const changed = db
        .prepare(`UPDATE jobs SET server = @server, token_hash = @tokenHash, updated_at = @now WHERE id = @id AND ${claimableSql((n) => (n === 1 ? "@server" : "@deadBefore"))}`)
        .run({ server, deadBefore, tokenHash, now: now(), id }).changes;
      return changed ? getNow(id) : undefined;
    },
    addEvent: async (job, type, data) => addEventNow(job, type, data),
    // Sealed on the way in, opened on the way out: the database only ever holds ciphertext.
    setKey: async (job, uuid, secret) => {
      db.prepare("INSERT INTO job_keys (job, uuid, secret) VALUES (?, ?, ?) ON CONFLICT(job, uuid) DO UPDATE SET secret = excluded.secret").run(
        job,
        uuid,
        box.seal(secret, keyContext(job, uuid)),
      );
    },
    // Opened and deleted in one transaction: a key is handed out at most once, and one that
    // does not open (altered, another key file) stays for the admin to see rather than vanishing.
    takeKey: async (job, uuid) =>
      db.transaction(() => {
        const r = db.prepare("SELECT secret FROM job_keys WHERE job = ? AND uuid = ?").get(job, uuid) as Row | undefined;
        if (!r) return undefined;
        const secret = box.open(r.secret as string, keyContext(job, uuid));
        db.prepare("DELETE FROM job_keys WHERE job = ? AND uuid = ?").run(job, uuid);
        return secret;
      })(),
    keyIds: async (job) => (db.prepare("SELECT uuid FROM job_keys WHERE job = ? ORDER BY uuid").all(job) as Row[]).map((r) => r.uuid as string),
    dropKeys: async (job) => {
      dropKeysNow(job);
    },
    eventBytes: async (job, type) =>
      (db.prepare("SELECT COALESCE(SUM(LENGTH(CAST(data AS BLOB))), 0) AS n FROM job_events WHERE job = ? AND type = ?").get(job, type) as Row).n as number,
    pruneEvents: async (endedBefore) =>
      db.prepare(`DELETE FROM job_events WHERE job IN (SELECT id FROM jobs WHERE state IN (${terminalList}) AND updated_at < ?)`).run(endedBefore).changes,
    events: async (job, opts = {}) =>
      (db.prepare("SELECT * FROM job_events WHERE job = ? AND id > ? ORDER BY id").all(job, opts.afterId ?? 0) as Row[]).map(eventFrom),
  };
}
