/** Runs the real `lifeboat serve` inside a namespace of a test LAN and waits for its services. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { ResultPromise } from "execa";
import { lifeboatBin } from "../../helpers/cli.ts";
import type { Lan } from "../../helpers/netns.ts";

export interface NsServer {
  proc: ResultPromise;
  logFile: string;
  log(): string;
  /** Log lines (JSON) so far. */
  lines(): Array<Record<string, unknown> & { msg: string }>;
  stop(): Promise<void>;
}

/**
 * The serve config of a namespace LAN SUBNET (three octets) where Lifeboat is the only DHCP
 * server (full mode, pool .100-.150, no router) on eth0, HTTP on 8080, reading AMANDA
 * configs, with no automatic catalog refresh (the tests refresh through the CLI).
 */
export function fullLanConfig(subnet: string, amanda: Array<{ name: string; configDir: string; vtapeRoot: string; holdingDirs: string[] }>): Record<string, unknown> {
  return {
    listen: { interface: "eth0" },
    http: { port: 8080 },
    dhcp: { mode: "full", pool: { start: `${subnet}.100`, end: `${subnet}.150`, router: "", leaseSeconds: 600 } },
    amanda,
    catalog: { refreshMinutes: 0 },
  };
}

/** Starts `lifeboat serve --config <dataDir>/lifeboat.yaml` in `member`; resolves once every expected service logged its line. */
export async function serveInNs(lan: Lan, member: string, dataDir: string, config: Record<string, unknown>, services: string[]): Promise<NsServer> {
  mkdirSync(dataDir, { recursive: true });
  const cfgFile = join(dataDir, "lifeboat.yaml");
  writeFileSync(cfgFile, stringify({ dataDir, log: { level: "debug" }, ...config }));
  const logFile = join(dataDir, `serve-${Date.now()}.log`);
  const proc = lan.spawn(member, [process.execPath, lifeboatBin, "serve", "--config", cfgFile], { stdout: logFile, stderr: `${logFile}.err` });
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  const lines = () =>
    log()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown> & { msg: string });
  const until = Date.now() + 30_000;
  for (;;) {
    const started = new Set(lines().filter((l) => typeof l.address === "string").map((l) => l.svc));
    if (services.every((s) => started.has(s))) break;
    if (proc.exitCode !== null || Date.now() > until) {
      const err = existsSync(`${logFile}.err`) ? readFileSync(`${logFile}.err`, "utf8") : "";
      throw new Error(`lifeboat serve did not start ${services.join(",")}: ${err}\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    proc,
    logFile,
    log,
    lines,
    stop: async () => {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      await Promise.race([proc, new Promise((r) => setTimeout(r, 5000))]);
    },
  };
}
