import type { Command } from "commander";
import { UserError } from "../errors.ts";
import type { ProfileBody } from "../http/api-schemas.ts";
import type { ProfileRecord } from "../store/types.ts";
import { DEFAULT_END_STATE, type EndState } from "../plan/steps.ts";
import { cliContext, output, parseMappingPairs, planChoices, table, withGlobals, withPlanChoices, withServer } from "./common.ts";

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerProfiles(program: Command): Command {
  const profiles = program
    .command("profiles")
    .description("profiles: what a machine becomes (a host's layout and restore point, or a clone template)");

  withServer(
    withGlobals(
      withPlanChoices(
        profiles
          .command("set <name>")
          .description("create or change a profile")
          .requiredOption("--host <host>", "the host whose layout and backups the profile restores")
          .option("--layout-version <n>", "pin a layout version (default: the host's latest at plan time)")
          .option("--at <datestamp>", "restore point, an Amanda datestamp YYYYMMDD[hhmmss] (default: newest)")
          .option(
            "--map <captured=target>",
            "disk mapping, repeatable: the target by serial:X, wwn:X or by-id:X (a profile has seen no machine, so no kernel names; map those per job with `jobs map`), or none to leave the captured disk out",
            collect,
            [],
          )
          .option("--include-removable", "also restore removable and USB disks that were captured, and allow them as targets")
          .option("--hostname-pattern <pattern>", "clones: hostname with {n} (clone number) or {mac}")
          .option("--clone-address <pattern>", "clones: each its own static address, one octet {n} or {n+K} (clone number from 1), e.g. 10.0.5.{n+20}/24; written on the captured default-route NIC (README \"Networks\")")
          .option("--clone-gateway <ip>", "with --clone-address: the clones' default gateway")
          .option("--clone-dns <ip>", "with --clone-address: a DNS server, repeatable", collect, [])
          .option("--no-bootloader", "do not make the restored system bootable (no boot loader, no new initramfs): for data disks")
          .option("--drill-check <check>", "a host's own profile: its drills' checks once up (repeatable): tcp:PORT, ssh:COMMAND", collect, [])
          .option("--drill-address <addr/prefix>", "a host's own profile: the restored system's own address its drills' checks reach (default: DHCP)")
          .option("--drill-every <period>", "a host's own profile: serve drills the host this often (7d, 12h, 90m, 2w, or off), over config drill.every"),
      ),
      { json: true },
    ),
  ).action(async (name: string, o: { host: string; layoutVersion?: string; at?: string; map: string[]; includeRemovable?: boolean; hostnamePattern?: string; cloneAddress?: string; cloneGateway?: string; cloneDns: string[]; bootloader: boolean; drillEvery?: string; drillCheck: string[]; drillAddress?: string; newUuids?: boolean; grow?: string; endState?: EndState }, c: Command) => {
    const ctx = cliContext(c);
    if (!o.cloneAddress && (o.cloneGateway || o.cloneDns.length)) throw new UserError("--clone-gateway and --clone-dns go with --clone-address", 2);
    const lv = o.layoutVersion === undefined ? null : Number(o.layoutVersion);
    if (lv !== null && (!Number.isInteger(lv) || lv < 1)) throw new UserError(`--layout-version: expected a version number, got ${JSON.stringify(o.layoutVersion)}`, 2);
    const body: ProfileBody = {
      host: o.host,
      layoutVersion: lv,
      at: o.at ?? null,
      options: {
        mapping: o.map.length ? parseMappingPairs(o.map, "--map") : undefined,
        includeRemovable: o.includeRemovable,
        hostnamePattern: o.hostnamePattern,
        cloneAddress: o.cloneAddress ? { pattern: o.cloneAddress, gateway: o.cloneGateway, dns: o.cloneDns.length ? o.cloneDns : undefined } : undefined,
        bootloader: o.bootloader ? "auto" : "none",
        drillEvery: o.drillEvery,
        drillChecks: o.drillCheck.length ? o.drillCheck : undefined,
        drillAddress: o.drillAddress,
        ...planChoices(o),
      },
    };
    const p = await ctx.api.request<ProfileRecord>("PUT", `/api/v1/profiles/${encodeURIComponent(name)}`, body);
    output(ctx, p, () => `profile ${p.name}: host ${p.host}, layout ${p.layoutVersion ?? "latest"}, restore point ${p.at ?? "newest"}, once done: ${p.options.endState ?? DEFAULT_END_STATE}`);
  });

  withServer(withGlobals(profiles.command("list").description("list profiles"), { json: true })).action(async (_o, c: Command) => {
    const ctx = cliContext(c);
    const list = await ctx.api.request<ProfileRecord[]>("GET", "/api/v1/profiles");
    output(ctx, list, () =>
      table(
        list.map((p) => ({ ...p, layoutVersion: p.layoutVersion ?? "latest", at: p.at ?? "newest", hostnamePattern: p.options.hostnamePattern, endState: p.options.endState ?? DEFAULT_END_STATE })),
        ["name", "host", "layoutVersion", "at", "hostnamePattern", "endState"],
      ),
    );
  });

  withServer(withGlobals(profiles.command("show <name>").description("show one profile"), { json: true })).action(
    async (name: string, _o, c: Command) => {
      const ctx = cliContext(c);
      const p = await ctx.api.request<ProfileRecord>("GET", `/api/v1/profiles/${encodeURIComponent(name)}`);
      output(ctx, p, () => JSON.stringify(p, null, 2));
    },
  );

  withServer(withGlobals(profiles.command("rm <name>").description("remove a profile (and its assignments)"))).action(
    async (name: string, _o, c: Command) => {
      const ctx = cliContext(c);
      await ctx.api.request("DELETE", `/api/v1/profiles/${encodeURIComponent(name)}`);
      process.stdout.write(`profile ${name} removed\n`);
    },
  );
  return profiles;
}
