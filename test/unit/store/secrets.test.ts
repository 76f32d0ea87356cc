/**
 * Secrets at rest: LUKS passphrases are sealed in the store (AES-256-GCM, key in its own
 * 0600 file), the store's files are 0600, and deleted rows are overwritten. The files'
 * raw bytes are searched, as someone holding a copy of the database would.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { SecretBox } from "../../../server/store/secret-box.ts";
import { SqliteStore, migrate } from "../../../server/store/sqlite.ts";
import { tempDir } from "../../helpers/tmp.ts";

const PASS = "correct horse battery staple 7f3a9c";
const UUID = "4f6b1c2e-8d3a-4e5f-9a0b-1c2d3e4f5a6b";

function addJob(db: Database.Database, id: string, mac: string): void {
  const t = "2026-01-01T00:00:00.000Z";
  db.prepare("INSERT INTO jobs (id, mac, kind, profile, state, armed_by, created_at, updated_at, expires_at) VALUES (?, ?, 'recover', 'p', 'armed', 'test', ?, ?, ?)").run(id, mac, t, t, t);
}

/** The raw bytes of the database and its WAL, as a copy of the data dir would hold them. */
function onDisk(file: string): Buffer {
  return Buffer.concat([file, `${file}-wal`].filter(existsSync).map((f) => readFileSync(f)));
}

const rawSecret = (store: SqliteStore, job: string) => (store.db.prepare("SELECT secret FROM job_keys WHERE job = ?").get(job) as { secret: string }).secret;

describe("secrets at rest", () => {
  it("a passphrase is sealed: neither the database nor its WAL holds its bytes, while stored or after it is dropped", async () => {
    const file = join(tempDir(), "lifeboat.db");
    const store = new SqliteStore(file);
    addJob(store.db, "j1", "52:54:00:16:00:01");
    await store.jobs.setKey("j1", UUID, PASS);
    const sealed = rawSecret(store, "j1");
    expect(SecretBox.isSealed(sealed)).toBe(true);
    expect(onDisk(file).includes(PASS)).toBe(false);
    store.db.pragma("wal_checkpoint(TRUNCATE)");
    expect(onDisk(file).includes(sealed)).toBe(true);
    expect(onDisk(file).includes(PASS)).toBe(false);

    await store.jobs.dropKeys("j1");
    expect(await store.jobs.takeKey("j1", UUID)).toBeUndefined();
    store.db.pragma("wal_checkpoint(TRUNCATE)");
    // secure_delete: the dropped row's bytes are overwritten, not left in a free block.
    expect(onDisk(file).includes(sealed)).toBe(false);
    expect(onDisk(file).includes(PASS)).toBe(false);
    await store.close();
  });

  it("the database, its WAL and shm and the key file are 0600; the key is made once and kept", async () => {
    const dir = tempDir();
    const file = join(dir, "lifeboat.db");
    const store = new SqliteStore(file);
    addJob(store.db, "j1", "52:54:00:16:00:02");
    await store.jobs.setKey("j1", UUID, PASS);
    for (const f of [file, `${file}-wal`, `${file}-shm`, join(dir, "store-key")]) expect([f, statSync(f).mode & 0o777]).toEqual([f, 0o600]);
    await store.close();
    const again = new SqliteStore(file);
    expect(await again.jobs.takeKey("j1", UUID)).toBe(PASS);
    await again.close();
  });

  it("a tampered value, a value moved to another row, or another key file is refused in one line", async () => {
    const dir = tempDir();
    const file = join(dir, "lifeboat.db");
    const store = new SqliteStore(file);
    addJob(store.db, "j1", "52:54:00:16:00:03");
    addJob(store.db, "j2", "52:54:00:16:00:04");
    await store.jobs.setKey("j1", UUID, PASS);
    const sealed = rawSecret(store, "j1");
    const raw = Buffer.from(sealed.slice(sealed.indexOf(":") + 1), "base64");
    raw[raw.length - 1]! ^= 1;
    store.db.prepare("UPDATE job_keys SET secret = ? WHERE job = 'j1'").run(`${sealed.slice(0, sealed.indexOf(":") + 1)}${raw.toString("base64")}`);
    await expect(store.jobs.takeKey("j1", UUID)).rejects.toThrow(`the stored secret for job j1 LUKS container ${UUID} does not open: altered, or sealed under another key file`);
    store.db.prepare("INSERT INTO job_keys (job, uuid, secret) VALUES ('j2', ?, ?)").run(UUID, sealed);
    await expect(store.jobs.takeKey("j2", UUID)).rejects.toThrow(/job j2 LUKS container .* does not open/);
    store.db.prepare("UPDATE job_keys SET secret = ? WHERE job = 'j1'").run(sealed);
    expect(await store.jobs.takeKey("j1", UUID)).toBe(PASS);
    await store.jobs.setKey("j1", UUID, PASS);
    await store.close();

    writeFileSync(join(dir, "other-key"), `${"ab".repeat(32)}\n`);
    const wrongKey = new SqliteStore(file, { keyFile: join(dir, "other-key") });
    await expect(wrongKey.jobs.takeKey("j1", UUID)).rejects.toThrow(/does not open: altered, or sealed under another key file/);
    await wrongKey.close();
  });

  it("a key file that is not one is refused by name", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "store-key"), "not a key\n");
    expect(() => new SqliteStore(join(dir, "lifeboat.db"))).toThrow(`${join(dir, "store-key")}: not a Lifeboat secret key (expected 64 hex digits)`);
  });

  it("plaintext passphrases an older release stored are sealed on open, and their bytes leave the file", async () => {
    const file = join(tempDir(), "lifeboat.db");
    const old = new Database(file);
    old.pragma("journal_mode = WAL");
    migrate(old);
    addJob(old, "j1", "52:54:00:16:00:05");
    old.prepare("INSERT INTO job_keys (job, uuid, secret) VALUES ('j1', ?, ?)").run(UUID, PASS);
    old.pragma("wal_checkpoint(TRUNCATE)");
    old.close();
    expect(onDisk(file).includes(PASS)).toBe(true);

    const store = new SqliteStore(file);
    expect(SecretBox.isSealed(rawSecret(store, "j1"))).toBe(true);
    expect(await store.jobs.takeKey("j1", UUID)).toBe(PASS);
    expect(onDisk(file).includes(PASS)).toBe(false);
    await store.close();
    expect(onDisk(file).includes(PASS)).toBe(false);
  });

  it("SecretBox: round trip, a fresh IV each time, bound to its context", () => {
    const box = SecretBox.ephemeral();
    const a = box.seal(PASS, "ctx");
    const b = box.seal(PASS, "ctx");
    expect(a).not.toBe(b);
    expect(box.open(a, "ctx")).toBe(PASS);
    expect(box.open(box.seal("", "ctx"), "ctx")).toBe("");
    expect(() => box.open(a, "other")).toThrow("the stored secret for other does not open");
    expect(() => box.open("lbsec1:AAAA", "ctx")).toThrow(/does not open/);
    expect(() => SecretBox.ephemeral().open(a, "ctx")).toThrow(/does not open/);
  });
});
