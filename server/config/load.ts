import { readFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { UserError } from "../errors.ts";
import { type Config, type DhcpMode, configSchema } from "./schema.ts";

/** The embedded default, shipped in the repository. */
export const defaultConfigPath = resolve(dirname(fileURLToPath(import.meta.url)), "../../config/lifeboat.yaml");

export function configError(file: string, key: string, what: string): UserError {
  return new UserError(`${file}: ${key ? `${key}: ` : ""}${what}`, 2);
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "a list";
  if (value === null) return "null";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

function valueAt(doc: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let cur: unknown = doc;
  for (const k of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

/** Turns the first zod issue into `key.path: expected X, got Y`. */
export function formatIssue(issue: z.core.$ZodIssue, doc: unknown): { key: string; what: string } {
  const key = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : String(p))).join(".").replace(/\.\[/g, "[");
  const got = describe(valueAt(doc, issue.path));
  switch (issue.code) {
    case "invalid_value":
      return { key, what: `expected ${issue.values.map((v) => JSON.stringify(v)).join(" | ")}, got ${got}` };
    case "invalid_type":
      return { key, what: `expected ${issue.expected}, got ${got}` };
    case "unrecognized_keys":
      return {
        key,
        what: `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`,
      };
    case "too_small":
      return { key, what: `expected at least ${String(issue.minimum)}, got ${got}` };
    case "too_big":
      return { key, what: `expected at most ${String(issue.maximum)}, got ${got}` };
    case "invalid_format":
      return { key, what: `expected ${issue.format === "ipv4" ? "an IPv4 address" : `a ${issue.format}`}, got ${got}` };
    case "invalid_union": {
      // Our unions are "empty or <format>": report the format branch.
      const inner = issue.errors.flat().find((i) => i.code === "invalid_format");
      if (inner) return formatIssue({ ...inner, path: issue.path } as z.core.$ZodIssue, doc);
      return { key, what: `${issue.message}, got ${got}` };
    }
    default:
      return { key, what: `${issue.message}, got ${got}` };
  }
}

/** Parses YAML text into a typed config, or throws one UserError naming file, key and expectation. */
export function parseConfig(text: string, file: string): Config {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0];
    const what = e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    throw configError(file, "", `invalid YAML${line ? ` at line ${line.line}, column ${line.col}` : ""}: ${what}`);
  }
  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw configError(file, "", `expected a mapping at the top, got ${describe(raw)}`);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const { key, what } = formatIssue(parsed.error.issues[0]!, raw);
    throw configError(file, key, what);
  }
  return { ...parsed.data, source: file };
}

export function readConfigFile(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw configError(file, "", code === "ENOENT" ? "no such file" : `cannot read (${code ?? String(err)})`);
  }
  return parseConfig(text, file);
}

function defaultDataDir(): string {
  if (process.getuid?.() === 0) return "/var/lib/lifeboat";
  return join(process.env.XDG_DATA_HOME || join(homedir(), ".local/share"), "lifeboat");
}

/** Command-line overrides for one run; undefined leaves the file's value. */
export interface ConfigOverrides {
  dataDir?: string;
  name?: string;
  listen?: string;
  interface?: string;
  httpPort?: number;
  publicUrl?: string;
  tftpPort?: number;
  tftpRoot?: string;
  tftp?: boolean;
  dhcp?: DhcpMode;
  logLevel?: Config["log"]["level"];
}

/**
 * Loads the config: --config FILE, else $LIFEBOAT_CONFIG, else the embedded default;
 * then applies command-line overrides and fills machine-dependent defaults.
 */
export function loadConfig(opts: { file?: string; overrides?: ConfigOverrides; env?: NodeJS.ProcessEnv } = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file || env.LIFEBOAT_CONFIG || defaultConfigPath;
  const cfg = readConfigFile(file);
  const o = opts.overrides ?? {};
  if (o.dataDir) cfg.dataDir = o.dataDir;
  if (o.name) cfg.name = o.name;
  if (o.listen) cfg.listen.address = o.listen;
  if (o.interface) cfg.listen.interface = o.interface;
  if (o.httpPort !== undefined) cfg.http.port = o.httpPort;
  if (o.publicUrl) cfg.http.publicUrl = o.publicUrl;
  if (o.tftpPort !== undefined) cfg.tftp.port = o.tftpPort;
  if (o.tftpRoot) cfg.tftp.root = o.tftpRoot;
  if (o.tftp !== undefined) cfg.tftp.enabled = o.tftp;
  if (o.dhcp) cfg.dhcp.mode = o.dhcp;
  if (o.logLevel) cfg.log.level = o.logLevel;
  // Overrides pass through the same schema so a bad flag gets the same one-line error.
  const { source: _source, ...raw } = cfg;
  const checked = configSchema.safeParse(raw);
  if (!checked.success) {
    const { key, what } = formatIssue(checked.error.issues[0]!, raw);
    throw configError("command line", key, what);
  }
  cfg.dataDir = resolve(cfg.dataDir || defaultDataDir());
  cfg.name ||= hostname().split(".")[0]!.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64) || "lifeboat";
  cfg.tftp.root = resolve(cfg.tftp.root || join(cfg.dataDir, "tftp"));
  cfg.adminTokenFile = resolve(cfg.adminTokenFile || join(cfg.dataDir, "admin-token"));
  return cfg;
}
