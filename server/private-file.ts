/**
 * Files only Lifeboat's own user may read: the data dir (0700) and what holds secrets or
 * state in it (0600), whatever the umask of whoever created them first.
 */
import { chmodSync, chownSync, closeSync, mkdirSync, openSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Creates `file` with `content()` (mode 0600, exclusive: of two processes starting at once,
 * one writes and both read the same) unless it exists, then makes sure it is 0600. Run as
 * root, a new file goes to the owner of its directory (a CLI run as root must not leave the
 * data dir's service user a file it cannot read).
 */
export function ensurePrivateFile(file: string, content: () => string): void {
  let fd: number | undefined;
  try {
    fd = openSync(file, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  if (fd !== undefined) {
    try {
      writeSync(fd, content());
    } finally {
      closeSync(fd);
    }
    const dir = statSync(dirname(file));
    if (process.getuid?.() === 0 && dir.uid !== 0) chownSync(file, dir.uid, dir.gid);
  }
  makePrivate(file);
}

/** Mode 0600 (only changed when it differs: a reader that does not own the file can still open it). */
export function makePrivate(file: string): void {
  if ((statSync(file).mode & 0o777) !== 0o600) chmodSync(file, 0o600);
}

/** The data dir, made 0700 (and made so again at every start: an older release left it 0755). */
export function securePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if ((statSync(dir).mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
}
