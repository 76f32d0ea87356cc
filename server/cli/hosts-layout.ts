import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { z } from "zod";
import { UserError } from "../errors.ts";
import { targetDiskSchema } from "../plan/agent-api.ts";
import { type DiskLayout, formatZodIssue, parseLayout } from "../layout/layout.ts";
import { describeLayout, diffLayouts } from "../layout/layout-text.ts";
import { type PlanOptions, type RestoreChain, buildPlan, describePlan } from "../plan/plan.ts";
import { layoutFromRear } from "../layout/rear-import.ts";
import { layoutProblem } from "../layout/layout-validate.ts";
import type { Store } from "../store/types.ts";
import { cliContext, output, parseMappingPairs, withGlobals, withServer } from "./common.ts";

const collect = (v: string, prev: string[]) => [...prev, v];

const positiveInt = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${what}: expected a version number (1, 2, …), got ${JSON.stringify(v)}`, 2);
  return n;
};

async function loadLayout(store: Store, host: string, version?: number): Promise<{ version: number; capturedAt: string; layout: DiskLayout }> {
  if (!(await store.hosts.get(host))) throw new UserError(`no host named ${host}`, 2);
  const rec = await store.layouts.get(host, version);
  if (!rec) throw new UserError(`host ${host}: ${version ? `no layout version ${version}` : "no layout captured yet (run capture.sh on it, or lifeboat hosts import-rear)"}`, 2);
  try {
    return { version: rec.version, capturedAt: rec.capturedAt, layout: parseLayout(rec.document, `host ${host} layout v${rec.version}`) };
  } catch (err) {
    throw new UserError((err as Error).message);
  }
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`${file}: cannot read ${what} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 2);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: not JSON (${(err as Error).message})`, 2);
  }
}

const chainsSchema = z.array(
  z.object({
    dle: z.string(),
    mountpoint: z.string(),
    program: z.enum(["gtar", "dump"]),
    dumps: z.array(z.object({ id: z.string(), level: z.number().int(), datestamp: z.string(), sizeBytes: z.number().nullable(), compression: z.string() })),
  }),
);

/** `hosts layout`, `hosts import-rear`, `hosts plan`: the captured layouts and the dry-run plan. */
export function registerHostLayoutCommands(hosts: Command): void {
  withGlobals(
    hosts
      .command("layout <name>")
      .description("show a captured layout (default: the newest), or what changed between two versions")
      .option("--version <n>", "the version to show", positiveInt("--version"))
      .option("--diff <m>", "compare version M with --version (or the newest)", positiveInt("--diff")),
    { json: true },
  ).action(async (name: string, o: { version?: number; diff?: number }, c: Command) => {
    const ctx = cliContext(c);
    const cur = await loadLayout(ctx.store(), name, o.version);
    if (o.diff !== undefined) {
      const old = await loadLayout(ctx.store(), name, o.diff);
      const lines = diffLayouts(old.layout, cur.layout);
      output(ctx, { host: name, from: old.version, to: cur.version, changes: lines }, () =>
        [`${name}: layout v${old.version} (${old.capturedAt}) → v${cur.version} (${cur.capturedAt})`, ...(lines.length ? lines : ["no changes"])].join("\n"),
      );
      return;
    }
    output(ctx, { host: name, version: cur.version, capturedAt: cur.capturedAt, layout: cur.layout }, () => `layout v${cur.version}\n${describeLayout(cur.layout)}`);
  });

  withServer(
    withGlobals(
      hosts
        .command("import-rear <name> <file>")
        .description("store a ReaR disklayout.conf (/var/lib/rear/layout/disklayout.conf) as a new layout version of the host (through the server, with the admin token)"),
      { json: true },
    ),
  ).action(async (name: string, file: string, _o, c: Command) => {
    const ctx = cliContext(c);
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new UserError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 2);
    }
    let layout: DiskLayout;
    try {
      layout = layoutFromRear(text, name);
      const problem = layoutProblem(layout);
      if (problem) throw new Error(`refused: ${problem}`);
    } catch (err) {
      throw new UserError(`${file}: ${(err as Error).message}`, 2);
    }
    // Parsed here, so a bad file is named in the error; the server checks the document again and audits it.
    const rec = await ctx.api.request<{ host: string; version: number; capturedAt: string }>("PUT", `/api/v1/hosts/${encodeURIComponent(name)}/layout`, layout);
    output(ctx, rec, () => `host ${name}: ReaR layout stored as version ${rec.version}\n${describeLayout(layout)}`);
  });

  withGlobals(
    hosts
      .command("plan <name>")
      .description("dry run (writes nothing): the disk mapping, what each target disk holds now, and the plan's script")
      .requiredOption("--disks <file>", "JSON: the target disks ([{name, path, sizeBytes, serial, wwn, byId, …}] or an agent hello {disks:[…]})")
      .option("--chains <file>", "JSON: restore chains [{dle, mountpoint, program, dumps:[{id, level, datestamp, sizeBytes, compression}]}]")
      .option("--version <n>", "layout version (default: the newest)", positiveInt("--version"))
      .option("--map <captured=target>", "map a captured disk to a target disk (repeatable; needed on new hardware or weak serials); none leaves it out", collect, [])
      .option("--include-removable", "restore captured removable/USB disks too, and allow removable/USB targets")
      .option("--exact", "keep partition sectors as captured instead of fitting them to the target disk")
      .option("--grow <partition>", "captured partition that takes the rest of its disk (default: the last resizable one)")
      .option("--luks-key <uuid>", "a LUKS container whose key the job will hold (repeatable)", collect, [])
      .option("--no-bootloader", "do not install a boot loader"),
    { json: true },
  ).action(
    async (
      name: string,
      o: { disks: string; chains?: string; version?: number; map: string[]; includeRemovable?: boolean; exact?: boolean; grow?: string; luksKey: string[]; bootloader: boolean },
      c: Command,
    ) => {
      const ctx = cliContext(c);
      const { layout, version } = await loadLayout(ctx.store(), name, o.version);
      const raw = readJson(o.disks, "the target disks");
      const disks = z.array(targetDiskSchema).safeParse(Array.isArray(raw) ? raw : (raw as { disks?: unknown }).disks);
      if (!disks.success) throw new UserError(`${o.disks}: ${formatZodIssue(disks.error)}`, 2);
      let chains: RestoreChain[] = [];
      if (o.chains) {
        const r = chainsSchema.safeParse(readJson(o.chains, "the restore chains"));
        if (!r.success) throw new UserError(`${o.chains}: ${formatZodIssue(r.error)}`, 2);
        chains = r.data;
      }
      const options: PlanOptions = {
        mapping: parseMappingPairs(o.map, "--map"),
        includeRemovable: o.includeRemovable,
        migration: o.exact ? "exact" : "proportional",
        grow: o.grow,
        luksKeys: o.luksKey,
        bootloader: o.bootloader ? "auto" : "none",
      };
      const r = buildPlan({ layout, targets: disks.data, chains, options });
      output(ctx, { host: name, layoutVersion: version, ...r }, () => `host ${name}, layout v${version}\n${describePlan(r)}`);
      if (!r.ok) process.exitCode = 1;
    },
  );
}
