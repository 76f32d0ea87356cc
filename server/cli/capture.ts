import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { execa } from "execa";
import { UserError } from "../errors.ts";
import { captureScriptPath, layoutFromCapture, parseCapture } from "../layout/layout-capture.ts";
import { describeLayout } from "../layout/layout-text.ts";
import { shQuote } from "../plan/steps.ts";
import { cliContext, output, withGlobals } from "./common.ts";

export function registerCapture(program: Command): Command {
  const capture = program.command("capture").description("host capture: the capture script and what it sees");

  withGlobals(
    capture
      .command("script")
      .description("print capture.sh (also served at GET /capture.sh); `lifeboat capture install` puts it on a host")
      .option("--path", "print where the script is instead of its text")
      .option("--sha256", "print the script's sha256 (what a host checks its copy against) instead of its text"),
  ).action((o: { path?: boolean; sha256?: boolean }) => {
    const script = readFileSync(captureScriptPath, "utf8");
    process.stdout.write(o.path ? `${fileURLToPath(captureScriptPath)}\n` : o.sha256 ? `${sha256(script)}\n` : script);
  });

  withGlobals(
    capture
      .command("install")
      .argument("<host>", "the host's name (lifeboat hosts add)")
      .description(
        "print a sh script to run once as root on HOST (e.g. `lifeboat capture install web1 | ssh root@web1 sh`): it downloads capture.sh,\n" +
          "installs it only if its sha256 is this server's, and adds a cron line that runs the local file with the host's token file.\n" +
          "Nothing fetched over the network is ever piped into a root shell.",
      )
      .option("--server <url>", "URL the host reaches Lifeboat at (default: http.publicUrl)")
      .option("--dest <path>", "where capture.sh goes on the host", "/usr/local/sbin/lifeboat-capture")
      .option("--token-file <path>", "the host's capture token (`lifeboat hosts token HOST`), mode 0600 on the host", "/etc/lifeboat/token")
      .option("--cron-file <path>", "the cron.d file written on the host", "/etc/cron.d/lifeboat-capture")
      .option("--schedule <cron>", "when the capture runs (five cron fields)", "17 3 * * *"),
  ).action((host: string, o: InstallOptions, c: Command) => {
    const ctx = cliContext(c);
    const server = o.server ?? ctx.config.http.publicUrl;
    if (!server) throw new UserError("capture install: give --server URL (the address the host reaches Lifeboat at) or set http.publicUrl", 2);
    process.stdout.write(installScript({ ...o, server, host, sha256: sha256(readFileSync(captureScriptPath, "utf8")) }));
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

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

interface InstallOptions {
  server?: string;
  dest: string;
  tokenFile: string;
  cronFile: string;
  schedule: string;
}

/**
 * The host side of `capture install`: download to a temporary file beside the destination,
 * check the sha256, then rename into place and write the cron line (which runs that file).
 * A mismatch leaves nothing installed. Every value is quoted as one sh word; cron reads `%`
 * as a newline, so no value may hold one.
 */
export function installScript(o: Omit<InstallOptions, "server"> & { server: string; host: string; sha256: string }): string {
  const fields = o.schedule.trim().split(/\s+/);
  if (fields.length !== 5) throw new UserError(`--schedule: expected five cron fields (minute hour day month weekday), got ${JSON.stringify(o.schedule)}`, 2);
  for (const [flag, v] of Object.entries({ "--server": o.server, host: o.host, "--dest": o.dest, "--token-file": o.tokenFile, "--cron-file": o.cronFile, "--schedule": o.schedule }))
    if (/[%\n]/.test(v)) throw new UserError(`${flag}: ${JSON.stringify(v)} holds % or a newline, which cron would split`, 2);
  for (const [flag, v] of Object.entries({ "--dest": o.dest, "--token-file": o.tokenFile, "--cron-file": o.cronFile }))
    if (!v.startsWith("/")) throw new UserError(`${flag}: expected an absolute path on the host, got ${JSON.stringify(v)}`, 2);
  const url = `${o.server.replace(/\/+$/, "")}/capture.sh`;
  const run = [o.dest, "--server", o.server.replace(/\/+$/, ""), "--host", o.host, "--token-file", o.tokenFile].map(shQuote).join(" ");
  return `#!/bin/sh
# Installs Lifeboat's capture.sh for host ${o.host} as a local file, checked against the sha256
# the Lifeboat server printed, and a cron line that runs that file (generated by
# \`lifeboat capture install\`). Run once as root; run again after a Lifeboat upgrade.
set -eu
dest=${shQuote(o.dest)}
sum=${o.sha256}
tmp=$(mktemp "$dest.XXXXXX")
trap 'rm -f "$tmp"' EXIT
curl -fsS -o "$tmp" ${shQuote(url)}
if ! echo "$sum  $tmp" | sha256sum -c --status -; then
	echo "capture.sh from "${shQuote(url)}" does not have sha256 $sum: nothing installed" >&2
	exit 1
fi
chmod 0755 "$tmp"
mv -f "$tmp" "$dest"
trap - EXIT
cat >${shQuote(`${o.cronFile}.new`)} <<'LIFEBOAT_CRON'
# Lifeboat capture of ${o.host}: runs the local copy of capture.sh (lifeboat capture install)
${o.schedule.trim()} root ${run}
LIFEBOAT_CRON
mv -f ${shQuote(`${o.cronFile}.new`)} ${shQuote(o.cronFile)}
[ -s ${shQuote(o.tokenFile)} ] || echo "note: put the host's capture token (lifeboat hosts token "${shQuote(o.host)}") in "${shQuote(o.tokenFile)}", mode 0600" >&2
echo "installed $dest (sha256 $sum) and "${shQuote(o.cronFile)}
`;
}
