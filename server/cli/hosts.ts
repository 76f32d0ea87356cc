import type { Command } from "commander";
import { UserError } from "../errors.ts";
import { hashToken, newToken } from "../tokens.ts";
import { hostname } from "node:os";
import { interfaceInfo } from "../dhcp/server.ts";
import { bootBaseUrl } from "../jobs/boot-scripts.ts";
import { previewBoot } from "../jobs/boot-service.ts";
import { normalizeMac } from "../mac.ts";
import type { HostRecord } from "../store/types.ts";
import { cliContext, output, table, withGlobals } from "./common.ts";
import { registerHostLayoutCommands } from "./hosts-layout.ts";

const collect = (v: string, prev: string[]) => [...prev, v];

function hostView(h: HostRecord) {
  return {
    name: h.name,
    macs: h.macs,
    smbiosUuid: h.smbiosUuid,
    amandaConfig: h.amandaConfig,
    dleMap: h.dleMap,
    createdAt: h.createdAt,
  };
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

  withGlobals(
    hosts
      .command("add <name>")
      .description("register a host and print its capture token (shown once)")
      .option("--mac <mac>", "a MAC of the host (repeatable, any common spelling)", collect, [])
      .option("--uuid <uuid>", "SMBIOS UUID")
      .option("--amanda <config>", "Amanda config that backs this host up")
      .option("--dle <disk=mountpoint>", "an Amanda DLE (disk name) and the mount point it restores to (repeatable)", collect, []),
    { json: true },
  ).action(async (name: string, o: { mac: string[]; uuid?: string; amanda?: string; dle: string[] }, c: Command) => {
    const ctx = cliContext(c);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(name))
      throw new UserError(`host name ${JSON.stringify(name)}: expected letters, digits, '.', '_' or '-'`, 2);
    const token = newToken();
    const h = await ctx.store().hosts.add({
      name,
      tokenHash: hashToken(token),
      smbiosUuid: o.uuid ?? null,
      macs: o.mac.map(normalizeMac),
      amandaConfig: o.amanda ?? null,
      dleMap: parseDleMap(o.dle),
    });
    await ctx.store().audit.append({ actor: "cli", action: "host.add", target: `host:${name}`, detail: { macs: h.macs } });
    output(ctx, { ...hostView(h), token }, () => `host ${name} added\ncapture token: ${token}`);
  });

  withGlobals(hosts.command("list").description("list hosts"), { json: true }).action(async (_o, c: Command) => {
    const ctx = cliContext(c);
    const list = (await ctx.store().hosts.list()).map(hostView);
    output(ctx, list, () => table(list.map((h) => ({ ...h, macs: h.macs.join(",") })), ["name", "macs", "amandaConfig", "createdAt"]));
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

  withGlobals(hosts.command("rm <name>").description("remove a host and its layouts")).action(
    async (name: string, _o, c: Command) => {
      const ctx = cliContext(c);
      if (!(await ctx.store().hosts.remove(name))) throw new UserError(`no host named ${name}`, 2);
      await ctx.store().audit.append({ actor: "cli", action: "host.rm", target: `host:${name}`, detail: null });
      process.stdout.write(`host ${name} removed\n`);
    },
  );

  withGlobals(hosts.command("token <name>").description("issue a new capture token for a host (the old one stops working)"), {
    json: true,
  }).action(async (name: string, _o, c: Command) => {
    const ctx = cliContext(c);
    const token = newToken();
    await ctx.store().hosts.update(name, { tokenHash: hashToken(token) });
    await ctx.store().audit.append({ actor: "cli", action: "host.token", target: `host:${name}`, detail: null });
    output(ctx, { name, token }, () => token);
  });
  withGlobals(
    hosts
      .command("boot-script <mac>")
      .description("print the iPXE script this MAC would get at network boot (rescue system if it has an active job, else exit)")
      .option("--uuid <uuid>", "SMBIOS UUID the machine reports (iPXE ${uuid})"),
    { json: true },
  ).action(async (mac: string, o: { uuid?: string }, c: Command) => {
    const ctx = cliContext(c);
    const { listen, http } = ctx.config;
    // Where a booting machine would reach the server this config describes.
    const host = listen.interface ? interfaceInfo(listen.interface).ip : listen.address === "0.0.0.0" ? hostname() : listen.address;
    const view = await previewBoot(ctx.store(), normalizeMac(mac), o.uuid, bootBaseUrl(http.publicUrl, `${host}:${http.port}`));
    output(ctx, view, () => view.script.trimEnd());
  });
  registerHostLayoutCommands(hosts);
  return hosts;
}
