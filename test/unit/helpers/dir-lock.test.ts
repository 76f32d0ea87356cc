import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { withLock } from "../../helpers/dir-lock.ts";
import { tempDir } from "../../helpers/tmp.ts";

describe("withLock (the cache builders' lock between test processes)", () => {
  it("takes a lock whose parent directory does not exist yet (an empty cache) at once", async () => {
    const lock = join(tempDir("lifeboat-dir-lock-"), "not", "yet", "x.lock");
    const started = Date.now();
    expect(await withLock(lock, async () => existsSync(lock), 5)).toBe(true);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(existsSync(lock)).toBe(false);
  });

  it("takes over a lock whose owner died, and waits for a live one until its limit", async () => {
    const dir = tempDir("lifeboat-dir-lock-");
    const dead = join(dir, "dead.lock");
    mkdirSync(dead);
    writeFileSync(join(dead, "pid"), "999999999");
    expect(await withLock(dead, async () => "ran", 5)).toBe("ran");
    const live = join(dir, "live.lock");
    mkdirSync(live);
    writeFileSync(join(live, "pid"), String(process.pid));
    await expect(withLock(live, async () => "ran", 1)).rejects.toThrow(/held by pid/);
  });
});
