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

function template(name: "boot" | "rescue" | "exit"): string {
  let t = templates.get(name);
  if (t === undefined) {
    t = readFileSync(join(pxeDir, `${name}.ipxe`), "utf8");
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
  return fill(template("boot"), { base });
}

/** The per-machine script: rescue kernel for a job (with its rescue network, if any), `exit` for anyone else. Pure. */
export function machineScript(o: { base: string; mac: string; job?: Pick<JobRecord, "id">; token?: string; net?: RescueNet }): string {
  if (!o.job) return fill(template("exit"), { mac: o.mac });
  const args = renderKernelArgs({ server: o.base, job: o.job.id, token: o.token ?? "", mac: o.mac, ...rescueNetArgs(o.net) });
  return fill(template("rescue"), { base: o.base, mac: o.mac, job: o.job.id, args, console: RESCUE_CONSOLE });
}
