import { resolve } from "node:path";
import type { Command } from "commander";
import { putBackAmanda } from "../bundle/amanda-db.ts";
import { exportBundle, serverId } from "../bundle/export.ts";
import { importBundle } from "../bundle/import.ts";
import { bundleFileName } from "../bundle/manifest.ts";
import { bundlesView } from "../bundle/schedule.ts";
import { cliContext, output, table, withGlobals } from "./common.ts";

export function registerStore(program: Command): Command {
  const store = program
    .command("store")
    .description("Lifeboat's store as one recovery bundle: export, import (for when a server is lost)")
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

  return store;
}
