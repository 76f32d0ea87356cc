/**
 * Library discovery without running a loader: a loader opens its paths through the host's
 * file system (an absolute link in the stage would lead it to the host's copy), so the
 * builder reads what the loader would read itself (PT_INTERP, DT_NEEDED, DT_RPATH,
 * DT_RUNPATH) and searches for the libraries inside the root, as glibc's loader does on a
 * system without /etc/ld.so.cache, which is what the rescue image is: RPATHs of the object
 * and of those that loaded it (when it has no RUNPATH), its RUNPATH, then the system
 * directories.
 */
import { readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { type ResolveOptions, StageError, describeMissing, resolveInRoot } from "./stage-root.ts";

/** glibc's built-in search directories on Debian amd64 (multiarch first), below the root. */
export const SYSTEM_LIB_DIRS = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"] as const;

export interface ElfInfo {
  /** A 64-bit little-endian x86-64 object: the only kind the image's loader takes. */
  x86_64: boolean;
  /** The program interpreter (dynamic loader); null for static programs and libraries. */
  interp: string | null;
  needed: string[];
  rpath: string[];
  runpath: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;
const EM_X86_64 = 62;

/** The dynamic-linking facts of an ELF file; null when it is not ELF (a script). Throws on a malformed one. */
export function readElf(b: Buffer): ElfInfo | null {
  if (b.length < 4 || b.toString("latin1", 0, 4) !== "\x7fELF") return null;
  const info: ElfInfo = { x86_64: false, interp: null, needed: [], rpath: [], runpath: [] };
  if (b.length < 64 || b[4] !== 2 || b[5] !== 1 || b.readUInt16LE(18) !== EM_X86_64) return info;
  info.x86_64 = true;
  const need = (off: number, len: number, what: string) => {
    if (off < 0 || len < 0 || off + len > b.length) throw new Error(`malformed ELF: ${what} at ${off}+${len} is past the end (${b.length} bytes)`);
  };
  const u64 = (off: number) => Number(b.readBigUInt64LE(off));
  const phoff = u64(0x20);
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  need(phoff, phentsize * phnum, "program headers");
  const loads: Array<{ vaddr: number; offset: number; size: number }> = [];
  let dynamic: { offset: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const h = phoff + i * phentsize;
    const type = b.readUInt32LE(h);
    const seg = { offset: u64(h + 8), vaddr: u64(h + 16), size: u64(h + 32) };
    if (type === PT_LOAD) loads.push(seg);
    else if (type === PT_DYNAMIC) dynamic = seg;
    else if (type === PT_INTERP) {
      need(seg.offset, seg.size, "PT_INTERP");
      info.interp = b.toString("latin1", seg.offset, seg.offset + seg.size).replace(/\0.*$/s, "");
    }
  }
  if (!dynamic) return info;
  need(dynamic.offset, dynamic.size, "PT_DYNAMIC");
  const entries: Array<[bigint, bigint]> = [];
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.size; at += 16) {
    const tag = b.readBigInt64LE(at);
    if (tag === 0n) break;
    entries.push([tag, b.readBigUInt64LE(at + 8)]);
  }
  const strtabVaddr = entries.find(([t]) => t === DT_STRTAB)?.[1];
  if (strtabVaddr === undefined) return info;
  const seg = loads.find((l) => Number(strtabVaddr) >= l.vaddr && Number(strtabVaddr) < l.vaddr + l.size);
  if (!seg) throw new Error("malformed ELF: DT_STRTAB lies in no loaded segment");
  const strtab = Number(strtabVaddr) - seg.vaddr + seg.offset;
  const str = (off: bigint) => {
    const start = strtab + Number(off);
    need(start, 1, "a dynamic string");
    const end = b.indexOf(0, start);
    if (end < 0) throw new Error("malformed ELF: unterminated dynamic string");
    return b.toString("latin1", start, end);
  };
  for (const [tag, val] of entries) {
    if (tag === DT_NEEDED) info.needed.push(str(val));
    else if (tag === DT_RPATH) info.rpath.push(...str(val).split(":").filter(Boolean));
    else if (tag === DT_RUNPATH) info.runpath.push(...str(val).split(":").filter(Boolean));
  }
  return info;
}

/** An ELF file below a root, found through the chroot-like resolver: its link-free path and its facts (null: not ELF). */
export function readElfInRoot(root: string, path: string, opts: ResolveOptions): { path: string; info: ElfInfo | null } {
  const r = resolveInRoot(root, path, opts);
  if (!r.found) throw new StageError(describeMissing(root, path, r));
  if (r.type !== "file") throw new StageError(`${path}: not a file`);
  try {
    return { path: r.path, info: readElf(readFileSync(join(root, r.path))) };
  } catch (err) {
    throw new StageError(`${path}: ${(err as Error).message}`);
  }
}

/** $ORIGIN (the object's directory) in an RPATH/RUNPATH entry; any other token is refused. */
function expandOrigin(entry: string, origin: string, object: string): string {
  const out = entry.replace(/\$(ORIGIN\b|\{ORIGIN\})/g, `/${origin}`);
  if (out.includes("$")) throw new StageError(`${object}: unsupported token in its library path ${JSON.stringify(entry)}`);
  return out;
}

export interface LibraryClosure {
  /** The interpreter as the program names it (e.g. /lib64/ld-linux-x86-64.so.2); null: static, a library or a script. */
  interp: string | null;
  /** Every shared library, at the path below the root where the search found it (a soname link, usually). */
  libs: string[];
}

/** The shared-library closure of `program` (an ELF program or library below `root`), found only inside `root`. */
export function libraryClosure(root: string, program: string, opts: ResolveOptions = {}): LibraryClosure {
  const { path: real, info: main } = readElfInRoot(root, program, opts);
  if (!main) return { interp: null, libs: [] };
  interface Loaded {
    path: string;
    /** What $ORIGIN stands for: the program's real directory (as the kernel reports it), a library's as found. */
    origin: string;
    info: ElfInfo;
    /** RPATH entries of this object and of those that loaded it, expanded. */
    rpaths: string[];
  }
  const expand = (entries: string[], dir: string, object: string) => entries.map((e) => expandOrigin(e, dir, object));
  const first: Loaded = { path: program, origin: posix.dirname(real), info: main, rpaths: expand(main.rpath, posix.dirname(real), program) };
  const found = new Map<string, string>();
  const queue = [first];
  for (let o = queue.shift(); o; o = queue.shift()) {
    const dirs = [...(o.info.runpath.length ? expand(o.info.runpath, o.origin, o.path) : o.rpaths), ...SYSTEM_LIB_DIRS];
    for (const name of o.info.needed) {
      if (found.has(name)) continue;
      // Joined as strings, not normalized: ".." after a link is for the resolver to take.
      const candidates = name.includes("/") ? [name] : dirs.map((d) => `${d.replace(/\/+$/, "")}/${name}`);
      let hit: Loaded | undefined;
      for (const c of candidates) {
        const r = resolveInRoot(root, c, opts);
        if (!r.found || r.type !== "file") continue;
        const { info } = readElfInRoot(root, c, opts);
        // Like the loader, pass over a file of another ABI (a 32-bit library of the same name).
        if (!info?.x86_64) continue;
        const path = c.replace(/^\/+/, "");
        hit = { path, origin: posix.dirname(path), info, rpaths: [...expand(info.rpath, posix.dirname(path), path), ...o.rpaths] };
        break;
      }
      if (!hit) throw new StageError(`${program}: shared library ${name} (needed by ${o.path}) is not in the staged packages (searched ${[...new Set(dirs)].join(", ")})`);
      found.set(name, hit.path);
      queue.push(hit);
    }
  }
  return { interp: main.interp, libs: [...found.values()] };
}
