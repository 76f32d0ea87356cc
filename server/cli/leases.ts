import type { Command } from "commander";
import { UserError } from "../errors.ts";
import { isMac, normalizeMac } from "../mac.ts";
import { cliContext, output, table, withGlobals } from "./common.ts";

/**
 * `lifeboat leases`: the DHCP leases in the store (every server's, with several servers on one
 * store), read from the store like the other listings: which address each machine got, from
 * which server, in which state, until when.
 */
export function registerLeases(program: Command): Command {
  withGlobals(
    program
      .command("leases")
      .description("the DHCP leases Lifeboat gave (full and reserved modes): address, MAC, state, expiry and the server that gave it")
      .option("--mac <mac>", "only this machine's")
      .addHelpText("after", "\nExamples:\n  lifeboat leases\n  lifeboat leases --mac 52:54:00:12:34:56 --json"),
    { json: true },
  ).action(async (o: { mac?: string }, c: Command) => {
    const ctx = cliContext(c);
    if (o.mac !== undefined && !isMac(o.mac)) throw new UserError(`--mac: expected a MAC address, got ${JSON.stringify(o.mac)}`, 2);
    const mac = o.mac === undefined ? undefined : normalizeMac(o.mac);
    const leases = (await ctx.store().leases.list()).filter((l) => !mac || l.mac === mac).sort((a, b) => a.ip.localeCompare(b.ip, "en", { numeric: true }));
    output(ctx, leases, () => (leases.length ? table(leases.map((l) => ({ ...l, hostname: l.hostname ?? "", server: l.server || "(this server, before names)" })), ["ip", "mac", "state", "expiresAt", "hostname", "server"]) : "no leases"));
  });
  return program;
}
