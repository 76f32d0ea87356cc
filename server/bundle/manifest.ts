/**
 * The recovery bundle's manifest (docs/bundle-format.md), pure: values in, values or one-line
 * refusals out. The manifest is the bundle's first member, `MANIFEST`, a text file:
 *
 *   lifeboat-bundle 1
 *   lifeboat 0.1.0
 *   created-at 2026-12-05T17:30:00.000Z
 *   server-id 5c0f…
 *   schema 0001-init,0100-amanda-catalog,…
 *   secrets dropped
 *   note amanda daily: amadmin export: …
 *   member <sha256 hex> <size> <path>
 *
 * One `member` line per file of the bundle but MANIFEST and SEAL (the seal covers the
 * manifest itself, seal.ts). `schema` is the store's applied migrations: a bundle whose store
 * has one this Lifeboat does not know comes from a newer Lifeboat and is refused.
 */

/** The bundle format this Lifeboat writes and the newest it reads. */
export const BUNDLE_FORMAT = 1;
export const MANIFEST_NAME = "MANIFEST";
export const SEAL_NAME = "SEAL";
/** What the store's sealed secrets become in a bundle: dropped (docs/bundle-format.md, "Secrets"). */
export const SECRETS_POLICY = "dropped";

export interface BundleMember {
  path: string;
  size: number;
  sha256: string;
}

export interface Manifest {
  format: number;
  lifeboat: string;
  createdAt: string;
  serverId: string;
  /** The store's applied migrations, in order. */
  schema: string[];
  secrets: string;
  /** What could not go in, one line each (an Amanda command missing, a file unreadable). */
  notes: string[];
  members: BundleMember[];
}

/** A bundle that cannot be read or must not be imported: one line for a person. */
export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BundleError";
  }
}

/** Why a member path is not one a bundle may hold, or null: relative, normal, printable, not MANIFEST or SEAL. */
export function memberPathProblem(path: string): string | null {
  if (path === "" || path.startsWith("/") || path.endsWith("/")) return "not a relative file path";
  if ([...path].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) return "holds a control character";
  if (path.split("/").some((p) => p === "" || p === "." || p === "..")) return "not in normal form";
  if (path === MANIFEST_NAME || path === SEAL_NAME) return "a name the bundle keeps for itself";
  return null;
}

/** Pure: the manifest's text. Members sorted by path, so equal bundles have equal manifests. */
export function renderManifest(m: Manifest): string {
  const lines = [
    `lifeboat-bundle ${m.format}`,
    `lifeboat ${m.lifeboat}`,
    `created-at ${m.createdAt}`,
    `server-id ${m.serverId}`,
    `schema ${m.schema.join(",")}`,
    `secrets ${m.secrets}`,
    ...m.notes.map((n) => `note ${n.replace(/\s+/g, " ")}`),
    ...[...m.members].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((x) => `member ${x.sha256} ${x.size} ${x.path}`),
  ];
  return `${lines.join("\n")}\n`;
}

/** Pure: the format number on a manifest's first line, or null when there is none. */
export function manifestFormat(text: string): number | null {
  const f = /^lifeboat-bundle (\d{1,6})\n/.exec(text);
  return f ? Number(f[1]) : null;
}

/** Pure: the manifest from its text (format BUNDLE_FORMAT or older), or a BundleError naming the line. */
export function parseManifest(text: string): Manifest {
  const format = manifestFormat(text);
  if (format === null) throw new BundleError("its MANIFEST does not start with `lifeboat-bundle N`: not a Lifeboat bundle, or damaged");
  if (format > BUNDLE_FORMAT) throw new BundleError(`bundle format ${format} comes from a newer Lifeboat (this one reads format ${BUNDLE_FORMAT} and older)`);
  const one: Record<string, string> = {};
  const notes: string[] = [];
  const members: BundleMember[] = [];
  const lines = text.split("\n");
  if (lines.pop() !== "") throw new BundleError("its MANIFEST does not end with a newline: damaged");
  for (const [i, line] of lines.entries()) {
    const sp = line.indexOf(" ");
    const key = sp < 0 ? line : line.slice(0, sp);
    const value = sp < 0 ? "" : line.slice(sp + 1);
    const bad = (why: string) => new BundleError(`MANIFEST line ${i + 1}: ${why}`);
    if (key === "note") notes.push(value);
    else if (key === "member") {
      const mm = /^([0-9a-f]{64}) (0|[1-9]\d{0,15}) (.+)$/.exec(value);
      if (!mm) throw bad("expected `member SHA256 SIZE PATH`");
      const problem = memberPathProblem(mm[3]!);
      if (problem) throw bad(`member path ${JSON.stringify(mm[3])} ${problem}`);
      if (members.some((x) => x.path === mm[3])) throw bad(`member ${mm[3]} listed twice`);
      members.push({ sha256: mm[1]!, size: Number(mm[2]), path: mm[3]! });
    } else if (["lifeboat-bundle", "lifeboat", "created-at", "server-id", "schema", "secrets"].includes(key)) {
      if (key in one) throw bad(`${key} given twice`);
      if (!value) throw bad(`${key} has no value`);
      one[key] = value;
    } else throw bad(`unknown key ${JSON.stringify(key.slice(0, 40))}`);
  }
  for (const k of ["lifeboat", "created-at", "server-id", "schema", "secrets"]) if (!(k in one)) throw new BundleError(`its MANIFEST has no ${k} line: damaged`);
  if (Number.isNaN(Date.parse(one["created-at"]!))) throw new BundleError(`MANIFEST created-at ${JSON.stringify(one["created-at"])} is not a time`);
  return {
    format,
    lifeboat: one.lifeboat!,
    createdAt: one["created-at"]!,
    serverId: one["server-id"]!,
    schema: one.schema!.split(","),
    secrets: one.secrets!,
    notes,
    members,
  };
}

/**
 * Pure: why this Lifeboat must not import the bundle's store, or null. `known` is every
 * migration this Lifeboat has; an unknown one means the store was made by a newer Lifeboat.
 */
export function schemaProblem(m: Pick<Manifest, "schema" | "lifeboat">, known: readonly string[]): string | null {
  const unknown = m.schema.filter((id) => !known.includes(id));
  if (unknown.length === 0) return null;
  return `its store comes from a newer Lifeboat (${m.lifeboat}): migration${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} unknown here; import it with that version or newer`;
}

/**
 * Pure: the first difference between what the manifest lists and what the bundle holds
 * (`found`: path → size and sha256 of each file extracted), or null when they agree exactly.
 */
export function membersProblem(m: Pick<Manifest, "members">, found: ReadonlyMap<string, { size: number; sha256: string }>): string | null {
  for (const x of m.members) {
    const f = found.get(x.path);
    if (!f) return `member ${x.path} is listed in MANIFEST but missing`;
    if (f.size !== x.size) return `member ${x.path} has ${f.size} bytes, MANIFEST says ${x.size}`;
    if (f.sha256 !== x.sha256) return `member ${x.path}: sha256 mismatch (${f.sha256.slice(0, 12)}…, MANIFEST says ${x.sha256.slice(0, 12)}…)`;
  }
  const listed = new Set(m.members.map((x) => x.path));
  for (const p of found.keys()) if (!listed.has(p)) return `member ${p} is not listed in MANIFEST`;
  return null;
}

/** A bundle's file name on a target or a receiving server: `lifeboat-SERVERID-YYYYMMDDTHHMMSSZ.bundle[.gpg]`. */
export const BUNDLE_FILE = /^lifeboat-([0-9a-f]{32})-(\d{8}T\d{6}Z)\.bundle(\.gpg)?$/;

/** Pure: the file name of the bundle a server made at a time (sorting by name sorts by time, per server). */
export function bundleFileName(serverId: string, createdAt: string, encrypted: boolean): string {
  const stamp = createdAt.replace(/\.\d+Z$/, "Z").replace(/[-:]/g, "");
  return `lifeboat-${serverId}-${stamp}.bundle${encrypted ? ".gpg" : ""}`;
}
