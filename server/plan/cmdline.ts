/**
 * The rescue kernel's command line: the one contract between the boot script Lifeboat
 * serves (the boot script route) and the rescue agent's /init, which reads the same
 * keys from /proc/cmdline. A test renders a line here and parses it with the agent's sh.
 */
export const KERNEL_ARG_KEYS = {
  /** Base URL of the Lifeboat server as the booting machine reaches it, e.g. http://10.0.0.5:8080 */
  server: "lifeboat.server",
  /** The job id the machine was armed with. */
  job: "lifeboat.job",
  /** The per-boot job token; the agent sends it as `Authorization: Bearer`. */
  token: "lifeboat.token",
  /** Optional: the MAC of the NIC that booted (iPXE's ${net0/mac}), so /init brings up that one. */
  mac: "lifeboat.mac",
} as const;

export interface KernelArgs {
  server: string;
  job: string;
  token: string;
  mac?: string;
}

// Values go on a kernel command line unquoted: only characters that need no quoting there.
const SAFE = /^[A-Za-z0-9._:/@%+=,[\]-]+$/;

/** Renders the lifeboat.* keys; throws on a value the kernel would split or mangle. */
export function renderKernelArgs(args: KernelArgs): string {
  const parts: string[] = [];
  for (const [field, key] of Object.entries(KERNEL_ARG_KEYS) as Array<[keyof KernelArgs, string]>) {
    const v = args[field];
    if (v === undefined) continue;
    if (!SAFE.test(v)) throw new Error(`kernel argument ${key}: unsafe value ${JSON.stringify(v)}`);
    parts.push(`${key}=${v}`);
  }
  return parts.join(" ");
}

/** Reads the lifeboat.* keys from a kernel command line (the same rule as the agent's sh). */
export function parseKernelArgs(cmdline: string): Partial<KernelArgs> {
  const out: Partial<KernelArgs> = {};
  for (const word of cmdline.trim().split(/\s+/)) {
    for (const [field, key] of Object.entries(KERNEL_ARG_KEYS) as Array<[keyof KernelArgs, string]>) {
      if (word.startsWith(`${key}=`)) out[field] = word.slice(key.length + 1);
    }
  }
  return out;
}
