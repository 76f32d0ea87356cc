import { execSync } from "node:child_process";
import { closeSync, openSync, ftruncateSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll } from "vitest";

/**
 * Loop devices from sparse files, for the real-tools tests. Only devices made here are
 * ever written; every one is detached (and anything mounted from it unmounted) afterwards.
 */

/** Why loop devices cannot be used here, or null when they can. */
export function loopUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root (losetup, mkfs); CI runs as root";
  try {
    execSync("losetup -f", { stdio: "pipe" });
  } catch (err) {
    return `losetup -f failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
  return null;
}

const attached: string[] = [];
const mounted: string[] = [];

/**
 * Registers the cleanup: unmount what the tests mounted, detach every loop device made.
 * Call it after tempDir() in the same describe: vitest runs afterAll hooks last-first, so
 * the mounts go before the directory holding them is removed.
 */
export function cleanupLoopsAfterAll(): void {
  afterAll(async () => {
    for (const m of mounted.splice(0).reverse()) await execa("umount", ["-R", "-l", m], { reject: false });
    for (const dev of attached.splice(0)) await execa("losetup", ["-d", dev], { reject: false });
  });
}

/** A new loop device over a sparse file of `bytes` in `dir` (with partition scanning). */
export async function makeLoop(dir: string, name: string, bytes: number): Promise<string> {
  const file = join(dir, `${name}.img`);
  const fd = openSync(file, "w");
  ftruncateSync(fd, bytes);
  closeSync(fd);
  const { stdout } = await execa("losetup", ["-f", "--show", "-P", file]);
  attached.push(stdout.trim());
  return stdout.trim();
}

/** Makes the kernel and /dev show the partitions of a loop device (no udev here). */
export async function rescan(dev: string): Promise<void> {
  // Without udev, `partx -u` updates primaries but adds no logical partitions: -a does.
  await execa("partx", ["-u", dev], { reject: false });
  await execa("partx", ["-a", dev], { reject: false });
}

export async function mountTracked(dev: string, dir: string): Promise<void> {
  await execa("mount", [dev, dir]);
  mounted.push(dir);
}

export function trackMount(dir: string): void {
  mounted.push(dir);
}
