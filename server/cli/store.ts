import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { putBackAmanda } from "../bundle/amanda-db.ts";
import { exportBundle, serverId } from "../bundle/export.ts";
import { importBundle } from "../bundle/import.ts";
import { bundleFileName } from "../bundle/manifest.ts";
import { bundlesView } from "../bundle/schedule.ts";
import { isStoreUrl } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { migrateSqliteFile } from "../store/copy.ts";
import { sqliteFile, storeKeyFile } from "../store/open.ts";
import { PgStore } from "../store/postgres.ts";
import { SERVER_DEAD_MS, serverView } from "../jobs/servers.ts";
import { cliContext, output, table, withGlobals } from "./common.ts";

export function registerStore(program: Command): Command {
  const store = program
    .command("store")
    .description("Lifeboat's store: recovery bundles (export, import, bundles) and the move to PostgreSQL (migrate)")
    .addHelpText(
      "after",
      "\nA bundle holds the store (hosts, layouts, profiles, assignments, jobs, catalog, audit; no LUKS keys),\n" +
        "each Amanda config's files, `amadmin CONFIG export`, Amanda's trace logs and index, and each host's\n" +
        "captured layout and packages, under a manifest with sha256 sums, sealed. docs/bundle-format.md.",
    );

  withGlobals(
    store
      .command("export")
      .description("write a recovery bundle (reads the store; safe beside a running server)")
      .option("--out <file>", "bundle file to write (default: ./lifeboat-SERVERID-TIME.bundle, .bundle.gpg when encrypted)")
      .option("--recipient <key>", "encrypt to this OpenPGP key (id, fingerprint or user id in gpg's keyring, $GNUPGHOME)"),
    { json: true },
  ).action(async (o: { out?: string; recipient?: string }, c: Command) => {
    const ctx = cliContext(c);
    const now = new Date();
    const out = resolve(o.out ?? bundleFileName(await serverId(ctx.store()), now.toISOString(), !!o.recipient));
    const r = await exportBundle({ store: ctx.store(), amanda: ctx.config.amanda, out, recipient: o.recipient, now });
    const view = { file: r.file, bytes: r.bytes, encrypted: r.encrypted, members: r.manifest.members.length, serverId: r.manifest.serverId, createdAt: r.manifest.createdAt, notes: r.manifest.notes };
    output(ctx, view, () =>
      [`wrote ${r.file} (${r.bytes} bytes, ${view.members} members${o.recipient ? `, encrypted to ${o.recipient}` : ""})`, ...r.manifest.notes.map((n) => `warning: ${n}`)].join("\n"),
    );
  });

  withGlobals(
    store
      .command("import <file>")
      .description("restore a recovery bundle into an empty data dir (refused: a non-empty data dir, a damaged or newer bundle, an encrypted one without its key)")
      .addHelpText(
        "after",
        "\nThe store goes to <data-dir>/lifeboat.db with a new server id and a new store key; Amanda's files,\n" +
          "its `amadmin export` and the hosts' facts go to <data-dir>/restored/. Start `lifeboat serve` afterwards\n" +
          "(a new admin token is made then). Encrypted bundles are decrypted with gpg ($GNUPGHOME).",
      ),
    { json: true },
  ).action(async (file: string, _o, c: Command) => {
    const ctx = cliContext(c);
    const r = await importBundle(resolve(file), ctx.config, "cli");
    const m = r.manifest;
    const view = { dataDir: r.dataDir, restored: r.restored, serverId: r.serverId, from: m.serverId, createdAt: m.createdAt, lifeboat: m.lifeboat, members: m.members.length, notes: m.notes };
    output(ctx, view, () =>
      [
        `imported ${file} into ${r.dataDir}: the store of server ${m.serverId} as of ${m.createdAt} (Lifeboat ${m.lifeboat})`,
        `Amanda's files, its database export and the hosts' facts are in ${r.restored}`,
        ...m.notes.map((n) => `note (from the export): ${n}`),
      ].join("\n"),
    );
  });

  withGlobals(
    store
      .command("amanda-db <config>")
      .description("after store import, on the new Amanda server: put Amanda config <config> back (its files, trace logs, index, curinfo) so amadmin find and amrecover answer as before")
      .option("--force", "replace files that exist here with other contents (without it: refused, nothing written)")
      .addHelpText(
        "after",
        "\nRun as root on the machine that is to be the Amanda server, with amanda-server installed and the vtapes (or\n" +
          "tapes) attached, after `lifeboat store import FILE`. From <data-dir>/restored/amanda/<config>: amanda.conf,\n" +
          "the disklist, tapelist, changer state, trace logs and index files go back to their paths, owned by the\n" +
          "dump user; /etc/amanda/<config> is linked to the config dir if missing; `amadmin <config> import` loads\n" +
          "the curinfo database from the bundle's export. Files outside the config's places are never written.\n" +
          "README: \"When the Amanda server is lost\".",
      ),
    { json: true },
  ).action(async (config: string, o: { force?: boolean }, c: Command) => {
    const ctx = cliContext(c);
    const r = await putBackAmanda({ dataDir: ctx.config.dataDir, name: config, force: o.force === true });
    await ctx.store().audit.append({ actor: "cli", action: "store.amanda-db", target: `amanda:${config}`, detail: { written: r.written.length, unchanged: r.unchanged.length, linked: r.linked, imported: r.imported, force: o.force === true } });
    output(ctx, r, () =>
      [
        `Amanda config ${config} put back from ${r.from}: ${r.written.length} files written, ${r.unchanged.length} already there`,
        ...(r.linked ? [`${r.linked} now links to the config dir`] : []),
        r.imported ? `curinfo database loaded (amadmin ${config} import${r.infofile ? ` into ${r.infofile}` : ""})` : "curinfo database not loaded",
        ...r.notes.map((n) => `note: ${n}`),
        `check: amadmin ${config} find; amrecover ${config}`,
      ].join("\n"),
    );
  });

  withGlobals(
    store
      .command("bundles")
      .description("scheduled recovery bundles: each target's last success and failure, and bundles other servers pushed here")
      .addHelpText("after", "\nReads the data dir (works with the server stopped). Targets and schedule: `bundle:` in the config.\nExit code 1 when a target's last attempt failed."),
    { json: true },
  ).action(async (_o, c: Command) => {
    const ctx = cliContext(c);
    const view = await bundlesView(ctx.config, ctx.store());
    const at = (x: { at: string } | null) => x?.at ?? "never";
    output(ctx, view, () =>
      [
        `every ${view.everyHours} h, keeping ${view.keep} per server; last run ${view.lastRun ?? "never"}`,
        table(
          view.targets.map((t) => ({ ...t, state: t.ok === null ? "not yet" : t.ok ? "ok" : "FAILED", lastSuccess: at(t.lastSuccess), lastFailure: t.lastFailure ? `${t.lastFailure.at}: ${t.lastFailure.error}` : "-" })),
          ["name", "type", "where", "state", "lastSuccess", "lastFailure"],
        ),
        ...(view.received.length ? ["received from other servers:", table(view.received, ["file", "bytes", "at"])] : []),
      ].join("\n"),
    );
    if (view.targets.some((t) => t.ok === false)) process.exitCode = 1;
  });

  withGlobals(
    store
      .command("servers")
      .description("the servers of this store (several on PostgreSQL): name, URL, Amanda configs, last beat, alive")
      .addHelpText("after", `\nReads the store (works with the servers stopped). A server silent for ${SERVER_DEAD_MS / 1000} s is dead: another may take its jobs' boots.`),
    { json: true },
  ).action(async (_o, c: Command) => {
    const ctx = cliContext(c);
    const view = (await ctx.store().servers.list()).map((s) => serverView(s, Date.now()));
    output(ctx, view, () => table(view.map((s) => ({ ...s, amanda: s.amanda.join(",") || "-", alive: s.alive ? "yes" : "NO" })), ["name", "url", "amanda", "lastSeenAt", "alive"]));
  });

  withGlobals(
    store
      .command("migrate")
      .description("copy this data dir's embedded SQLite store into an empty PostgreSQL database (several servers on one store)")
      .requiredOption("--to <url>", "the PostgreSQL store: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or ?host=/socket/dir)")
      .addHelpText(
        "after",
        "\nStop `lifeboat serve` first. The SQLite file is only read (it stays as it was); the copy is one transaction,\n" +
          "refused when the target holds any row. Secrets (LUKS keys, BMC passwords) are copied sealed: every server of\n" +
          "the store needs this data dir's store-key file. Then set `store: { url: ... }` in each server's config.\n" +
          "README.md, \"Several servers\".",
      ),
    { json: true },
  ).action(async (o: { to: string }, c: Command) => {
    const ctx = cliContext(c);
    if (!isStoreUrl(o.to)) throw new UserError(`--to: expected a postgres:// or postgresql:// URL, got ${JSON.stringify(o.to.slice(0, 80))}`, 2);
    const file = sqliteFile(ctx.config);
    if (!existsSync(file)) throw new UserError(`${file}: no SQLite store to migrate (--data-dir DIR)`, 2);
    const target = new PgStore(o.to, { keyFile: storeKeyFile(ctx.config) });
    try {
      await target.opened();
      const tables = await migrateSqliteFile(file, target.pool, target.where);
      await target.audit.append({ actor: "cli", action: "store.migrate", target: "store", detail: { from: file, tables } });
      const view = { from: file, to: target.where, tables, rows: Object.values(tables).reduce((a, b) => a + b, 0) };
      output(ctx, view, () =>
        [
          `copied ${view.rows} rows from ${file} into ${target.where}:`,
          `  ${Object.entries(tables).map(([t, n]) => `${t} ${n}`).join(", ")}`,
          `next: set store.url in each server's config and give each server this data dir's store-key (${storeKeyFile(ctx.config)})`,
        ].join("\n"),
      );
    } finally {
      await target.close();
    }
  });

  return store;
}
