/**
 * The sample machine's system: a real Debian 12 tree (kernel, initramfs-tools, GRUB for BIOS
 * and UEFI, systemd) from scripts/sample-os/build.sh, as one tar. Built once per machine into
 * /var/cache/lifeboat/sample-os (about 3½ minutes) and rebuilt when the script's code
 * changes. Booted, it prints `LIFEBOAT-SAMPLE booted host=… root=… boot=…` on its serial
 * console and powers off.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";

export const SAMPLE_OS_CACHE = process.env.LIFEBOAT_SAMPLE_OS_CACHE ?? "/var/cache/lifeboat/sample-os";
const BUILD_SCRIPT = fileURLToPath(new URL("../../scripts/sample-os/build.sh", import.meta.url));

export interface SampleOs {
  /** The system tree as a tar (numeric owners, xattrs). */
  tar: string;
  kernel: string;
  /** Bytes of the unpacked tree. */
  bytes: number;
}

/** The line the booted sample system prints on its console. */
export const SAMPLE_BOOTED = /LIFEBOAT-SAMPLE booted host=(\S+) root=(\S+) kernel=(\S+) boot=(bios|uefi)/;

/** What is missing to build the sample system here, or undefined. */
export function sampleOsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (debootstrap, chroot); CI runs as root";
  if (!existsSync("/usr/sbin/debootstrap")) return "debootstrap is missing (scripts/bootstrap installs it)";
  return undefined;
}

/** The cached sample system, built first when missing or made by another version of the script. */
export async function sampleOs(cache = SAMPLE_OS_CACHE): Promise<SampleOs> {
  // Comments do not change the system: a reworded one does not cost a rebuild.
  const code = readFileSync(BUILD_SCRIPT, "utf8")
    .split("\n")
    .filter((l) => !/^\s*#/.test(l))
    .join("\n");
  const recipe = createHash("sha256").update(code).digest("hex");
  const stamp = join(cache, "recipe");
  if (!existsSync(join(cache, "rootfs.tar")) || !existsSync(stamp) || readFileSync(stamp, "utf8").trim() !== recipe) {
    mkdirSync(cache, { recursive: true });
    const r = await execa("bash", [BUILD_SCRIPT, cache], { reject: false, all: true, stdin: "ignore" });
    if (r.exitCode !== 0) throw new Error(`scripts/sample-os/build.sh failed (exit ${r.exitCode}):\n${String(r.all).slice(-3000)}`);
    writeFileSync(stamp, `${recipe}\n`);
  }
  const info = Object.fromEntries(
    readFileSync(join(cache, "info"), "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split("=", 2) as [string, string]),
  );
  return { tar: join(cache, "rootfs.tar"), kernel: info.kernel!, bytes: Number(info.bytes) };
}
