import { readFileSync } from "node:fs";
import { type Command, Option } from "commander";
import { UserError } from "../errors.ts";
import type { ArmBody, CloneWindowBody, MapBody } from "../http/api-schemas.ts";
import { normalizeMac, normalizeMacPrefix } from "../mac.ts";
import type { CloneWindow } from "../jobs/job-service.ts";
import type { JobView } from "../jobs/job-views.ts";
import type { ArmPowerResult } from "../power/power-service.ts";
import type { JobEvent } from "../store/types.ts";
import { describeMapping } from "../plan/disks.ts";
import { waveWords } from "../power/waves.ts";
import type { EndState } from "../plan/steps.ts";
import { describeRescueNet } from "../plan/cmdline.ts";
import { type CliContext, cliContext, output, parseMappingPairs, planChoices, table, withGlobals, withPlanChoices, withServer } from "./common.ts";
import { formatEvent, watchJob } from "./watch.ts";
import { ONE_TIME_CODE_DEFAULT_HOURS, ONE_TIME_CODE_MAX_HOURS } from "../jobs/boot-policy.ts";

/** MACs from a file: one per line, `#` comments and blank lines ignored. */
function macsFromFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 2);
  }
  return text
    .split("\n")
    .map((l, i) => ({ l: l.replace(/#.*/, "").trim(), n: i + 1 }))
    .filter(({ l }) => l)
    .map(({ l, n }) => {
      try {
        return normalizeMac(l);
      } catch {
        throw new UserError(`${file}:${n}: not a MAC address: ${JSON.stringify(l)}`, 2);
      }
    });
}

/** FIRST-LAST, both MACs, at most 1024 addresses. */
export function macRange(spec: string): string[] {
  const m = /^(.+?)\s*(?:-|\.\.)\s*([0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5})$/.exec(spec);
  if (!m) throw new UserError(`--range ${JSON.stringify(spec)}: expected FIRST-LAST, e.g. 52:54:00:00:01:00-52:54:00:00:01:0f`, 2);
  const toInt = (mac: string) => BigInt(`0x${normalizeMac(mac).replaceAll(":", "")}`);
  const [a, b] = [toInt(m[1]!), toInt(m[2]!)];
  if (b < a || b - a >= 1024n) throw new UserError(`--range ${spec}: expected LAST >= FIRST and at most 1024 addresses`, 2);
  const out: string[] = [];
  for (let x = a; x <= b; x++) out.push(normalizeMac(x.toString(16).padStart(12, "0")));
  return out;
}

type WindowView = CloneWindow & { open: true };

/** Which machines the clone window takes, in words. */
function windowWho(w: CloneWindow): string {
  return w.only.length ? `an unknown machine under ${w.only.join(", ")}` : "any unknown machine";
}

function jobRow(j: JobView) {
  return {
    id: j.id,
    mac: j.mac,
    kind: j.kind,
    profile: j.profile,
    state: j.state,
    progress: j.steps ? `${j.step}/${j.steps}` : "-",
    bytes: j.bytesTotal ? `${Math.round((100 * j.bytesDone) / j.bytesTotal)}%` : "-",
    hostname: j.hostname,
    expiresAt: j.state === "armed" ? j.expiresAt : "",
    power: waveWords(j.powerWave),
    // Several servers on one store: the one serving the machine's boot ("-" before its first boot).
    server: j.server ?? "-",
  };
}

function showJob(j: JobView): string {
  const lines = [
    `job:       ${j.id} (${j.kind})`,
    `machine:   ${j.mac}${j.ip ? ` at ${j.ip}` : ""}`,
    `profile:   ${j.profile}${j.at ? ` restore point ${j.at}` : ""}`,
    `state:     ${j.state}${j.steps ? `, step ${j.step} of ${j.steps}` : ""}`,
    `bytes:     ${j.bytesDone} of ${j.bytesTotal}`,
    `armed by:  ${j.armedBy} at ${j.createdAt}${j.state === "armed" ? `, expires ${j.expiresAt}` : ""}`,

    `served by: ${j.server ? `server ${j.server}` : "no server yet (not booted)"}`,
  ];
  if (j.trustHttpBoot) lines.push("boot:      token to whoever asks for this MAC's script (--trust-http-boot)");
  if (j.hostname) lines.push(`hostname:  ${j.hostname}`);
  if (j.mapping) lines.push(`mapping:   ${describeMapping(j.mapping)}`);
  const choices = [j.options.newUuids && "new UUIDs", j.options.grow && `${j.options.grow} grows`, j.options.endState && `once done: ${j.options.endState}`].filter(Boolean);
  if (choices.length) lines.push(`options:   ${choices.join(", ")}`);
  lines.push(`network:   ${describeRescueNet(j.options.rescueNet)} (the rescue system)`);
  if (j.options.nicMap) lines.push(`NICs:      ${Object.entries(j.options.nicMap).map(([n, m]) => `${n}=${m}`).join(" ")} (after the restore)`);
  if (j.powerWave) {
    const w = j.powerWave;
    lines.push(`power:     ${w.status}, ${w.position} of ${w.of} in ${w.wave}${w.force ? " (--force)" : ""}${w.note ? `: ${w.note}` : ""}`);
  }
  if (j.ssh) lines.push(`remote:    ssh ${j.ssh}`);
  if (j.error) lines.push(`error:     ${j.error}`);
  return lines.join("\n");
}

/**
 * `jobs arm MAC --power`: the plan first (a refused plan stops here, nothing armed, nothing
 * powered), then the server arms and powers the machine through its host's power config. With
 * many MACs (--macs/--range), the first one's plan is shown, all are armed and the server powers
 * them in waves of power.waveSize; the answer comes once the first wave was powered.
 */
async function armAndPower(ctx: CliContext, body: ArmBody): Promise<void> {
  const first = String(body.mac ?? body.macs?.[0]);
  const plan = await ctx.api.raw("POST", "/api/v1/plan-preview", body);
  const script = await plan.text();
  if (!plan.ok) throw new UserError(`${first}: ${(JSON.parse(script) as { message?: string }).message ?? plan.statusText}; nothing armed, nothing powered`);
  if (!ctx.json) process.stdout.write(`# the plan for ${first}${body.macs ? ` (the first of ${body.macs.length})` : ""}\n${script.trimEnd()}\n\n`);
  const jobs = await ctx.api.request<Array<JobView & { power?: ArmPowerResult }>>("POST", "/api/v1/jobs", body);
  if (body.macs) {
    output(ctx, { plan: script, jobs }, () =>
      [
        `${jobs.length} jobs armed, powered in waves (server config power.waveSize) as each powered machine's restore ends:`,
        table(jobs.map(jobRow), ["id", "mac", "hostname", "power"]),
        "follow them with: lifeboat jobs list --active (the power column)",
      ].join("\n"),
    );
    return;
  }
  const job = jobs[0]!;
  const p = job.power!;
  output(ctx, { plan: script, job }, () =>
    [
      `${job.id} armed for ${job.mac} (${job.kind}, profile ${job.profile}), expires ${job.expiresAt}`,
      `power: ${p.host} via ${p.target}: was ${p.before}; ${p.summary}`,
      ...p.notes.map((n) => `note: ${n}`),
    ].join("\n"),
  );
}

/** Arms; `withCode`: and a one-time code for each job, for machines booted from a medium (lifeboat image iso). */
async function armJobs(ctx: CliContext, body: ArmBody, withCode = false): Promise<void> {
  const armed = await ctx.api.request<JobView[]>("POST", "/api/v1/jobs", body);
  const jobs: Array<JobView & { code?: string; codeExpiresAt?: string }> = [];
  for (const j of armed) {
    const c = withCode ? await ctx.api.request<{ code: string; expiresAt: string }>("POST", `/api/v1/jobs/${encodeURIComponent(j.id)}/code`, {}) : undefined;
    jobs.push(c ? { ...j, code: c.code, codeExpiresAt: c.expiresAt } : j);
  }
  output(ctx, jobs, () =>
    jobs.length === 1
      ? `${jobs[0]!.id} armed for ${jobs[0]!.mac} (${jobs[0]!.kind}, profile ${jobs[0]!.profile}), expires ${jobs[0]!.expiresAt}\n` +
        `next network boot of that machine starts it; see the plan first: lifeboat jobs plan ${jobs[0]!.id}` +
        (jobs[0]!.code ? `\nor boot it from a Lifeboat ISO/USB stick and type this one-time code on its console: ${jobs[0]!.code} (valid once, until ${jobs[0]!.codeExpiresAt})` : "")
      : `${jobs.length} jobs armed:\n${table(jobs.map((j) => ({ ...jobRow(j), ...(withCode ? { code: j.code } : {}) })), ["id", "mac", "hostname", "expiresAt", ...(withCode ? ["code"] : [])])}`,
  );
}

export function registerJobs(program: Command): Command {
  const jobs = program.command("jobs").description("recovery and clone jobs: arm, plan, watch, cancel");

  withServer(
    withGlobals(
      withPlanChoices(
        jobs
          .command("arm [mac]")
          .description("arm a recovery (or clone) for a machine: its next network boot runs the plan")
          .option("--profile <name>", "profile to use (default: the MAC's assignment, else the host owning the MAC)")
          .option("--clone [profile]", "clone a profile onto new machines (the profile may be given here)")
          .option("--macs <file>", "arm many machines at once: a file with one MAC per line")
          .option("--range <first-last>", "arm many machines at once: a MAC range")
          .option("--hostname-pattern <pattern>", "clones: hostname with {n} (clone number) or {mac}")
          .option("--at <datestamp>", "restore point, an Amanda datestamp YYYYMMDD[hhmmss]")
          .option("--expires <hours>", "hours until an unused job expires (default from config, 24)")
          .option("--any-unknown <minutes>", "clones: any unknown machine that network-boots in the next MINUTES becomes a clone (off unless given)")
          .option("--only <macs>", "with --any-unknown: only these MACs or MAC prefixes (vendor OUI 00:25:90, a rack's 52:54:00:00:01), comma-separated")
          .option(
            "--power",
            "then power the machine through its host's power config: a one-time network boot (the flag its firmware needs), confirmed off, then on; with --macs/--range, in waves of power.waveSize (config) machines at a time",
          )
          .option("--code", "also a one-time code per job, to type on a machine booted from a Lifeboat ISO or USB stick (lifeboat image iso; see jobs code)")
          .option("--force", "with --power: a machine that is on is powered off and on again (without it, refused; in a wave, its job is cancelled)")
          .option(
            "--trust-http-boot",
            "give the boot token to whoever asks for this MAC's boot script, without an answer from Lifeboat's DHCP (needed with dhcp.mode off; see the README's safety section)",
          )
          .addHelpText(
            "after",
            "\nExamples:\n  lifeboat jobs arm 52:54:00:12:34:56\n  lifeboat jobs arm 52:54:00:12:34:56 --grow /dev/sda2   # a bigger disk: /dev/sda2 takes the rest\n  lifeboat jobs arm 52:54:00:12:34:56 --power   # and power it on through its BMC (hosts power-config)\n  lifeboat jobs arm --clone web --macs new-racks.txt --hostname-pattern 'web-{n}' --new-uuids\n  lifeboat jobs arm --clone web --range 52:54:00:00:01:00-52:54:00:00:01:0f\n  lifeboat jobs arm --clone web --macs rack.txt --power   # powered 8 at a time (power.waveSize)\n  lifeboat jobs arm --clone web --any-unknown 30   # then power on the new machines\n  lifeboat jobs arm --clone web --any-unknown 30 --only 00:25:90,52:54:00:00:01",
          ),
      ),
      { json: true },
    ),
  ).action(async (mac: string | undefined, o: { profile?: string; clone?: string | boolean; macs?: string; range?: string; hostnamePattern?: string; at?: string; expires?: string; anyUnknown?: string; only?: string; trustHttpBoot?: boolean; newUuids?: boolean; grow?: string; endState?: EndState; power?: boolean; force?: boolean; code?: boolean }, c: Command) => {
    const ctx = cliContext(c);
    if (o.force && !o.power) throw new UserError("--force goes with --power", 2);
    if (o.code && (o.power || o.anyUnknown !== undefined)) throw new UserError("--code goes with machines booted from a medium: not with --power or --any-unknown", 2);
    if (o.power && o.anyUnknown !== undefined) throw new UserError("--power goes with a MAC or --macs/--range, not --any-unknown (Lifeboat cannot power machines it does not know)", 2);
    if (o.anyUnknown !== undefined) {
      // The window's clones take their plan choices from the profile (profiles set --new-uuids).
      if (planChoices(o)) throw new UserError("--any-unknown takes the profile's --new-uuids/--grow/--end-state/--rescue-*/--nic-map: set them with lifeboat profiles set", 2);
      const profile = typeof o.clone === "string" ? o.clone : o.profile;
      const minutes = Number(o.anyUnknown);
      if (!profile || mac || o.macs || o.range || o.trustHttpBoot) throw new UserError("--any-unknown goes with --clone PROFILE alone (no MACs, no --trust-http-boot)", 2);
      if (!(minutes > 0)) throw new UserError(`--any-unknown: expected minutes > 0, got ${JSON.stringify(o.anyUnknown)}`, 2);
      const only = o.only?.split(",").map((p) => p.trim()).filter(Boolean).map(normalizeMacPrefix);
      const body: CloneWindowBody = { profile, minutes, hostnamePattern: o.hostnamePattern, only };
      const w = await ctx.api.request<WindowView>("PUT", "/api/v1/clone-window", body);
      output(ctx, w, () => `clone window open until ${w.until}: ${windowWho(w)} that network-boots becomes a clone of ${w.profile}\nclose it early with: lifeboat jobs window --close`);
      return;
    }
    if (o.only !== undefined) throw new UserError("--only goes with --any-unknown", 2);
    const many = [...(o.macs ? macsFromFile(o.macs) : []), ...(o.range ? macRange(o.range) : [])];
    if (mac && many.length) throw new UserError("give a MAC, or --macs/--range, not both", 2);
    if (!mac && !many.length) throw new UserError("which machine? give a MAC, or --macs FILE / --range FIRST-LAST", 2);
    const profile = typeof o.clone === "string" ? o.clone : o.profile;
    const expiresHours = o.expires === undefined ? undefined : Number(o.expires);
    if (expiresHours !== undefined && !(expiresHours > 0)) throw new UserError(`--expires: expected hours > 0, got ${JSON.stringify(o.expires)}`, 2);
    const arm = o.power ? armAndPower : (x: CliContext, b: ArmBody) => armJobs(x, b, o.code === true);
    await arm(ctx, {
      ...(mac ? { mac } : { macs: many }),
      kind: o.clone ? "clone" : "recover",
      profile,
      at: o.at,
      expiresHours,
      hostnamePattern: o.hostnamePattern,
      options: planChoices(o),
      trustHttpBoot: o.trustHttpBoot,
      ...(o.power ? { power: { force: o.force === true } } : {}),
    });
  });

  withServer(
    withGlobals(
      jobs
        .command("window")
        .description("show the clone window (jobs arm --clone PROFILE --any-unknown MINUTES opens it), or close it")
        .option("--close", "close it now"),
      { json: true },
    ),
  ).action(async (o: { close?: boolean }, c: Command) => {
    const ctx = cliContext(c);
    const w = await ctx.api.request<WindowView | { open: false }>(o.close ? "DELETE" : "GET", "/api/v1/clone-window");
    output(ctx, w, () => (w.open ? `open until ${w.until}: ${windowWho(w)} becomes a clone of ${w.profile} (${w.armed} so far)` : "closed"));
  });

  withServer(
    withGlobals(
      jobs
        .command("list")
        .description("list jobs, newest first")
        .option("--active", "only jobs that are armed or under way")
        .addOption(new Option("--state <states>", "comma-separated states (armed,booted,planning,running,stalled,done,failed,cancelled,expired)"))
        .option("--mac <mac>", "only this machine's"),
      { json: true },
    ),
  ).action(async (o: { active?: boolean; state?: string; mac?: string }, c: Command) => {
    const ctx = cliContext(c);
    const q = new URLSearchParams();
    if (o.active) q.set("active", "true");
    if (o.state) q.set("state", o.state);
    if (o.mac) q.set("mac", normalizeMac(o.mac));
    const list = await ctx.api.request<JobView[]>("GET", `/api/v1/jobs?${q}`);
    output(ctx, list, () => table(list.map(jobRow), ["id", "mac", "kind", "profile", "state", "progress", "bytes", "hostname", "power", "server"]));
  });

  withServer(withGlobals(jobs.command("show <job>").description("show one job"), { json: true })).action(async (id: string, _o, c: Command) => {
    const ctx = cliContext(c);
    const j = await ctx.api.request<JobView>("GET", `/api/v1/jobs/${encodeURIComponent(id)}`);
    output(ctx, j, () => showJob(j));
  });

  withServer(withGlobals(jobs.command("cancel <job>").description("cancel an active job (the machine's next boot goes to local disk)"), { json: true })).action(
    async (id: string, _o, c: Command) => {
      const ctx = cliContext(c);
      const j = await ctx.api.request<JobView>("POST", `/api/v1/jobs/${encodeURIComponent(id)}/cancel`);
      output(ctx, j, () => `${j.id} cancelled`);
    },
  );

  withServer(
    withGlobals(
      jobs
        .command("code <job>")
        .description(
          "a one-time code for the job's machine booting from an ISO or USB stick (`lifeboat image iso`): its console asks for it;\n" +
            "it boots one machine once, then is spent; a new code ends the previous one; kept in the server's memory only (a restart ends it)",
        )
        .option("--valid-hours <n>", `hours the code may be used (default ${ONE_TIME_CODE_DEFAULT_HOURS}, at most ${ONE_TIME_CODE_MAX_HOURS})`),
      { json: true },
    ),
  ).action(async (id: string, o: { validHours?: string }, c: Command) => {
    const ctx = cliContext(c);
    const validHours = o.validHours === undefined ? undefined : Number(o.validHours);
    if (validHours !== undefined && !(validHours > 0 && validHours <= ONE_TIME_CODE_MAX_HOURS)) throw new UserError(`--valid-hours: a number of hours above 0 and at most ${ONE_TIME_CODE_MAX_HOURS}, got ${o.validHours}`, 2);
    const r = await ctx.api.request<{ code: string; job: string; expiresAt: string }>("POST", `/api/v1/jobs/${encodeURIComponent(id)}/code`, validHours === undefined ? {} : { validHours });
    output(ctx, r, () => `${r.code}   (job ${r.job}; type it on the machine's console; valid once, until ${r.expiresAt})`);
  });

  withServer(withGlobals(jobs.command("log <job>").description("the job's history: every transition, step and the agent's log"), { json: true })).action(
    async (id: string, _o, c: Command) => {
      const ctx = cliContext(c);
      const events = await ctx.api.request<JobEvent[]>("GET", `/api/v1/jobs/${encodeURIComponent(id)}/events`);
      output(ctx, events, () => events.map((e) => `${e.at}  ${formatEvent(e)}`).join("\n"));
    },
  );

  withServer(
    withGlobals(
      jobs
        .command("plan <job>")
        .description("print the job's plan: exactly what will happen to which disk (a dry run before the machine boots)"),
    ),
  ).action(async (id: string, _o, c: Command) => {
    const ctx = cliContext(c);
    const res = await ctx.api.raw("GET", `/api/v1/jobs/${encodeURIComponent(id)}/plan`);
    const text = await res.text();
    if (!res.ok) throw new UserError(`${id}: ${(JSON.parse(text) as { message?: string }).message ?? res.statusText}`);
    process.stdout.write(text);
  });

  withServer(
    withGlobals(
      jobs
        .command("map <job> <pairs...>")
        .description(
          "approve an explicit disk mapping, captured=target: needed on new hardware or when identity is weak or ambiguous. " +
            "TARGET is a disk the machine reported (vdb, as `jobs plan`/`jobs show` list them), or before it booted serial:X, wwn:X or by-id:X; " +
            "none leaves the captured disk out. Kept as the target's identity: if the machine's disks change, map again",
        ),
      { json: true },
    ),
  ).action(async (id: string, pairs: string[], _o, c: Command) => {
    const ctx = cliContext(c);
    const body: MapBody = { mapping: parseMappingPairs(pairs, "map") };
    const j = await ctx.api.request<JobView>("POST", `/api/v1/jobs/${encodeURIComponent(id)}/map`, body);
    output(ctx, j, () => `${j.id} mapping: ${describeMapping(j.mapping)}`);
  });

  withServer(
    withGlobals(
      jobs
        .command("key <job> <luks-uuid>")
        .description("supply the passphrase of a captured LUKS container for this job (read from --file, else stdin)")
        .option("--file <file>", "file holding the passphrase (its first line)"),
    ),
  ).action(async (id: string, uuid: string, o: { file?: string }, c: Command) => {
    const ctx = cliContext(c);
    let text: string;
    try {
      text = readFileSync(o.file ?? 0, "utf8");
    } catch (err) {
      throw new UserError(`${o.file ?? "stdin"}: cannot read the passphrase (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 2);
    }
    const passphrase = text.split("\n")[0] ?? "";
    if (!passphrase) throw new UserError(`${o.file ?? "stdin"}: the passphrase is empty`, 2);
    await ctx.api.request("PUT", `/api/v1/jobs/${encodeURIComponent(id)}/keys/${encodeURIComponent(uuid)}`, { passphrase });
    process.stdout.write(`key for LUKS ${uuid} stored with ${id} (dropped when the job ends)\n`);
  });

  withServer(
    withGlobals(
      jobs
        .command("watch <job>")
        .description("follow a job live: a progress bar for the plan and one per stream; exits when it ends (0 done, 1 otherwise)"),
      { json: true },
    ),
  ).action(async (id: string, _o, c: Command) => {
    const ctx = cliContext(c);
    const final = await watchJob(ctx, id);
    if (final.state !== "done") process.exitCode = 1;
  });
  return jobs;
}
