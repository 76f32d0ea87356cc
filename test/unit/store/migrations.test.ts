import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { migrations } from "../../../server/store/migrations.ts";
import { SqliteStore, migrate } from "../../../server/store/sqlite.ts";
import { tempDir } from "../../helpers/tmp.ts";

describe("store migrations", () => {
  it("an empty database gets every migration, in id order", async () => {
    const store = new SqliteStore(join(tempDir(), "empty.db"));
    expect(await store.migrations()).toEqual(migrations.map((m) => m.id).sort());
    await store.close();
  });

  it("an existing database keeps its data and gets only the new migrations", async () => {
    const file = join(tempDir(), "existing.db");
    // A database as an older release left it: only the first migration, with data in it.
    const old = new Database(file);
    expect(migrate(old, migrations.slice(0, 1))).toEqual([migrations[0]!.id]);
    old.prepare("INSERT INTO hosts (name, token_hash, created_at) VALUES ('db1', 'x', '2026-01-01T00:00:00Z')").run();
    old.close();

    const extra = { id: "9999-test-extra", sql: "CREATE TABLE test_extra (x INTEGER)" };
    const db = new Database(file);
    // applied in id order, whatever the order of the array (each concern appends its own)
    expect(migrate(db, [...migrations, extra])).toEqual([...migrations.slice(1).map((m) => m.id).sort(), extra.id]);
    expect(migrate(db, [...migrations, extra])).toEqual([]);
    db.close();

    // A store with a migration this Lifeboat does not know comes from a newer one: refused, unchanged.
    expect(() => new SqliteStore(file)).toThrow(`${file}: the store comes from a newer Lifeboat (migration 9999-test-extra unknown here); run that version or newer`);
    const after = new Database(file);
    expect(after.prepare("SELECT token_hash FROM hosts WHERE name = 'db1'").get()).toEqual({ token_hash: "x" });
    after.prepare("DELETE FROM schema_migrations WHERE id = ?").run(extra.id);
    after.close();
    const store = new SqliteStore(file);
    expect((await store.hosts.get("db1"))?.tokenHash).toBe("x");
    await store.close();
  });

  it("leases from before client identifiers belong to their MAC", async () => {
    const file = join(tempDir(), "leases.db");
    const old = new Database(file);
    migrate(old, migrations.filter((m) => m.id < "0201"));
    old.prepare("INSERT INTO dhcp_leases (ip, mac, state, expires_at) VALUES ('10.231.41.100', '52:54:00:29:00:01', 'bound', '2099-01-01T00:00:00.000Z')").run();
    old.close();
    const store = new SqliteStore(file);
    expect(await store.leases.byClient("52:54:00:29:00:01", "")).toMatchObject({ ip: "10.231.41.100", mac: "52:54:00:29:00:01", state: "bound" });
    await store.close();
  });

  it("plans served before ServedPlan.dumps get the dump ids their script streams, their steps and bytes; before end states, reboot", async () => {
    const file = join(tempDir(), "plans.db");
    const old = new Database(file);
    migrate(old, migrations.filter((m) => m.id < "0404"));
    old.prepare("INSERT INTO profiles (name, host, created_at) VALUES ('p', 'web1', '2026-01-01T00:00:00Z')").run();
    const script = "plan_begin 1 web1 4\nrestore_dump / gtar 0 none 10 /api/v1/dumps/0123456789abcdef/stream\nrestore_dump / gtar 1 none '' /api/v1/dumps/fedcba9876543210/stream\nplan_done\n";
    const insert = old.prepare(
      "INSERT INTO jobs (id, mac, kind, profile, state, steps, bytes_total, plan, armed_by, created_at, updated_at, expires_at) VALUES (?, '52:54:00:00:00:01', 'recover', 'p', ?, ?, ?, ?, 'admin', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2099-01-01T00:00:00Z')",
    );
    insert.run("j1", "running", 4, 10, JSON.stringify({ script, detail: null }));
    insert.run("j2", "done", 2, 0, JSON.stringify({ script: "plan_begin 1 web1 2\nplan_done\n", detail: null }));
    insert.run("j3", "expired", 0, 0, "null");
    old.close();
    const store = new SqliteStore(file);
    expect((await store.jobs.get("j1"))?.plan).toEqual({ script, steps: 4, bytesTotal: 10, dumps: ["0123456789abcdef", "fedcba9876543210"], endState: "reboot", detail: null });
    expect((await store.jobs.get("j2"))?.plan).toMatchObject({ dumps: [], endState: "reboot" });
    expect((await store.jobs.get("j3"))?.plan).toBeNull();
    await store.close();
  });

  it("a failing migration is rolled back whole and names itself", () => {
    const db = new Database(":memory:");
    const bad = { id: "0002-bad", sql: "CREATE TABLE half (x INTEGER); CREATE TABLE half (y INTEGER);" };
    expect(() => migrate(db, [...migrations.slice(0, 1), bad])).toThrow(/already exists/);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'half'").get()).toBeUndefined();
    expect(db.prepare("SELECT id FROM schema_migrations").all()).toEqual([{ id: migrations[0]!.id }]);
  });

  it("hosts, MACs, layout versions and the audit log round-trip", async () => {
    const store = new SqliteStore(":memory:");
    await store.hosts.add({ name: "web1", tokenHash: "h", smbiosUuid: null, macs: ["52:54:00:00:00:01"], amandaConfig: null, dleMap: {} });
    expect((await store.hosts.byMac("52:54:00:00:00:01"))?.name).toBe("web1");
    await expect(
      store.hosts.add({ name: "web2", tokenHash: "h", smbiosUuid: null, macs: ["52:54:00:00:00:01"], amandaConfig: null, dleMap: {} }),
    ).rejects.toThrow("MAC 52:54:00:00:00:01 already belongs to host web1");
    expect(await store.hosts.get("web2")).toBeUndefined();
    const v1 = await store.layouts.add("web1", { disks: [1] });
    const v2 = await store.layouts.add("web1", { disks: [2] });
    expect([v1.version, v2.version]).toEqual([1, 2]);
    expect((await store.layouts.get("web1"))?.document).toEqual({ disks: [2] });
    expect((await store.layouts.get("web1", 1))?.document).toEqual({ disks: [1] });
    await store.audit.append({ actor: "t", action: "a", target: "host:web1", detail: { x: 1 } });
    expect((await store.audit.list({ target: "host:web1" }))[0]?.detail).toEqual({ x: 1 });
    expect(await store.hosts.remove("web1")).toBe(true);
    expect(await store.layouts.get("web1")).toBeUndefined();
    await store.close();
  });
});
