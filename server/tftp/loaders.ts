import { copyFileSync, existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log.ts";
import { SHIM_LOADER, SIGNED_GRUB } from "../dhcp/firmware.ts";

/** Where Debian's `ipxe` package puts its binaries. */
export const IPXE_DIR = "/usr/lib/ipxe";
/** The boot loaders Lifeboat hands out (see BOOT_LOADERS in server/dhcp/firmware.ts); ipxe.efi as the fallback for odd UEFI NICs. */
export const LOADER_FILES = ["undionly.kpxe", "snponly.efi", "ipxe.efi"];
/** The signed chain (SIGNED_BOOT_LOADERS), put into the rescue image directory by `lifeboat image build` (rescue-image/signed-loaders.ts). */
export const SIGNED_LOADER_FILES = [SHIM_LOADER, SIGNED_GRUB];

/**
 * Copies the boot loaders into the TFTP root when missing or changed (a package upgrade, a
 * new image build), so they are never committed and always match their source: iPXE's from
 * Debian's `ipxe` package, the signed shim and GRUB from the rescue image directory.
 */
export function installBootLoaders(root: string, log: Logger, from: { ipxe: string; image: string }): string[] {
  mkdirSync(root, { recursive: true });
  const copied: string[] = [];
  const sources = [
    ...LOADER_FILES.map((name) => ({ name, dir: from.ipxe, fix: "apt-get install ipxe" })),
    ...SIGNED_LOADER_FILES.map((name) => ({ name, dir: from.image, fix: "lifeboat image build" })),
  ];
  for (const { name, dir, fix } of sources) {
    const src = join(dir, name);
    const dst = join(root, name);
    if (!existsSync(src)) {
      log.warn(`${src} is missing: machines needing ${name} cannot boot (${fix})`);
      continue;
    }
    const s = statSync(src);
    const d = existsSync(dst) ? statSync(dst) : undefined;
    if (d && d.size === s.size && d.mtimeMs >= s.mtimeMs) continue;
    copyFileSync(src, dst);
    copied.push(name);
  }
  if (copied.length) log.info({ root, copied }, "boot loaders copied");
  return copied;
}
