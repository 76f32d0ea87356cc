import type { Command } from "commander";
import type { AssignBody } from "../http/api-schemas.ts";
import { cliContext, output, table, withGlobals, withServer } from "./common.ts";

/** `lifeboat hosts assign|unassign|assignments`: MAC → profile, through the running server. */
export function registerAssign(hosts: Command): void {
  withServer(
    withGlobals(
      hosts
        .command("assign <mac> <profile>")
        .description("assign a profile to a MAC: what that machine becomes when a job is armed for it"),
      { json: true },
    ),
  ).action(async (mac: string, profile: string, _o, c: Command) => {
    const ctx = cliContext(c);
    const body: AssignBody = { mac, profile };
    const r = await ctx.api.request<{ mac: string; profile: string }>("POST", "/api/v1/assignments", body);
    output(ctx, r, () => `${r.mac} → ${r.profile}`);
  });
  withServer(withGlobals(hosts.command("unassign <mac>").description("remove a MAC's assignment"))).action(
    async (mac: string, _o, c: Command) => {
      const ctx = cliContext(c);
      const r = await ctx.api.request<{ removed: string }>("DELETE", `/api/v1/assignments/${encodeURIComponent(mac)}`);
      process.stdout.write(`${r.removed} unassigned\n`);
    },
  );
  withServer(withGlobals(hosts.command("assignments").description("list MAC → profile assignments"), { json: true })).action(
    async (_o, c: Command) => {
      const ctx = cliContext(c);
      const list = await ctx.api.request<Array<Record<string, unknown>>>("GET", "/api/v1/assignments");
      output(ctx, list, () => table(list, ["mac", "profile", "createdAt"]));
    },
  );
}
