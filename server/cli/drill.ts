import type { Command } from "commander";
import { UserError } from "../errors.ts";
import type { DrillBody } from "../http/api-schemas.ts";
import type { DrillSummary } from "../jobs/drill-record.ts";
import type { JobView } from "../jobs/job-views.ts";
import type { JobEvent } from "../store/types.ts";
import { cliContext, output, withGlobals, withServer } from "./common.ts";

const collect = (v: string, prev: string[]) => [...prev, v];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (n: number | null) => (n === null ? "-" : `${n.toFixed(1)} s`);

/** The drill's result in a few lines. */
export function describeDrill(s: DrillSummary): string {
  return [
    `drill ${s.job} of ${s.host}: ${s.passed ? "PASSED" : "FAILED"}${s.reason ? `: ${s.reason}` : ""}`,
    `restore:         ${secs(s.restoreSeconds)} (${(s.bytes / 1024 / 1024).toFixed(0)} MiB)`,
    `boot:            ${secs(s.bootSeconds)}`,
    `time to recover: ${secs(s.recoverSeconds)} (arm → the restored system up)`,
    `accelerator:     ${s.accel ?? "-"}`,
    ...(s.checks ?? []).map((c) => `check ${c.check}: ${c.passed ? "passed" : "FAILED"}${c.detail ? ` (${c.detail})` : ""}`),
  ].join("\n");
}

export function registerDrill(program: Command): Command {
  return withServer(
    withGlobals(
      program
        .command("drill <host>")
        .description(
          "prove HOST can be recovered: restore its chains through the rescue image and its plan into a throwaway QEMU machine " +
            "on the server (a job of kind drill; its own restricted network, thin disks removed afterwards), boot the restored disk " +
            "and wait for its console's login prompt. Prints restore, boot and recover times; exit 1 when the drill fails. One at a time.",
        )
        .option("--at <datestamp>", "restore point (Amanda datestamp YYYYMMDD[hhmmss]); default: the host's profile's, else the newest")
        .option("--ready <regex>", "the restored system is up when its console shows this (e.g. the host's own readiness line); default: config drill.readyPattern")
        .option("--check <check>", "once it is up, also check (repeatable): tcp:PORT answers, ssh:COMMAND exits 0 (as root, with config drill.sshKey); default: the host's profile's --drill-check", collect, [])
        .option("--address <addr/prefix>", "the restored system's own address, which the checks reach (e.g. its static 10.0.5.20/24); default: the profile's, else it takes one by DHCP")
        .option("--no-wait", "print the drill's job and return; `lifeboat jobs log JOB` follows it"),
      { json: true },
    ),
  ).action(async (host: string, o: { at?: string; ready?: string; check: string[]; address?: string; wait: boolean }, c: Command) => {
    const ctx = cliContext(c);
    const body: DrillBody = { ...(o.at ? { at: o.at } : {}), ...(o.ready ? { ready: o.ready } : {}), ...(o.check.length ? { checks: o.check } : {}), ...(o.address ? { address: o.address } : {}) };
    const job = await ctx.api.request<JobView>("POST", `/api/v1/hosts/${encodeURIComponent(host)}/drill`, body);
    if (!o.wait) return output(ctx, job, () => `drill ${job.id} of ${host} started (lifeboat jobs log ${job.id})`);
    if (!ctx.opts.json) process.stderr.write(`drill ${job.id} of ${host}: restoring into a throwaway machine, then booting it (lifeboat jobs log ${job.id})\n`);
    for (;;) {
      const events = await ctx.api.request<JobEvent[]>("GET", `/api/v1/jobs/${encodeURIComponent(job.id)}/events`);
      const result = events.find((e) => e.type === "drill-result");
      if (result) {
        const s = result.data as DrillSummary;
        output(ctx, s, () => describeDrill(s));
        if (!s.passed) throw new UserError(`drill ${job.id} failed`, 1);
        return;
      }
      await sleep(2000);
    }
  });
}
