/**
 * Reads what the catalog needs from an Amanda config directory (amanda.conf): where the
 * trace logs, tapelist and index are, the chg-disk vtape root, the holding disks and the
 * dump user. Read-only; a missing or unreadable directory is a UserError naming it.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { UserError } from "../errors.ts";
import { DEFAULT_HELPER_SOCKET } from "./dumpuser.ts";
import { splitQuoted } from "./quote.ts";

export interface AmandaSetup {
  name: string;
  configDir: string;
  logdir: string;
  tapelist: string;
  indexdir: string | null;
  /** chg-disk root (slot1..N), when the changer is a disk changer. */
  vtapeRoot: string | null;
  holdingDirs: string[];
  dumpuser: string;
  /** The disklist (amanda.conf `diskfile`). */
  diskfile: string;
  /** The curinfo database (amanda.conf `infofile`), null when the config leaves it to Amanda's default. */
  infofile: string | null;
  /** Files amanda.conf includes (`includefile`), in the order read. */
  includes: string[];
  /** The changer's state: `changerfile` when set, and chg-disk's `state` file in the vtape root. */
  changerFiles: string[];
  /** The dump-user helper's socket, for amadmin and amfetchdump when Lifeboat is not root (dumpuser.ts). */
  helperSocket: string;
}

interface ConfTokens {
  top: Map<string, string[]>;
  /** `define changer X { tpchanger "..." }` and `holdingdisk hd { directory "..." }` blocks. */
  blocks: Array<{ kind: string; name: string; body: Map<string, string[]> }>;
}

/** Pure: tokenises amanda.conf text (comments, quoted strings, `{ }` blocks, includefile). */
export function parseAmandaConf(text: string, include: (file: string) => string = () => ""): ConfTokens {
  const top = new Map<string, string[]>();
  const blocks: ConfTokens["blocks"] = [];
  let cur: Map<string, string[]> | null = null;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = stripComment(lines[i]!);
    const t = splitQuoted(line);
    if (t.length === 0) continue;
    if (t[0] === "}") {
      cur = null;
      continue;
    }
    if (t[0] === "includefile" && t[1] && !cur) {
      const sub = parseAmandaConf(include(t[1]), include);
      for (const [k, v] of sub.top) top.set(k, v);
      blocks.push(...sub.blocks);
      continue;
    }
    const opens = t[t.length - 1] === "{";
    if (opens) {
      // "define changer NAME {" | "holdingdisk NAME {" | "define dumptype NAME {"
      const words = t.slice(0, -1);
      const kind = words[0] === "define" ? (words[1] ?? "") : (words[0] ?? "");
      const name = words[0] === "define" ? (words[2] ?? "") : (words[1] ?? "");
      cur = new Map();
      blocks.push({ kind, name, body: cur });
      continue;
    }
    (cur ?? top).set(t[0]!.toLowerCase().replace(/_/g, "-"), t.slice(1));
  }
  return { top, blocks };
}

function stripComment(line: string): string {
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "\\") i++;
    else if (c === '"') q = !q;
    else if (c === "#" && !q) return line.slice(0, i);
  }
  return line;
}

/** Reads amanda.conf in `configDir`. `name` defaults to the directory's name. */
export function readAmandaConfig(
  configDir: string,
  opts: { name?: string; vtapeRoot?: string; holdingDirs?: string[]; helperSocket?: string } = {},
): AmandaSetup {
  const file = join(configDir, "amanda.conf");
  let text: string;
  try {
    if (!statSync(configDir).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new UserError(
      `${existsSync(configDir) ? file : configDir}: not an Amanda config directory (${code}); expected a directory with amanda.conf`,
      2,
    );
  }
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(configDir, p));
  const includes: string[] = [];
  const conf = parseAmandaConf(text, (f) => {
    includes.push(rel(f));
    try {
      return readFileSync(rel(f), "utf8");
    } catch {
      return "";
    }
  });
  const one = (k: string) => conf.top.get(k)?.[0];
  let vtapeRoot: string | null = opts.vtapeRoot ?? null;
  let changer = one("tpchanger") ?? one("tapedev") ?? "";
  const def = conf.blocks.find((b) => b.kind === "changer" && b.name === changer);
  if (def) changer = def.body.get("tpchanger")?.[0] ?? "";
  if (!vtapeRoot) {
    const m = /^chg-disk:(.+)$/.exec(changer);
    if (m) vtapeRoot = rel(m[1]!);
  }
  const holdingDirs =
    opts.holdingDirs && opts.holdingDirs.length > 0
      ? opts.holdingDirs
      : conf.blocks.filter((b) => b.kind === "holdingdisk").flatMap((b) => b.body.get("directory")?.slice(0, 1) ?? []).map(rel);
  // /etc/amanda/NAME may be a symlink to a directory with another name: the link's name counts.
  const name = opts.name ?? basename(configDir.replace(/\/+$/, ""));
  return {
    name,
    configDir,
    logdir: rel(one("logdir") ?? dirname(file)),
    tapelist: rel(one("tapelist") ?? "tapelist"),
    indexdir: one("indexdir") ? rel(one("indexdir")!) : null,
    vtapeRoot,
    holdingDirs,
    dumpuser: one("dumpuser") ?? "backup",
    diskfile: rel(one("diskfile") ?? "disklist"),
    infofile: one("infofile") ? rel(one("infofile")!) : null,
    includes,
    changerFiles: [
      ...[def?.body.get("changerfile")?.[0] ?? one("changerfile")].flatMap((f) => (f ? [rel(f)] : [])),
      ...(vtapeRoot && /^chg-disk:/.test(changer) ? [join(vtapeRoot, "state")] : []),
    ],
    helperSocket: opts.helperSocket ?? DEFAULT_HELPER_SOCKET,
  };
}

export interface TapelistEntry {
  datestamp: string;
  label: string;
  reuse: boolean;
  fields: Record<string, string>;
}

/** Pure: `<datestamp|0> <label> reuse|no-reuse [KEY:value]... [#comment]` (2.x: first three only). */
export function parseTapelist(text: string): TapelistEntry[] {
  const out: TapelistEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = stripComment(raw).trim();
    if (!line) continue;
    const t = splitQuoted(line);
    if (t.length < 2) continue;
    const fields: Record<string, string> = {};
    for (const f of t.slice(3)) {
      const c = f.indexOf(":");
      if (c > 0) fields[f.slice(0, c)] = f.slice(c + 1);
    }
    out.push({ datestamp: t[0]!, label: t[1]!, reuse: t[2] !== "no-reuse", fields });
  }
  return out;
}
