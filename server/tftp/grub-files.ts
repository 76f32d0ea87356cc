/**
 * What the signed GRUB (shim → grubx64.efi, server/dhcp/firmware.ts SIGNED_BOOT_LOADERS) reads
 * over TFTP besides the loaders: its entry configuration (pxe/grub.cfg), each machine's own
 * configuration, made by the boot service from the same decision as iPXE's script (the TFTP
 * request's address is the requester the policy checks against Lifeboat's DHCP answer), and
 * the rescue kernel and initramfs from the image directory.
 */
import { join } from "node:path";
import type { ServerContext } from "../context.ts";
import { GRUB_ENTRY, GRUB_RESCUE_FILES, grubConfigMac, grubEntry } from "../jobs/boot-scripts.ts";
import { normalizeMac } from "../mac.ts";
import type { Generator } from "./files.ts";

/** The TFTP generator of `lifeboat serve`; `base`: the HTTP base URL the rescue agent gets on its command line. */
export function grubFiles(ctx: ServerContext, base: () => string): Generator {
  return (name, client) => {
    if (name === GRUB_ENTRY) return Buffer.from(grubEntry());
    const file = GRUB_RESCUE_FILES[name];
    if (file) return { path: join(ctx.config.dataDir, "image", file) };
    const mac = grubConfigMac(name);
    if (mac === undefined) return undefined;
    return ctx.boot.boot({ mac: normalizeMac(mac), requester: client.address, base: base(), format: "grub" }).then((r) => Buffer.from(r.script));
  };
}
