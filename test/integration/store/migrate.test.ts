/**
 * `lifeboat store migrate --to postgres://…` (issue 25 item 4): the real CLI copies a data dir's
 * SQLite store into a throwaway PostgreSQL; what the PostgreSQL store then reads is what the
 * SQLite one read, sealed secrets included; a non-empty target and a bad URL are refused in one line.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { exportBundle } from "../../../server/bundle/export.ts";
import { importBundle } from "../../../server/bundle/import.ts";
import { migrations } from "../../../server/store/migrations.ts";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PgStore } from "../../../server/store/postgres.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import type { Store } from "../../../server/store/types.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { type TestPostgres, postgresUnavailable, startPostgres } from "../../helpers/postgres.ts";
import { tempDir } from "../../helpers/tmp.ts";

const UUID = "4f6b1c2e-8d3a-4e5f-9a0b-1c2d3e4f5a6b";

/** Everything a store's repositories show, for comparing two stores. */
async function view(s: Store) {
  const jobs = await s.jobs.list();
  return {
    hosts: await s.hosts.list(),
    layouts: await s.layouts.versions("web1"),
    layout: await s.layouts.get("web1"),
    audit: (await s.audit.list()).filter((e) => e.action !== "store.migrate"),
    profiles: await s.profiles.list(),
    assignments: await s.assignments.list(),
    jobs,
    events: await Promise.all(jobs.map((j) => s.jobs.events(j.id))),
    keys: await s.jobs.keyIds("j1"),
    leases: await s.leases.list(),
    catalog: await s.catalog.refreshes(),
    power: await s.power.get("web1"),
    setting: await s.settings.get("server.id"),
  };
}

describeNeeding(postgresUnavailable(), "lifeboat store migrate --to", () => {
  let pg: TestPostgres;
  beforeAll(async () => {
    pg = await startPostgres();
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it("copies a SQLite store into an empty PostgreSQL, counts its rows, and refuses to copy into it again", async () => {
    const dataDir = tempDir("lifeboat-migrate-");
    const file = join(dataDir, "lifeboat.db");
    const src = new SqliteStore(file, { keyFile: join(dataDir, "store-key") });
    await src.hosts.add({ name: "web1", tokenHash: "h", smbiosUuid: "u", macs: ["52:54:00:25:00:01"], amandaConfig: "daily", dleMap: { "/": "/" } });
    await src.layouts.add("web1", { disks: [1] });
    await src.layouts.add("web1", { disks: [2] });
    await src.profiles.put({ name: "p", host: "web1", layoutVersion: 1, at: null, options: { newUuids: true } });
    await src.assignments.set("52:54:00:25:00:01", "p");
    const t = new Date(Date.now() + 86_400_000).toISOString();
    const base = { mac: "52:54:00:25:00:01", kind: "recover" as const, profile: "p", step: 0, steps: 0, bytesDone: 0, bytesTotal: 0, tokenHash: null, planTokenHash: null, hostname: null, at: null, hello: null, mapping: null, options: {}, plan: null, powerWave: null, error: null, armedBy: "t", expiresAt: t, lastHeartbeatAt: null };
    await src.jobs.create({ ...base, id: "j0", state: "done", trustHttpBoot: false });
    await src.jobs.create({ ...base, id: "j1", state: "armed", trustHttpBoot: true });
    await src.jobs.addEvent("j1", "armed", { by: "t" });
    await src.jobs.setKey("j1", UUID, "luks pass");
    await src.power.put("web1", { kind: "wol" }, "bmc pass");
    await src.leases.put({ ip: "10.231.25.100", client: "52:54:00:25:00:01", mac: "52:54:00:25:00:01", state: "bound", hostname: null, expiresAt: t, server: "a" });
    await src.catalog.replace("daily", [], ["w"]);
    await src.audit.append({ actor: "t", action: "host.add", target: "host:web1", detail: null });
    await src.settings.set("server.id", "s-1");
    const before = await view(src);
    await src.close();

    const url = await pg.createDatabase();
    const r = await lifeboat(["store", "migrate", "--to", url, "--data-dir", dataDir, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as { to: string; tables: Record<string, number>; rows: number };
    expect(out.tables).toEqual({
      hosts: 1, host_macs: 1, layouts: 2, audit: 1, settings: 1, profiles: 1, assignments: 1, jobs: 2, job_events: 1, job_keys: 1,
      dhcp_leases: 1, catalog_dumps: 0, catalog_refreshes: 1, host_power: 1, servers: 0, amanda_keys: 0,
    });
    expect(out.rows).toBe(15);

    const dst = new PgStore(url, { keyFile: join(dataDir, "store-key") });
    try {
      expect(await view(dst)).toEqual(before);
      // Sealed secrets moved sealed, and open with the data dir's key; new rows number on after the copied ones.
      expect(await dst.power.secret("web1")).toBe("bmc pass");
      expect(await dst.jobs.takeKey("j1", UUID)).toBe("luks pass");
      const e = await dst.jobs.addEvent("j1", "next", null);
      expect(e.id).toBe(before.events.flat().reduce((m, x) => Math.max(m, x.id), 0) + 1);
      expect((await dst.audit.list({ target: "store" }))[0]).toMatchObject({ action: "store.migrate", detail: { from: file } });
    } finally {
      await dst.close();
    }

    const again = await lifeboat(["store", "migrate", "--to", url, "--data-dir", dataDir]);
    expect(again.exitCode).toBe(2);
    expect(again.stderr.trim().split("\n")).toHaveLength(1);
    expect(again.stderr).toMatch(/refused: the target store is not empty \(hosts: 1, host_macs: 1, layouts: 2, audit: 2,/);
    // The source is only read.
    const still = new SqliteStore(file, { keyFile: join(dataDir, "store-key") });
    expect(await view(still)).toEqual(before);
    await still.close();

    const human = await lifeboat(["store", "migrate", "--to", await pg.createDatabase(), "--data-dir", dataDir]);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(/^copied 15 rows from .*lifeboat\.db into postgresql:\/\/lifeboat@localhost\/.*:\n {2}hosts 1, host_macs 1, layouts 2,/);
  });

  it("a PostgreSQL store's recovery bundle imports into an empty SQLite data dir and into an empty PostgreSQL store", async () => {
    const url = await pg.createDatabase();
    const keyDir = tempDir("lifeboat-bundle-key-");
    const src = new PgStore(url, { keyFile: join(keyDir, "store-key") });
    await src.hosts.add({ name: "web9", tokenHash: "h", smbiosUuid: null, macs: ["52:54:00:25:00:09"], amandaConfig: null, dleMap: {} });
    await src.layouts.add("web9", { disks: [] });
    const out = join(tempDir("lifeboat-bundle-"), "b.bundle");
    try {
      const r = await exportBundle({ store: src, amanda: [], out });
      // The manifest names the snapshot's (SQLite) migrations, which an import checks.
      expect(r.manifest.schema).toEqual(migrations.map((m) => m.id).sort());
    } finally {
      await src.close();
    }
    const intoSqlite = join(tempDir("lifeboat-import-"), "data");
    const a = await importBundle(out, { dataDir: intoSqlite, adminTokenFile: join(intoSqlite, "admin-token"), store: { url: "" } }, "test");
    const s = new SqliteStore(join(a.dataDir, "lifeboat.db"), { keyFile: join(intoSqlite, "store-key") });
    expect((await s.hosts.byMac("52:54:00:25:00:09"))?.name).toBe("web9");
    await s.close();
    const target = await pg.createDatabase();
    const intoPg = join(tempDir("lifeboat-import-"), "data");
    await importBundle(out, { dataDir: intoPg, adminTokenFile: join(intoPg, "admin-token"), store: { url: target } }, "test");
    const p = new PgStore(target, { keyFile: join(intoPg, "store-key") });
    try {
      expect((await p.layouts.get("web9"))?.version).toBe(1);
      expect((await p.audit.list({ target: "store" })).map((e) => e.action)).toContain("store.import");
    } finally {
      await p.close();
    }
    expect(existsSync(join(intoPg, "lifeboat.db"))).toBe(false);
  });

  it("a URL that is not one, and a data dir without a store, are refused in one line", async () => {
    const bad = await lifeboat(["store", "migrate", "--to", "mysql://x/y", "--data-dir", tempDir()]);
    expect([bad.exitCode, bad.stderr.trim()]).toEqual([2, expect.stringMatching(/--to: expected a postgres:\/\/ or postgresql:\/\/ URL, got "mysql:\/\/x\/y"$/)]);
    const dir = tempDir();
    const none = await lifeboat(["store", "migrate", "--to", pg.url("postgres"), "--data-dir", dir]);
    expect([none.exitCode, none.stderr.trim()]).toEqual([2, expect.stringContaining(`${join(dir, "lifeboat.db")}: no SQLite store to migrate`)]);
  });
});
