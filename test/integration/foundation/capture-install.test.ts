/**
 * capture.sh reaches a host as a file, once, checked against the sha256 the server's CLI
 * prints; cron runs that file. The install script `lifeboat capture install` prints is run
 * here with sh against a real server (paths in a temporary directory instead of /usr/local
 * and /etc).
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../server/config/load.ts";
import { createLogger } from "../../../server/log.ts";
import { startServer } from "../../../server/serve.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/tmp.ts";

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

async function installScript(dataDir: string, server: string, dir: string) {
  const r = await lifeboat(["capture", "install", "web1", "--data-dir", dataDir, "--server", server, "--dest", join(dir, "lifeboat-capture"), "--token-file", join(dir, "token"), "--cron-file", join(dir, "cron")]);
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  return r.stdout;
}

describe("lifeboat capture install", () => {
  it("the printed sha256 is the served script's; the install puts that file on the host and cron runs it", async () => {
    const dataDir = tempDir();
    const config = loadConfig({ overrides: { dataDir, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
    const server = await startServer(config, createLogger("silent", { pretty: false }));
    try {
      const served = Buffer.from(await (await fetch(`${server.httpUrl}/capture.sh`)).arrayBuffer());
      const printed = await lifeboat(["capture", "script", "--sha256", "--data-dir", dataDir]);
      expect(printed.stdout).toBe(sha256(served));

      const host = tempDir("lifeboat-host-");
      const script = await installScript(dataDir, server.httpUrl, host);
      expect(script).toContain(`sum=${sha256(served)}`);
      expect(script).not.toMatch(/\|\s*sh\b/);
      const r = await execa("sh", ["-s"], { input: script, reject: false });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain("note: put the host's capture token");
      const dest = join(host, "lifeboat-capture");
      expect(readFileSync(dest).equals(served)).toBe(true);
      expect(statSync(dest).mode & 0o777).toBe(0o755);
      const cron = readFileSync(join(host, "cron"), "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
      expect(cron).toEqual([`17 3 * * * root ${dest} --server ${server.httpUrl} --host web1 --token-file ${join(host, "token")}`]);
      expect(readdirSync(host).sort()).toEqual(["cron", "lifeboat-capture"]);
    } finally {
      await server.stop(100);
    }
  });

  it("a script that is not the server's (a changed copy on the way) is not installed, and cron is left alone", async () => {
    const other = createServer((_req, res) => res.end("#!/bin/sh\necho not the capture script\n"));
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    try {
      const host = tempDir("lifeboat-host-");
      const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
      const r = await execa("sh", ["-s"], { input: await installScript(tempDir(), url, host), reject: false });
      expect(r.exitCode).toBe(1);
      expect(r.stderr.trim()).toMatch(/^capture\.sh from http:\/\/127\.0\.0\.1:\d+\/capture\.sh does not have sha256 [0-9a-f]{64}: nothing installed$/);
      expect(readdirSync(host)).toEqual([]);
      expect(existsSync(join(host, "cron"))).toBe(false);
    } finally {
      other.close();
    }
  });

  it("bad options are one-line errors, exit 2", async () => {
    const dataDir = tempDir();
    for (const [args, msg] of [
      [[], "capture install: give --server URL"],
      [["--server", "http://lb", "--schedule", "17 3 * *"], "--schedule: expected five cron fields"],
      [["--server", "http://lb/%x"], "--server: \"http://lb/%x\" holds % or a newline"],
      [["--server", "http://lb", "--dest", "capture"], "--dest: expected an absolute path on the host"],
    ] as const) {
      const r = await lifeboat(["capture", "install", "web1", "--data-dir", dataDir, ...args]);
      expect([r.exitCode, r.stdout]).toEqual([2, ""]);
      expect(r.stderr).toContain(msg);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });
});
