/**
 * The sample machine's system: a real Debian 12 tree (kernel, initramfs-tools, GRUB for BIOS
 * and UEFI, systemd) from scripts/sample-os/build.sh, as one tar. Built
 * once per machine and version of the script into /var/cache/lifeboat/sample-os/<recipe>
 * (4 minutes on an idle machine, much longer on a busy one). Booted, it prints
 * `LIFEBOAT-SAMPLE booted host=… root=… boot=…` on its serial console and powers off; where
 * `installCapture()` put capture.sh in its /root, it first captures its own layout there,
 * which `readCapture()` reads from the disk image.
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { withLock } from "./dir-lock.ts";
import type { DiskLayout } from "../../server/layout/layout.ts";
import { layoutFromCapture, parseCapture } from "../../server/layout/layout-capture.ts";

export const SAMPLE_OS_CACHE = process.env.LIFEBOAT_SAMPLE_OS_CACHE ?? "/var/cache/lifeboat/sample-os";
const BUILD_SCRIPT = fileURLToPath(new URL("../../scripts/sample-os/build.sh", import.meta.url));
const CAPTURE_SH = fileURLToPath(new URL("../../server/layout/capture.sh", import.meta.url));

export interface SampleOs {
  /** The system tree as a tar (numeric owners, xattrs). */
  tar: string;
  kernel: string;
}

/** The line the booted sample system prints on its console. */
export const SAMPLE_BOOTED = /LIFEBOAT-SAMPLE booted host=(\S+) root=(\S+) kernel=(\S+) boot=(bios|uefi)/;

/** What is missing to build the sample system here, or undefined. */
export function sampleOsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (debootstrap, chroot); CI runs as root";
  if (!existsSync("/usr/sbin/debootstrap")) return "debootstrap is missing (scripts/bootstrap installs it)";
  return undefined;
}

/**
 * The cached sample system, built first when missing. Each version of the build script has
 * its own directory (CACHE/<recipe>), so worktrees with different versions do not rebuild
 * over each other; the downloaded packages (CACHE/debs) are shared. PROGRESS gets the
 * build's log lines, debootstrap's included, as they come (a build takes minutes).
 */
export async function sampleOs(progress?: (line: string) => void, cache = SAMPLE_OS_CACHE): Promise<SampleOs> {
  // Comments do not change the system: a reworded one does not cost a rebuild.
  const code = readFileSync(BUILD_SCRIPT, "utf8")
    .split("\n")
    .filter((l) => !/^\s*#/.test(l))
    .join("\n");
  const recipe = createHash("sha256").update(code).digest("hex");
  const dir = join(cache, recipe.slice(0, 16));
  // info is written last: a directory without it is a build that did not finish. Test files
  // running side by side ask at once: one builds, the others wait and find it built.
  if (!existsSync(join(dir, "info"))) await withLock(`${dir}.lock`, () => buildOnce(cache, dir, recipe, progress), 3600);
  const info = Object.fromEntries(
    readFileSync(join(dir, "info"), "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split("=", 2) as [string, string]),
  );
  return { tar: join(dir, "rootfs.tar"), kernel: info.kernel! };
}

async function buildOnce(cache: string, dir: string, recipe: string, progress?: (line: string) => void): Promise<void> {
  if (existsSync(join(dir, "info"))) return;
  mkdirSync(dir, { recursive: true });
  const flat = join(cache, "recipe");
  if (existsSync(flat) && readFileSync(flat, "utf8").trim() === recipe && existsSync(join(cache, "info"))) {
    // Built before versions had their own directories: moved, not rebuilt.
    for (const f of ["rootfs.tar", "debootstrap.log", "info"]) if (existsSync(join(cache, f))) renameSync(join(cache, f), join(dir, f));
    rmSync(flat);
  } else {
    mkdirSync(join(cache, "debs"), { recursive: true });
    rmSync(join(dir, "debs"), { recursive: true, force: true });
    symlinkSync("../debs", join(dir, "debs"));
    const run = execa("bash", [BUILD_SCRIPT, dir], { reject: false, all: true, stdin: "ignore" });
    const lines = (b: Buffer) => b.toString().split("\n").filter(Boolean).forEach((l) => progress?.(l.replace(/^\[sample-os [\d:]+\] /, "")));
    run.stderr.on("data", lines);
    // debootstrap, most of the build, writes to its own log: its latest line, every few seconds.
    const log = join(dir, "debootstrap.log");
    const tick = setInterval(() => {
      if (progress && existsSync(log) && Date.now() - statSync(log).mtimeMs < 30_000) progress(readFileSync(log, "utf8").trimEnd().split("\n").at(-1)!);
    }, 3000);
    const r = await run.finally(() => clearInterval(tick));
    if (r.exitCode !== 0) throw new Error(`scripts/sample-os/build.sh failed (exit ${r.exitCode}):\n${String(r.all).slice(-3000)}`);
  }
}

/** Puts Lifeboat's capture.sh into the sample system's /root (ROOT: its mounted root): it runs at the next boot. */
export function installCapture(root: string): void {
  copyFileSync(CAPTURE_SH, join(root, "root/capture.sh"));
}

/**
 * The layout the booted sample system captured of itself (`capture.sh --stdout`), read from
 * its powered-off disk image: ROOT_OFFSET is the byte offset of its root filesystem.
 */
export async function readCapture(disk: string, rootOffset: number): Promise<DiskLayout> {
  const mnt = `${disk}.capture-mnt`;
  mkdirSync(mnt, { recursive: true });
  // A loop device of its own: mount -o loop refuses while the restore's loop device of the same
  // file, detached with `losetup -d` while still open, has not gone yet ("overlapping loop device").
  const loop = (await execa("losetup", ["-f", "--show", "-r", "-o", String(rootOffset), disk])).stdout.trim();
  try {
    await execa("mount", ["-o", "ro", loop, mnt]);
    const file = join(mnt, "root/capture.json");
    if (!existsSync(file)) throw new Error(`the sample system wrote no /root/capture.json (capture.sh did not run at boot)`);
    const err = readFileSync(join(mnt, "root/capture.err"), "utf8");
    const text = readFileSync(file, "utf8");
    if (!text.trim()) throw new Error(`capture.sh printed nothing; its stderr: ${err}`);
    return layoutFromCapture(parseCapture(JSON.parse(text)));
  } finally {
    await execa("umount", [mnt], { reject: false });
    await execa("losetup", ["-d", loop], { reject: false });
    rmSync(mnt, { recursive: true, force: true });
  }
}
