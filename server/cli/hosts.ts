import type { Command } from "commander";
import { UserError } from "../errors.ts";
import { bootHost } from "../netif.ts";
import { SCRIPT_FORMATS, type ScriptFormat, bootBaseUrl } from "../jobs/boot-scripts.ts";
import { previewBoot } from "../jobs/boot-service.ts";
import { normalizeMac } from "../mac.ts";
import { type HostBody, hostView } from "../http/api-schemas.ts";
import { cliContext, output, table, withGlobals, withServer } from "./common.ts";
import { registerHostLayoutCommands } from "./hosts-layout.ts";
import { type Recoverability, hostsRecoverability } from "../jobs/recoverability.ts";
import { registerPowerCommands } from "./power.ts";

const collect = (v: string, prev: string[]) => [...prev, v];

/** "3 d", "5 h", "12 min": how old, at a glance. */
function age(seconds: number): string {
  if (seconds >= 86_400) return `${Math.floor(seconds / 86_400)} d`;
  if (seconds >= 3600) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 60)} min`;
}

function drillCell(d: Recoverability["lastDrill"]): string {
  if (!d) return "never";
  return `${d.passed ? "passed" : "FAILED"} ${age(d.ageSeconds)} ago${d.passed && d.recoverSeconds !== null ? `, ${Math.round(d.recoverSeconds)} s to recover` : ""}`;
}

/** `DISK=MOUNTPOINT` pairs; the disk name may itself contain `=`, so split at the last one. */
function parseDleMap(pairs: string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.lastIndexOf("=");
    if (i <= 0 || !p.slice(i + 1).startsWith("/"))
      throw new UserError(`--dle ${JSON.stringify(p)}: expected DISK=MOUNTPOINT, e.g. /home=/home or "Lab Docs=/srv/docs"`, 2);
    map[p.slice(0, i)] = p.slice(i + 1);
  }
  return map;
}

export function registerHosts(program: Command): Command {
  const hosts = program.command("hosts").description("protected hosts: MACs, capture tokens, layouts");

  withServer(
    withGlobals(
      hosts
        .command("add <name>")
        .description("register a host and print its capture token (shown once)")
        .option("--mac <mac>", "a MAC of the host (repeatable, any common spelling)", collect, [])
        .option("--uuid <uuid>", "SMBIOS UUID")
        .option("--amanda <config>", "Amanda config that backs this host up")
        .option("--dle <disk=mountpoint>", "an Amanda DLE (disk name) and the mount point it restores to (repeatable)", collect, []),
      { json: true },
    ),
  ).action(async (name: string, o: { mac: string[]; uuid?: string; amanda?: string; dle: string[] }, c: Command) => {
    const ctx = cliContext(c);
    const body: HostBody = { name, macs: o.mac, smbiosUuid: o.uuid ?? null, amandaConfig: o.amanda ?? null, dleMap: parseDleMap(o.dle) };
    const h = await ctx.api.request<ReturnType<typeof hostView> & { token: string }>("POST", "/api/v1/hosts", body);
    output(ctx, h, () => `host ${h.name} added\ncapture token: ${h.token}`);
  });

  withGlobals(
    hosts
      .command("list")
      .description(
        "list hosts, each with whether it can be recovered right now and, if not, why (layout captured and how old, every DLE's chain complete, rescue image built, last drill)",
      ),
    { json: true },
  ).action(async (_o, c: Command) => {
    const ctx = cliContext(c);
    const all = await hostsRecoverability(ctx.store(), { dataDir: ctx.config.dataDir, layoutMaxAgeDays: ctx.config.recoverability.layoutMaxAgeDays });
    const list = all.map(({ host, recoverability }) => ({ ...hostView(host), recoverability }));
    output(ctx, list, () =>
      table(
        list.map((h) => ({
          name: h.name,
          macs: h.macs.join(","),
          amandaConfig: h.amandaConfig ?? "",
          layout: h.recoverability.layout ? `v${h.recoverability.layout.version}, ${age(h.recoverability.layout.ageSeconds)} old` : "none",
          lastDrill: drillCell(h.recoverability.lastDrill),
          recoverable: h.recoverability.recoverable ? "yes" : `NO: ${h.recoverability.reasons.join("; ")}`,
        })),
        ["name", "macs", "amandaConfig", "layout", "lastDrill", "recoverable"],
      ),
    );
  });

  withGlobals(hosts.command("show <name>").description("show one host"), { json: true }).action(
    async (name: string, _o, c: Command) => {
      const ctx = cliContext(c);
      const h = await ctx.store().hosts.get(name);
      if (!h) throw new UserError(`no host named ${name}`, 2);
      const versions = await ctx.store().layouts.versions(name);
      const view = { ...hostView(h), layouts: versions };
      output(ctx, view, () =>
        [
          `name:     ${h.name}`,
          `macs:     ${h.macs.join(", ") || "-"}`,
          `uuid:     ${h.smbiosUuid ?? "-"}`,
          `amanda:   ${h.amandaConfig ?? "-"}`,
          `layouts:  ${versions.length ? versions.map((v) => `v${v.version} (${v.capturedAt})`).join(", ") : "none captured yet"}`,
        ].join("\n"),
      );
    },
  );

  withServer(withGlobals(hosts.command("rm <name>").description("remove a host and its layouts"))).action(async (name: string, _o, c: Command) => {
    const ctx = cliContext(c);
    await ctx.api.request("DELETE", `/api/v1/hosts/${encodeURIComponent(name)}`);
    process.stdout.write(`host ${name} removed\n`);
  });

  withServer(
    withGlobals(hosts.command("token <name>").description("issue a new capture token for a host (the old one stops working)"), { json: true }),
  ).action(async (name: string, _o, c: Command) => {
    const ctx = cliContext(c);
    const t = await ctx.api.request<{ name: string; token: string }>("POST", `/api/v1/hosts/${encodeURIComponent(name)}/token`);
    output(ctx, t, () => t.token);
  });

  withGlobals(
    hosts
      .command("boot-script <mac>")
      .description(
        "print the script this MAC would get at network boot (rescue system if it has an active job, else back to its disk):\n" +
          "iPXE's, or with --format grub the configuration the signed GRUB reads (shim chain, dhcp.uefiLoader shim)",
      )
      .option("--uuid <uuid>", "SMBIOS UUID the machine reports (iPXE ${uuid})")
      .option("--format <format>", `${SCRIPT_FORMATS.join(" or ")}`, "ipxe"),
    { json: true },
  ).action(async (mac: string, o: { uuid?: string; format: string }, c: Command) => {
    const ctx = cliContext(c);
    const { listen, http } = ctx.config;
    if (!(SCRIPT_FORMATS as readonly string[]).includes(o.format)) throw new UserError(`--format: expected ${SCRIPT_FORMATS.join(" or ")}, not ${JSON.stringify(o.format)}`, 2);
    // Where a booting machine would reach the server this config describes.
    const view = await previewBoot(ctx.store(), normalizeMac(mac), o.uuid, bootBaseUrl(http.publicUrl, `${bootHost(listen)}:${http.port}`), o.format as ScriptFormat);
    output(ctx, view, () => view.script.trimEnd());
  });
  registerHostLayoutCommands(hosts);
  registerPowerCommands(hosts);
  return hosts;
}
