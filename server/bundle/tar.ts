/**
 * The bundle's container: a GNU tar made and read by Debian's tar, with a seal over every
 * byte (docs/bundle-format.md, "The seal"). Its last member, SEAL, holds `sha256 HEX\n`: the
 * sha256 of every byte before that content (all other members, their headers and padding,
 * and SEAL's own header, which does not depend on the content: fixed name, size, owner, mode
 * and time). After it the file holds only zeros and is a whole number of tar records, so a
 * changed byte anywhere, or a cut anywhere, is refused. The seal is integrity, not
 * authenticity: encryption (gpg.ts) is what keeps a bundle private.
 */
import { createHash } from "node:crypto";
import { createReadStream, openSync, readSync, closeSync, statSync, writeSync } from "node:fs";
import { execa } from "execa";
import { BundleError, MANIFEST_NAME, SEAL_NAME } from "./manifest.ts";

const BLOCK = 512;
/** GNU tar's default record (blocking factor 20): the file's size is a multiple of it. */
const RECORD = 20 * BLOCK;
const SEAL_PREFIX = "sha256 ";
/** What SEAL holds before it is sealed: the same length as the seal itself. */
export const SEAL_PLACEHOLDER = `${SEAL_PREFIX}${"0".repeat(64)}\n`;
const SEAL_BYTES = SEAL_PLACEHOLDER.length;

export interface ListedEntry {
  block: number;
  /** `-` a file, `d` a directory, `*` tar's own end lines (Block of NULs, End of File), else another kind. */
  type: string;
  line: string;
}

/** Pure: the lines of `tar --list --verbose --block-number`. */
export function parseBlockListing(text: string): ListedEntry[] {
  const out: ListedEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /^block (\d+): (.)/.exec(line);
    if (m) out.push({ block: Number(m[1]), type: m[2]!, line });
  }
  return out;
}

/**
 * Pure: where SEAL's content starts, given the listing and the file's size; or why the file
 * is not a sealed bundle (a kind of member a bundle never holds, SEAL not last, a cut file).
 */
export function sealOffset(entries: ListedEntry[], fileSize: number): number | string {
  const members = entries.filter((e) => e.type !== "*");
  const odd = members.find((e) => e.type !== "-" && e.type !== "d");
  if (odd) return `it holds a member that is neither a file nor a directory (${odd.line.slice(0, 120)})`;
  const last = members[members.length - 1];
  if (!last || last.type !== "-" || !last.line.endsWith(` ${SEAL_NAME}`)) return `its last member is not ${SEAL_NAME}: cut short, or not a Lifeboat bundle`;
  const at = (last.block + 1) * BLOCK;
  // The content padded to a block, then tar's two zero blocks, in whole records.
  if (fileSize % RECORD !== 0 || fileSize < at + BLOCK + 2 * BLOCK) return `its size (${fileSize} bytes) is not that of a whole tar archive: cut short or damaged`;
  return at;
}

async function sha256Range(file: string, end: number): Promise<string> {
  const h = createHash("sha256");
  if (end > 0) for await (const chunk of createReadStream(file, { start: 0, end: end - 1 })) h.update(chunk as Buffer);
  return h.digest("hex");
}

function readAt(file: string, at: number, length: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, at);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

async function tar(args: string[], what: string): Promise<string> {
  const r = await execa("tar", args, { reject: false, stdin: "ignore", stripFinalNewline: false, env: { LC_ALL: "C" } });
  if ((r as { code?: string }).code === "ENOENT") throw new Error("tar not found on PATH (Debian's tar package)");
  if (r.exitCode !== 0) {
    // tar's first complaint says what; its last line ("Exiting with failure status …") does not.
    const first = String(r.stderr).split("\n").map((l) => l.replace(/^tar: /, "").trim()).find((l) => l && !/^(Exiting with failure status|Error is not recoverable)/.test(l));
    throw new BundleError(`${what}: ${first ?? `tar exit ${r.exitCode}`}`);
  }
  return String(r.stdout);
}

async function offsetOf(file: string): Promise<number> {
  const listing = await tar(["--list", "--verbose", "--block-number", "--file", file], "not a readable tar archive (damaged or cut short)");
  const at = sealOffset(parseBlockListing(listing), statSync(file).size);
  if (typeof at === "string") throw new BundleError(at);
  return at;
}

/**
 * Writes `out`: MANIFEST first, then the top-level entries of `stageDir` in name order, then
 * SEAL (which must hold SEAL_PLACEHOLDER), owned by 0:0, private modes, every time `mtime`;
 * then seals it.
 */
export async function writeSealedTar(stageDir: string, entries: string[], out: string, mtime: Date): Promise<void> {
  const order = [MANIFEST_NAME, ...entries.filter((e) => e !== MANIFEST_NAME && e !== SEAL_NAME).sort(), SEAL_NAME];
  await tar(
    [
      "--create",
      "--format=gnu",
      "--sort=name",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--mode=u=rwX,go=",
      `--mtime=@${Math.floor(mtime.getTime() / 1000)}`,
      "--file",
      out,
      "--directory",
      stageDir,
      "--",
      ...order,
    ],
    `writing ${out}`,
  );
  const at = await offsetOf(out);
  if (readAt(out, at, SEAL_BYTES).toString("latin1") !== SEAL_PLACEHOLDER) throw new Error(`${out}: SEAL is not where tar was expected to put it`);
  const fd = openSync(out, "r+");
  try {
    writeSync(fd, `${SEAL_PREFIX}${await sha256Range(out, at)}\n`, at, "latin1");
  } finally {
    closeSync(fd);
  }
}

/** Checks the seal of a bundle file: every byte as written, nothing cut. A BundleError says what is wrong. */
export async function verifySeal(file: string): Promise<void> {
  const at = await offsetOf(file);
  const tail = readAt(file, at, statSync(file).size - at);
  const m = /^sha256 ([0-9a-f]{64})\n$/.exec(tail.subarray(0, SEAL_BYTES).toString("latin1"));
  if (!m) throw new BundleError(`its ${SEAL_NAME} is not \`sha256 HEX\`: damaged`);
  if (tail.subarray(SEAL_BYTES).some((b) => b !== 0)) throw new BundleError(`bytes after its ${SEAL_NAME} are not zero: damaged`);
  if ((await sha256Range(file, at)) !== m[1]) throw new BundleError("its seal does not match its content (sha256): damaged");
}

/** One member's bytes (MANIFEST before anything else is trusted). */
export async function readMember(file: string, name: string): Promise<string> {
  return tar(["--extract", "--to-stdout", "--file", file, "--", name], `its ${name} cannot be read (not a readable tar archive: damaged or cut short)`);
}

/** Extracts a verified bundle into `dir` (an empty private directory): files and directories only, owned by whoever imports. */
export async function extractTar(file: string, dir: string): Promise<void> {
  await tar(["--extract", "--no-same-owner", "--no-same-permissions", "--file", file, "--directory", dir], "extracting");
}
