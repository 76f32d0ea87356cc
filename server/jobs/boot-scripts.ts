/**
 * The iPXE scripts a booting machine gets (templates in pxe/) and the base URL it reaches us
 * at. Rendering is pure; the boot service decides which script a machine gets.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type RescueNet, renderKernelArgs, rescueNetArgs } from "../plan/cmdline.ts";
import type { JobRecord } from "../store/types.ts";

const pxeDir = join(dirname(fileURLToPath(import.meta.url)), "../../pxe");
const templates = new Map<string, string>();

type Template = "boot.ipxe" | "rescue.ipxe" | "exit.ipxe" | "grub.cfg" | "rescue.grub" | "local.grub";

function template(name: Template): string {
  let t = templates.get(name);
  if (t === undefined) {
    t = readFileSync(join(pxeDir, name), "utf8");
    templates.set(name, t);
  }
  return t;
}

function fill(t: string, vars: Record<string, string>): string {
  return t.replace(/\{\{(\w+)\}\}/g, (_m, k: string) => {
    const v = vars[k];
    if (v === undefined) throw new Error(`pxe template: no value for {{${k}}}`);
    return v;
  });
}

/** Serial and screen: the rescue system is also helped remotely over a serial console. */
export const RESCUE_CONSOLE = "console=tty0 console=ttyS0,115200n8";

/** Stands in for the per-boot token in previews: the real one is issued when the machine asks. */
export const PREVIEW_TOKEN = "TOKEN-ISSUED-AT-BOOT";

/**
 * The base URL a booting machine uses for us, the one place it is computed: http.publicUrl
 * when set, else the address (host:port) it reached us at or, for DHCP answers and previews,
 * the one it will.
 */
export function bootBaseUrl(publicUrl: string, reachedAt: string, protocol = "http"): string {
  return publicUrl.replace(/\/+$/, "") || `${protocol}://${reachedAt}`;
}

/** The entry script every iPXE fetches first (GET /boot.ipxe). */
export function entryScript(base: string): string {
  return fill(template("boot.ipxe"), { base });
}

/** Which boot loader asks for a machine's script: iPXE (GET /boot/ipxe) or the signed GRUB (TFTP, grubConfigMac). */
export const SCRIPT_FORMATS = ["ipxe", "grub"] as const;
export type ScriptFormat = (typeof SCRIPT_FORMATS)[number];

/** The signed GRUB's entry configuration (TFTP grub/grub.cfg). */
export const GRUB_ENTRY = "grub/grub.cfg";

/** The TFTP name of a machine's GRUB configuration (pxe/grub.cfg asks for `${prefix}/lifeboat/${net_default_mac}.cfg`) → its MAC. Pure. */
export function grubConfigMac(name: string): string | undefined {
  return /^grub\/lifeboat\/([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})\.cfg$/.exec(name)?.[1];
}

/** The rescue files under these TFTP names (pxe/rescue.grub), from the image directory. */
export const GRUB_RESCUE_FILES: Readonly<Record<string, "vmlinuz" | "initramfs">> = { "lifeboat/vmlinuz": "vmlinuz", "lifeboat/initramfs": "initramfs" };

/** The entry configuration of the signed GRUB; the same for every machine. */
export function grubEntry(): string {
  return template("grub.cfg");
}

/**
 * The per-machine script, for iPXE or for the signed GRUB: the rescue kernel with the kernel
 * arguments of server/plan/cmdline.ts for a job (with its rescue network, if any: it may name
 * another URL for Lifeboat than the one this boot reached), the way back to the local disk for anyone
 * else. Pure.
 */
export function machineScript(o: { base: string; mac: string; job?: Pick<JobRecord, "id">; token?: string; net?: RescueNet; format?: ScriptFormat }): string {
  const grub = o.format === "grub";
  if (!o.job) return fill(template(grub ? "local.grub" : "exit.ipxe"), { mac: o.mac });
  const args = renderKernelArgs({ server: o.net?.server ?? o.base, job: o.job.id, token: o.token ?? "", mac: o.mac, ...rescueNetArgs(o.net) });
  return fill(template(grub ? "rescue.grub" : "rescue.ipxe"), { base: o.base, mac: o.mac, job: o.job.id, args, console: RESCUE_CONSOLE });
}
