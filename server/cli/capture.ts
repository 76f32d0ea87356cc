import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { execa } from "execa";
import { UserError } from "../errors.ts";
import { captureScriptPath, layoutFromCapture, parseCapture } from "../layout/layout-capture.ts";
import { describeLayout } from "../layout/layout-text.ts";
import { cliContext, output, withGlobals } from "./common.ts";

export function registerCapture(program: Command): Command {
  const capture = program.command("capture").description("host capture: the capture script and what it sees");

  withGlobals(
    capture
      .command("script")
      .description("print capture.sh (also served at GET /capture.sh); run it on each host from cron")
      .option("--path", "print where the script is instead of its text"),
  ).action((o: { path?: boolean }) => {
    process.stdout.write(o.path ? `${fileURLToPath(captureScriptPath)}\n` : readFileSync(captureScriptPath, "utf8"));
  });

  withGlobals(
    capture
      .command("run")
      .description("run capture.sh on this machine (read-only) and show the layout it found; --json prints the raw capture")
      .option("--devices <list>", "only these whole disks, space-separated (e.g. \"/dev/sda /dev/sdb\")")
      .option("--include-removable", "also removable and USB disks (left out by default)"),
    { json: true },
  ).action(async (o: { devices?: string; includeRemovable?: boolean }, c: Command) => {
    const ctx = cliContext(c);
    const args = [fileURLToPath(captureScriptPath), "--stdout", ...(o.devices ? ["--devices", o.devices] : []), ...(o.includeRemovable ? ["--include-removable"] : [])];
    const r = await execa("sh", args, { reject: false, stdin: "ignore" });
    if (r.exitCode !== 0) throw new UserError(`capture.sh failed (exit ${r.exitCode}): ${r.stderr.trim().split("\n").at(-1) ?? ""}`);
    let layoutText: string;
    let raw: unknown;
    try {
      raw = JSON.parse(r.stdout);
      layoutText = describeLayout(layoutFromCapture(parseCapture(raw)));
    } catch (err) {
      throw new UserError(`capture.sh output: ${(err as Error).message}`);
    }
    output(ctx, raw, () => layoutText);
  });
  return capture;
}
