/**
 * What a TFTP file name means: generated content first, then a file under the root,
 * never anything outside it. PXE ROMs send `\` separators and a leading `/`; both are
 * normalised before the checks.
 */
import { closeSync, fstatSync, openSync, readSync, realpathSync } from "node:fs";
import { join, sep } from "node:path";
import { ErrorCode } from "./packets.ts";

export type Source =
  | { ok: true; size: number; readInto: (into: Buffer, at: number, offset: number, length: number) => number; close: () => void }
  | { ok: false; code: number; message: string };

/** Produces a generated file for a name (e.g. a per-MAC iPXE script), or undefined to fall through. */
export type Generator = (name: string, client: { address: string }) => Buffer | undefined;

/** Normalises a requested name to a relative path, or undefined when it is not allowed. Pure. */
export function normaliseName(raw: string): string | undefined {
  if (raw.includes("\0")) return undefined;
  const parts = raw.replace(/\\/g, "/").split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.some((p) => p === "..")) return undefined;
  return parts.join("/");
}

function bufferSource(data: Buffer): Source {
  return { ok: true, size: data.length, readInto: (into, at, o, l) => data.copy(into, at, o, o + l), close: () => {} };
}

const denied = (what: string): Source => ({ ok: false, code: ErrorCode.ACCESS_VIOLATION, message: `Access violation: ${what}` });

export function openSource(root: string, raw: string, client: { address: string }, generate?: Generator): Source {
  const name = normaliseName(raw);
  if (name === undefined) return denied("path outside the TFTP root");
  const generated = generate?.(name, client);
  if (generated) return bufferSource(generated);
  let real: string;
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(join(realRoot, name));
  } catch {
    return { ok: false, code: ErrorCode.FILE_NOT_FOUND, message: "File not found" };
  }
  // A symlink inside the root may point anywhere: check where it really leads.
  if (!real.startsWith(realRoot + sep)) return denied("path outside the TFTP root");
  let fd: number;
  try {
    fd = openSync(real, "r");
  } catch {
    return denied("cannot open");
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    return denied("not a regular file");
  }
  return {
    ok: true,
    size: st.size,
    readInto: (into, at, offset, length) => readSync(fd, into, at, length, offset),
    close: () => closeSync(fd),
  };
}
