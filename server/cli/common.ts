import { readFileSync, statSync } from "node:fs";
import { type Command, Option } from "commander";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { readAdminToken } from "../http/auth.ts";
import { createLogger, type Logger } from "../log.ts";
import { openStore } from "../store/open.ts";
import type { PlanChoices, Store } from "../store/types.ts";
import { END_STATES, type EndState } from "../plan/steps.ts";
import { BOND_MODES, type BondMode, type RescueNet } from "../plan/cmdline.ts";

export interface GlobalOptions {
  config?: string;
  dataDir?: string;
  json?: boolean;
  logLevel?: Config["log"]["level"];
  server?: string;
}

/** Adds the options every subcommand takes. `json` only where the command prints data. */
export function withGlobals(cmd: Command, opts: { json?: boolean } = {}): Command {
  cmd
    .option("--config <file>", "config file (default: $LIFEBOAT_CONFIG or the embedded config/lifeboat.yaml)")
    .option("--data-dir <dir>", "store, tokens, images and caches (default /var/lib/lifeboat as root)")
    .addOption(
      new Option("--log-level <level>", "log level").choices(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
    );
  if (opts.json) cmd.option("--json", "print JSON for scripts instead of a table");
  return cmd;
}

/** Adds --server for commands that talk to a running Lifeboat. */
export function withServer(cmd: Command): Command {
  return cmd.option("--server <url>", "Lifeboat server URL (default: $LIFEBOAT_SERVER or http://127.0.0.1:<http.port>)");
}

/** Adds the plan builder's choices a profile or a job takes (api-schemas.ts: planChoicesSchema). */
export function withPlanChoices(cmd: Command): Command {
  return cmd
    .option("--new-uuids", "new UUIDs for every partition table, partition, filesystem and swap, fstab/crypttab rewritten to match (clones beside their template)")
    .option("--grow <partition>", "captured partition that takes the rest of a bigger disk, e.g. /dev/sda2 (default: the last resizable one)")
    .addOption(
      new Option("--end-state <state>", "once the job is done: reboot into the restored system, poweroff (cold spare, drill) or hold in the rescue system for remote help (default: reboot)").choices(
        END_STATES,
      ),
    )
    .option("--rescue-ip <address/prefix>", "the rescue system's static address, e.g. 10.0.5.20/24 (default: DHCP; README \"Networks\")")
    .option("--rescue-gateway <ip>", "with --rescue-ip: the default gateway")
    .option("--rescue-dns <ip>", "with --rescue-ip: a DNS server, repeatable", (v: string, prev: string[] = []) => [...prev, v])
    .option("--rescue-vlan <id>", "the rescue system's network on this VLAN (1-4094), tagged on the boot NIC or the bond")
    .option("--rescue-bond <mac,mac…>", "the rescue system's network on a bond of the NICs with these MACs")
    .addOption(new Option("--rescue-bond-mode <mode>", "with --rescue-bond: the bonding mode (default active-backup)").choices(BOND_MODES))
    .option("--rescue-server <url>", "the URL the rescue system reaches Lifeboat at, when its HTTP is on another network than the boot's, e.g. http://10.0.20.1:8080 on a tagged VLAN (default: the URL the boot reached)")
    .option(
      "--nic-map <name=mac>",
      "after the restore: the new machine's NIC (MAC) that takes the captured NIC NAME's name and configuration, repeatable (default: by MAC, then by order)",
      (v: string, prev: string[] = []) => [...prev, v],
    );
}

/** The rescue network options of withPlanChoices, as given. */
export interface RescueNetOptions {
  rescueIp?: string;
  rescueGateway?: string;
  rescueDns?: string[];
  rescueVlan?: string;
  rescueBond?: string;
  rescueBondMode?: BondMode;
  rescueServer?: string;
}

/** The rescue network the options give, or undefined when none was given (the server's schema checks the values). */
function rescueNetChoice(o: RescueNetOptions): RescueNet | undefined {
  if (o.rescueBondMode && !o.rescueBond) throw new UserError("--rescue-bond-mode goes with --rescue-bond MAC,MAC", 2);
  let vlan: number | undefined;
  if (o.rescueVlan !== undefined) {
    vlan = Number(o.rescueVlan);
    if (!/^\d+$/.test(o.rescueVlan) || vlan < 1 || vlan > 4094) throw new UserError(`--rescue-vlan: expected a VLAN id 1-4094, got ${JSON.stringify(o.rescueVlan)}`, 2);
  }
  const net: RescueNet = {
    ...(o.rescueBond ? { bond: { mode: o.rescueBondMode ?? "active-backup", macs: o.rescueBond.split(",").map((m) => m.trim()) } } : {}),
    ...(vlan !== undefined ? { vlan } : {}),
    ...(o.rescueIp ? { address: o.rescueIp } : {}),
    ...(o.rescueGateway ? { gateway: o.rescueGateway } : {}),
    ...(o.rescueDns?.length ? { dns: o.rescueDns } : {}),
    ...(o.rescueServer ? { server: o.rescueServer } : {}),
  };
  return Object.keys(net).length ? net : undefined;
}

/** The choices given on the command line; those not given are left to the profile (or the default). */
export function planChoices(o: { newUuids?: boolean; grow?: string; endState?: EndState; nicMap?: string[] } & RescueNetOptions): PlanChoices | undefined {
  const rescueNet = rescueNetChoice(o);
  const nicPair = (p: string): [string, string] => {
    const at = p.indexOf("=");
    if (at < 1) throw new UserError(`--nic-map: expected NAME=MAC, got ${JSON.stringify(p)}`, 2);
    return [p.slice(0, at), p.slice(at + 1)];
  };
  const nicMap = o.nicMap?.length ? Object.fromEntries(o.nicMap.map(nicPair)) : undefined;
  const choices: PlanChoices = {
    ...(o.newUuids ? { newUuids: true } : {}),
    ...(o.grow !== undefined ? { grow: o.grow } : {}),
    ...(o.endState !== undefined ? { endState: o.endState } : {}),
    ...(rescueNet ? { rescueNet } : {}),
    ...(nicMap ? { nicMap } : {}),
  };
  return Object.keys(choices).length ? choices : undefined;
}

export interface CliContext {
  config: Config;
  opts: GlobalOptions;
  /** Logs go to stderr so stdout stays clean for data. */
  log: Logger;
  json: boolean;
  store(): Store;
  api: ApiClient;
}

export function cliContext(cmd: Command): CliContext {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const config = loadConfig({ file: opts.config, overrides: { dataDir: opts.dataDir, logLevel: opts.logLevel } });
  const log = createLogger(opts.logLevel ?? (config.log.level === "info" ? "warn" : config.log.level), {
    pretty: process.stderr.isTTY === true,
    destination: 2,
  });
  let store: Store | undefined;
  return {
    config,
    opts,
    log,
    json: opts.json === true,
    store: () => {
      store ??= openStore(config);
      return store;
    },
    api: new ApiClient(
      opts.server || process.env.LIFEBOAT_SERVER || `http://127.0.0.1:${config.http.port}`,
      () => readAdminToken(config.adminTokenFile),
    ),
  };
}

/** A thin client for the REST API of a running server, with the admin token from the data dir. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: () => string,
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.decode<T>(method, path, await this.raw(method, path, body));
  }

  private async decode<T>(method: string, path: string, res: Response): Promise<T> {
    const text = await res.text();
    const data: unknown = text ? JSON.parse(text) : undefined;
    if (!res.ok) {
      const msg = (data as { message?: string } | undefined)?.message ?? res.statusText;
      // The server refused what we sent (exit 2, like any bad input) or failed itself (exit 1).
      throw new UserError(`${method} ${path}: ${res.status} ${msg}`, res.status < 500 && res.status !== 401 ? 2 : 1);
    }
    return data as T;
  }

  async raw(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token()}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    try {
      return await fetch(new URL(path, this.baseUrl), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new UserError(
        `cannot reach Lifeboat at ${this.baseUrl} (${(err as { cause?: { code?: string; message?: string } }).cause?.code ?? (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message}); is \`lifeboat serve\` running? (--server URL)`,
      );
    }
  }
}

/** Prints data as JSON, or as the human rendering. */
export function output(ctx: Pick<CliContext, "json">, data: unknown, human: () => string): void {
  process.stdout.write(ctx.json ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`);
}

/** A plain text table: a header row and aligned columns. */
export function table(rows: Array<Record<string, unknown>>, columns: string[]): string {
  if (rows.length === 0) return "(none)";
  const cell = (v: unknown) => (v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join("\n");
}

/**
 * CAPTURED=TARGET pairs (repeatable --map, or `jobs map` arguments) as a record; the target
 * is a kernel name, serial:X, wwn:X, by-id:X or none. A malformed pair is a one-line error.
 */
export function parseMappingPairs(pairs: string[], what: string): Record<string, string> {
  const mapping: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf("=");
    if (i <= 0 || i === p.length - 1) throw new UserError(`${what} ${JSON.stringify(p)}: expected CAPTURED=TARGET, e.g. sda=vdb, sda=serial:S3Z1NB0K or sdb=none`, 2);
    mapping[p.slice(0, i)] = p.slice(i + 1);
  }
  return mapping;
}

/** A secret from a file only its owner may read (mode 0600): never from the command line, where `ps` and shell history would show it. */
export function readPrivateFile(file: string, what: string): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode & 0o777;
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`${file}: cannot read the ${what} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 2);
  }
  if (mode & 0o077) throw new UserError(`${file}: readable by others (mode ${mode.toString(8).padStart(4, "0")}): chmod 600 ${file}`, 2);
  return text;
}
