/**
 * A lock between test processes and worker threads of one machine, for caches that several
 * test files build on first use (the Amanda lab, the sample system): a directory made with
 * mkdir (atomic) holding the owner's pid; a lock whose owner died is taken over.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function ownerOf(lock: string): number {
  try {
    return Number(readFileSync(join(lock, "pid"), "utf8"));
  } catch {
    return 0;
  }
}

/** Runs FN holding LOCK; waits for another holder at most MAX_WAIT_S seconds. */
export async function withLock<T>(lock: string, fn: () => Promise<T>, maxWaitS = 600): Promise<T> {
  // On an empty cache the lock's parent is missing: mkdir would fail forever and look like a holder.
  mkdirSync(dirname(lock), { recursive: true });
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = ownerOf(lock);
      if (pid && !alive(pid)) rmSync(lock, { recursive: true, force: true });
      else if (i > maxWaitS) throw new Error(`${lock}: held by pid ${pid} for ${maxWaitS} s`);
      else await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
