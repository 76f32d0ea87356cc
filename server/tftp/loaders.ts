import { copyFileSync, existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log.ts";

/** Where Debian's `ipxe` package puts its binaries. */
export const IPXE_DIR = "/usr/lib/ipxe";
/** The boot loaders Lifeboat hands out (see BOOT_LOADERS in server/dhcp/firmware.ts); ipxe.efi as the fallback for odd UEFI NICs. */
export const LOADER_FILES = ["undionly.kpxe", "snponly.efi", "ipxe.efi"];

/**
 * Copies iPXE's boot loaders from the Debian package into the TFTP root when missing or
 * changed (a package upgrade), so they are never committed and always match the package.
 */
export function installBootLoaders(root: string, log: Logger, from = IPXE_DIR): string[] {
  mkdirSync(root, { recursive: true });
  const copied: string[] = [];
  for (const name of LOADER_FILES) {
    const src = join(from, name);
    const dst = join(root, name);
    if (!existsSync(src)) {
      log.warn(`${src} is missing: machines needing ${name} cannot boot (apt-get install ipxe)`);
      continue;
    }
    const s = statSync(src);
    const d = existsSync(dst) ? statSync(dst) : undefined;
    if (d && d.size === s.size && d.mtimeMs >= s.mtimeMs) continue;
    copyFileSync(src, dst);
    copied.push(name);
  }
  if (copied.length) log.info({ root, copied }, `boot loaders copied from ${from}`);
  return copied;
}
