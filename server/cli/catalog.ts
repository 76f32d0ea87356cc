import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { catalogFromScan } from "../amanda/catalog.ts";
import { ChainError, selectChain } from "../amanda/chain.ts";
import { type AmandaSetup, readAmandaConfig } from "../amanda/conf.ts";
import { scanMedia } from "../amanda/media.ts";
import type { CatalogDump } from "../amanda/model.ts";
import { type RefreshSummary, readCatalog, setupOf } from "../amanda/refresh.ts";
import { openDumpStream } from "../amanda/stream.ts";
import { chainView, type DumpSummary, dumpSummary } from "../amanda/dump-views.ts";
import { UserError, errorMessage } from "../errors.ts";
import { type CliContext, cliContext, output, table, withGlobals, withServer } from "./common.ts";

interface CatalogOptions {
  amandaDir?: string;
}

const say = (msg: string) => process.stderr.write(`lifeboat: ${msg}\n`);
/** Progress lines on long work, for a person watching (a terminal, or LIFEBOAT_PROGRESS=1). */
const progress = (msg: string) => {
  if (process.stderr.isTTY || process.env.LIFEBOAT_PROGRESS === "1") say(msg);
};

function withAmandaDir(cmd: Command): Command {
  return cmd.option("--amanda-dir <dir>", "read this Amanda config directory directly (logs, tapelist, vtapes, holding disk) instead of Lifeboat's stored catalog");
}

function setupFromDir(dir: string): AmandaSetup {
  return readAmandaConfig(dir.replace(/\/+$/, ""));
}

/** The dumps to work on: read live from --amanda-dir, else Lifeboat's stored copy. */
async function dumpsFor(ctx: CliContext, o: CatalogOptions, filter: { host?: string; disk?: string } = {}): Promise<CatalogDump[]> {
  if (o.amandaDir) {
    // amadmin's cross-check is for refresh; reads stay quick (it takes seconds to start).
    const r = await readCatalog(setupFromDir(o.amandaDir), { onProgress: progress, amadmin: false });
    for (const w of r.warnings) say(`warning: ${w}`);
    return r.dumps.filter((d) => (filter.host === undefined || d.host === filter.host) && (filter.disk === undefined || d.disk === filter.disk));
  }
  const dumps = await ctx.store().catalog.list(filter);
  if (dumps.length === 0 && (await ctx.store().catalog.refreshes()).length === 0)
    say("the stored catalog is empty: run `lifeboat catalog refresh` (or pass --amanda-dir DIR)");
  return dumps;
}

const listColumns = ["id", "host", "disk", "level", "datestamp", "program", "compression", "sizeBytes", "where", "problem"];
const row = (d: DumpSummary) => ({
  ...d,
  where: d.location.kind === "holding" ? `holding ${d.location.path ?? ""}` : `${d.location.label} file ${d.location.fileNo}${(d.location.parts?.length ?? 1) > 1 ? ` (${d.location.parts!.length} parts)` : ""}`,
});

export function registerCatalog(program: Command): Command {
  const catalog = program
    .command("catalog")
    .description("the Amanda catalog: dumps, restore chains and dump streams")
    .addHelpText(
      "after",
      "\nLifeboat keeps its own copy of each configured Amanda catalog (refreshed by `serve` every\ncatalog.refreshMinutes and by `catalog refresh`, which asks the running server). list, chain\nand cat read that copy from the data dir, or with --amanda-dir a config directory directly.",
    );

  withServer(
    withGlobals(
      catalog
        .command("refresh")
        .description("have the server re-read its Amanda configs (trace logs, tapelist, media headers, amadmin find) into Lifeboat's catalog")
        .option("--amanda <name>", "only this Amanda config (a name under `amanda:` in the server's config)"),
      { json: true },
    ),
  ).action(async (o: { amanda?: string }, c: Command) => {
    const ctx = cliContext(c);
    const results = await ctx.api.request<RefreshSummary[]>("POST", "/api/v1/catalog/refresh", o.amanda ? { amanda: o.amanda } : {});
    if (results.length === 0) throw new UserError("the server has no Amanda configs (`amanda:` list in its config); to read one directory, use catalog list --amanda-dir DIR", 2);
    output(ctx, results, () =>
      results
        .map((r) => (r.error ? `${r.amanda}: FAILED: ${r.error}` : `${r.amanda}: ${r.dumps} dumps${r.warnings.map((w) => `\n  warning: ${w}`).join("")}`))
        .join("\n"),
    );
    if (results.some((r) => r.error)) process.exitCode = 1;
  });

  withGlobals(
    withAmandaDir(catalog.command("list").description("list dumps").option("--host <host>", "only this host").option("--disk <disk>", "only this disk (Amanda disk name)")),
    { json: true },
  ).action(async (o: CatalogOptions & { host?: string; disk?: string }, c: Command) => {
    const ctx = cliContext(c);
    const dumps = (await dumpsFor(ctx, o, { host: o.host, disk: o.disk })).map(dumpSummary);
    output(ctx, dumps, () => table(dumps.map(row), listColumns));
  });

  withGlobals(
    withAmandaDir(
      catalog
        .command("chain <host> <disk>")
        .description("the dumps a restore of HOST DISK applies, in order: the newest level 0 at or before --at, then each next level")
        .option("--at <datestamp>", "point in time: YYYYMMDD[HHMMSS] or YYYY-MM-DD[ HH:MM:SS] (default: newest)"),
    ),
    { json: true },
  ).action(async (host: string, disk: string, o: CatalogOptions & { at?: string }, c: Command) => {
    const ctx = cliContext(c);
    let view;
    try {
      view = chainView(selectChain(await dumpsFor(ctx, o, { host, disk }), host, disk, o.at));
    } catch (err) {
      if (err instanceof ChainError) throw new UserError(err.message, 1);
      throw err;
    }
    output(ctx, view, () => `restore chain of ${host}:${disk}${view.at ? ` at ${view.at}` : ""}\n${table(view.dumps.map(row), listColumns)}`);
  });

  withGlobals(
    withAmandaDir(
      catalog
        .command("scan [dirs...]")
        .description("build a catalog from media headers alone (vtape slots, holding dirs, or any directory above them): for when the Amanda server is lost"),
    ),
    { json: true },
  ).action(async (dirs: string[], o: CatalogOptions, c: Command) => {
    const ctx = cliContext(c);
    const all = [...dirs];
    let name = "scan";
    if (o.amandaDir) {
      const s = setupFromDir(o.amandaDir);
      name = s.name;
      all.push(...(s.vtapeRoot ? [s.vtapeRoot] : []), ...s.holdingDirs);
    }
    if (all.length === 0) throw new UserError("catalog scan: give at least one directory (or --amanda-dir DIR)", 2);
    const r = catalogFromScan(name, await scanMedia(all, progress));
    for (const w of r.warnings) say(`warning: ${w}`);
    const dumps = r.dumps.map(dumpSummary);
    output(ctx, dumps, () => table(dumps.map(row), listColumns));
  });

  withGlobals(
    withAmandaDir(
      catalog
        .command("cat <dumpId>")
        .description("write one dump's data to stdout: as stored (default) or decompressed; Amanda's CRCs are checked on the way")
        .option("--decompress", "decompress on this side (gzip, compress, bzip2 or the custom program named in the header)"),
    ),
  ).action(async (id: string, o: CatalogOptions & { decompress?: boolean }, c: Command) => {
    const ctx = cliContext(c);
    if (process.stdout.isTTY) throw new UserError("catalog cat writes binary dump data: redirect stdout to a file or a pipe", 2);
    const d = (await dumpsFor(ctx, o)).find((x) => x.id === id);
    if (!d) throw new UserError(`no dump ${id} in the catalog (see \`lifeboat catalog list\`)`, 2);
    let dumpUser: AmandaSetup | undefined;
    if (d.location.kind === "tape") {
      const a = ctx.config.amanda.find((x) => x.name === d.amanda);
      dumpUser = o.amandaDir ? setupFromDir(o.amandaDir) : a ? setupOf(a) : undefined;
    }
    const s = openDumpStream(d, { decompress: o.decompress === true, dumpUser });
    let sent = 0;
    const tick = process.stderr.isTTY ? setInterval(() => progress(`${d.id}: ${(sent / 1048576).toFixed(0)} MiB${s.length ? ` of ${(s.length / 1048576).toFixed(0)} MiB` : ""}`), 2000) : undefined;
    s.stream.on("data", (b: Buffer) => (sent += b.length));
    try {
      await pipeline(s.stream, process.stdout);
    } catch (err) {
      throw new UserError(`${d.id}: ${errorMessage(err)}`);
    } finally {
      if (tick) clearInterval(tick);
    }
  });

  return catalog;
}
