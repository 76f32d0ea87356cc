import cliProgress from "cli-progress";
import { UserError } from "../errors.ts";
import type { AgentEvent } from "../plan/agent-api.ts";
import { TERMINAL_STATES } from "../jobs/job-state.ts";
import type { JobView } from "../jobs/job-views.ts";
import type { JobEvent, JobState } from "../store/types.ts";
import type { CliContext } from "./common.ts";

/** One line for a job event, as `jobs log` and `jobs watch` print it. */
export function formatEvent(e: JobEvent): string {
  const d = (e.data ?? {}) as Record<string, unknown>;
  switch (e.type) {
    case "step-start":
      return `step ${String(d.step)}/${String(d.of)} ${String(d.name)}: started`;
    case "step-end":
      return `step ${String(d.step)}/${String(d.of)} ${String(d.name)}: ${d.skipped ? "skipped (already done)" : `exit ${String(d.exitStatus)}`}${d.output ? `\n${String(d.output).replace(/^/gm, "    ")}` : ""}`;
    case "stream-done":
      return `stream ${String(d.dumpId)}: ${String(d.bytes)} bytes${d.sha256 ? ` sha256 ${String(d.sha256)}` : ""}`;
    case "log":
      return String(d.message);
    case "agent-log":
      return `agent log:\n${String(d.text).replace(/^/gm, "    ")}`;
    default:
      return `${e.type}${Object.keys(d).length ? ` ${JSON.stringify(d)}` : ""}`;
  }
}

interface LiveMessage {
  job: JobView;
  event: JobEvent | null;
}

/** Reads a server-sent-events body and yields each `data:` payload. */
async function* sseMessages(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = block
        .split("\n")
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n");
      if (data) yield data;
    }
  }
}

const mib = (n: number) => (n / 1048576).toFixed(1);

/**
 * Follows one job until it ends. On a terminal: a bar for the plan's steps and one per
 * dump stream, like a download manager, with event lines above them. With --json or when
 * stdout is not a terminal: one JSON line (or text line) per change.
 */
export async function watchJob(ctx: CliContext, id: string): Promise<JobView> {
  const res = await ctx.api.raw("GET", `/api/v1/jobs/${encodeURIComponent(id)}/live`);
  if (!res.ok || !res.body) {
    const text = await res.text();
    throw new UserError(`${id}: ${(JSON.parse(text || "{}") as { message?: string }).message ?? res.statusText}`);
  }
  const tty = process.stdout.isTTY === true && !ctx.json;
  const bars = tty
    ? new cliProgress.MultiBar(
        { format: " {label} |{bar}| {percentage}% {detail}", hideCursor: true, clearOnComplete: false, stopOnComplete: false },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const planBar = bars?.create(1, 0, { label: "plan    ", detail: "waiting for the machine to boot" });
  const streamBars = new Map<string, cliProgress.SingleBar>();
  const say = (line: string) => (bars ? bars.log(`${line}\n`) : process.stdout.write(`${line}\n`));
  let last: JobView | undefined;
  let lastState: JobState | undefined;
  try {
    for await (const data of sseMessages(res.body)) {
      const msg = JSON.parse(data) as LiveMessage;
      last = msg.job;
      if (ctx.json) {
        process.stdout.write(`${data}\n`);
      } else {
        if (msg.job.state !== lastState) say(`${new Date().toISOString()}  ${msg.job.id} ${msg.job.state}${msg.job.error ? `: ${msg.job.error}` : ""}`);
        if (msg.event && msg.event.type !== "stream") say(`${msg.event.at}  ${formatEvent(msg.event)}`);
        planBar?.setTotal(Math.max(msg.job.steps, 1));
        planBar?.update(msg.job.step, { detail: `step ${msg.job.step} of ${msg.job.steps} · ${msg.job.state}` });
        if (msg.event?.type === "stream" && bars) {
          const e = msg.event.data as Extract<AgentEvent, { type: "stream" }>;
          let bar = streamBars.get(e.dumpId);
          if (!bar) {
            bar = bars.create(e.totalBytes ?? e.bytes, 0, { label: e.dumpId.slice(0, 8).padEnd(8), detail: "" });
            streamBars.set(e.dumpId, bar);
          }
          bar.setTotal(e.totalBytes ?? Math.max(e.bytes, 1));
          bar.update(e.bytes, { detail: `${mib(e.bytes)} of ${e.totalBytes === null ? "?" : mib(e.totalBytes)} MiB` });
        }
      }
      lastState = msg.job.state;
      if (TERMINAL_STATES.includes(msg.job.state)) break;
    }
  } finally {
    bars?.stop();
    await res.body.cancel().catch(() => undefined);
  }
  if (!last) throw new UserError(`${id}: the server closed the stream before sending anything`);
  return last;
}
