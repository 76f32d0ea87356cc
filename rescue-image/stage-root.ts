/**
 * Paths inside a root directory (the unpacked packages, or the assembled image tree),
 * resolved as a chroot would see them and never through the host: an absolute symlink target
 * starts again at the root, `..` is taken after each link is followed (physically, not by
 * string), `..` at the root stays at the root (so no link leads out of it), chains are
 * followed and a loop is an error naming the link. With `mergedUsr`, `bin/x` and
 * `usr/bin/x` (likewise sbin, lib, lib64) are one directory, as on a usr-merged system:
 * Debian 12's packages ship files in both halves and link across them.
 *
 * Only `lstat` and `readlink` of paths whose every directory is already resolved (no symlink
 * in them) reach the file system, so nothing on the host decides what a path means.
 */
import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/** A staged path that cannot be resolved: a link loop, or a directory that is a file. */
export class StageError extends Error {}

/** How many links one resolution may follow (Linux's own limit for a path walk). */
export const MAX_LINKS = 40;

export type NodeType = "file" | "dir" | "link" | "other";

export type Resolution =
  | {
      found: true;
      /** Where the thing is below the root, with no symlink in it ("" is the root itself). */
      path: string;
      type: NodeType;
      /** The links walked through on the way, in order, each as its own link-free path below the root. */
      links: string[];
    }
  | { found: false; /** The first path below the root that does not exist. */ missing: string; links: string[] };

export interface ResolveOptions {
  /** Follow a link in the last component (default); false: the link itself, as lstat does. */
  followLast?: boolean;
  /** Top-level directories that are one with `usr/<dir>` (a merged /usr). */
  mergedUsr?: readonly string[];
}

const parts = (p: string) => p.split("/").filter((s) => s !== "" && s !== ".");

function typeAt(file: string): NodeType | undefined {
  const st = lstatSync(file, { throwIfNoEntry: false });
  if (!st) return undefined;
  return st.isSymbolicLink() ? "link" : st.isDirectory() ? "dir" : st.isFile() ? "file" : "other";
}

/** The other name of a path in a merged /usr: bin/x ↔ usr/bin/x; undefined when it has none. */
function mergedAlias(path: readonly string[], merged: readonly string[]): string[] | undefined {
  if (path[0] === "usr" && path.length > 1 && merged.includes(path[1]!)) return path.slice(1);
  if (path[0] !== undefined && merged.includes(path[0])) return ["usr", ...path];
  return undefined;
}

/** Resolves `path` (absolute or relative: both start at the root) inside `root`, as a chroot would. */
export function resolveInRoot(root: string, path: string, opts: ResolveOptions = {}): Resolution {
  const followLast = opts.followLast ?? true;
  const merged = opts.mergedUsr ?? [];
  const links: string[] = [];
  let followed = 0;

  /** The entry `name` in the link-free directory `dir`, by its own name or else (with `aliases`) its merged-/usr one. */
  const lookup = (dir: readonly string[], name: string, aliases: boolean): { at: string[]; type: NodeType } | undefined => {
    const at = [...dir, name];
    const type = typeAt(join(root, ...at));
    if (type) return { at, type };
    const alias = aliases ? mergedAlias(at, merged) : undefined;
    if (!alias) return undefined;
    // The alias's directory may hold links itself: resolve it (without aliases: no ping-pong).
    const linksBefore = links.length;
    const parent = walk(alias.slice(0, -1), true, false);
    const aliased = parent?.type === "dir" ? [...parts(parent.path), name] : undefined;
    const aliasType = aliased && typeAt(join(root, ...aliased));
    if (aliased && aliasType) return { at: aliased, type: aliasType };
    links.length = linksBefore;
    return undefined;
  };

  let missing = "";
  const walk = (start: string[], follow: boolean, aliases: boolean): { path: string; type: NodeType } | undefined => {
    let dir: string[] = [];
    const todo = [...start];
    while (todo.length) {
      const name = todo.shift()!;
      if (name === "..") {
        dir.pop();
        continue;
      }
      const last = todo.length === 0;
      const entry = lookup(dir, name, aliases);
      if (!entry || (!last && entry.type !== "dir" && entry.type !== "link")) {
        missing = (entry ? [...entry.at, todo[0]!] : [...dir, name]).join("/");
        return undefined;
      }
      if (entry.type === "link" && (follow || !last)) {
        const link = entry.at.join("/");
        const target = readlinkSync(join(root, link));
        if (++followed > MAX_LINKS) throw new StageError(`${path}: too many levels of symbolic links, looping through ${link} → ${target}`);
        links.push(link);
        todo.unshift(...parts(target));
        dir = target.startsWith("/") ? [] : entry.at.slice(0, -1);
        continue;
      }
      dir = entry.at;
      if (last) return { path: dir.join("/"), type: entry.type };
    }
    return { path: dir.join("/"), type: "dir" };
  };

  const r = walk(parts(path), followLast, true);
  return r ? { found: true, ...r, links } : { found: false, missing, links };
}

/** One line for a path that did not resolve: which link led where, and what is missing. */
export function describeMissing(root: string, path: string, r: Extract<Resolution, { found: false }>): string {
  const via = r.links.map((l) => `${l} → ${readlinkSync(join(root, l))}`);
  return [path, ...via.map((v) => `via ${v}`), `${r.missing} does not exist`].join(", ");
}

/**
 * Every symlink below `root` that does not resolve inside it (dangling, or a loop), as
 * "link → target: why" lines; empty when the tree is whole.
 */
export function brokenLinks(root: string, opts: ResolveOptions = {}): string[] {
  const broken: string[] = [];
  const visit = (dir: string) => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory()) visit(rel);
      else if (e.isSymbolicLink()) {
        try {
          const r = resolveInRoot(root, rel, opts);
          if (!r.found) broken.push(`${rel} → ${readlinkSync(join(root, rel))}: ${r.missing} does not exist`);
        } catch (err) {
          if (!(err instanceof StageError)) throw err;
          broken.push(`${rel} → ${readlinkSync(join(root, rel))}: ${err.message}`);
        }
      }
    }
  };
  visit("");
  return broken;
}
