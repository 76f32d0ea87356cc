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
  /**
   * Instead of job and token, on a boot medium (`lifeboat image iso --host`): a one-time code the
   * agent trades once for its job and a boot token (POST /boot/code). Neither: the agent asks on
   * the console for the server (if not given) and the code.
   */
  code: "lifeboat.code",
  /** Optional: the MAC of the NIC that booted (iPXE's ${net0/mac}), so /init brings up that one. */
  mac: "lifeboat.mac",
  /** The rescue network (rescueNetArgs below); none of these: DHCP on the boot NIC. A bond: MODE,MAC,MAC… */
  bond: "lifeboat.bond",
  /** A VLAN id (1-4094) on top of the boot NIC or the bond. */
  vlan: "lifeboat.vlan",
  /** A static address with its prefix, e.g. 10.0.5.20/24; absent: DHCP (on the VLAN or bond, if any). */
  ip: "lifeboat.ip",
  /** With lifeboat.ip: the default gateway, and the DNS servers (comma separated). */
  gw: "lifeboat.gw",
  dns: "lifeboat.dns",
} as const;

/** A network boot has server, job and token; a boot medium the server (or none: asked) and perhaps a code. */
export interface KernelArgs {
  server?: string;
  job?: string;
  token?: string;
  code?: string;
  mac?: string;
  bond?: string;
  vlan?: string;
  ip?: string;
  gw?: string;
  dns?: string;
}

/** The bond modes the rescue system sets up (the kernel's bonding driver names). */
export const BOND_MODES = ["active-backup", "802.3ad"] as const;
export type BondMode = (typeof BOND_MODES)[number];

/**
 * How the rescue system reaches Lifeboat, per profile or job (api-schemas.ts rescueNetSchema):
 * nothing set is DHCP on the NIC that booted. A bond is made of the NICs with these MACs; a VLAN
 * goes on top of the boot NIC or the bond; a static address on top of that (else DHCP there).
 */
export interface RescueNet {
  bond?: { mode: BondMode; macs: string[] };
  vlan?: number;
  /** address/prefix, e.g. 10.0.5.20/24 */
  address?: string;
  gateway?: string;
  dns?: string[];
  /**
   * The URL the rescue system reaches Lifeboat at, when its HTTP is on another network than the
   * one the machine boots from (e.g. PXE on the native VLAN, Lifeboat's HTTP only on a tagged
   * one); default: the URL the boot reached.
   */
  server?: string;
}

/** The kernel arguments of a rescue network (MACs already normalised, addresses checked by the schema). */
export function rescueNetArgs(n: RescueNet | undefined): Pick<KernelArgs, "bond" | "vlan" | "ip" | "gw" | "dns"> {
  if (!n) return {};
  return {
    ...(n.bond ? { bond: [n.bond.mode, ...n.bond.macs].join(",") } : {}),
    ...(n.vlan !== undefined ? { vlan: String(n.vlan) } : {}),
    ...(n.address ? { ip: n.address } : {}),
    ...(n.gateway ? { gw: n.gateway } : {}),
    ...(n.dns?.length ? { dns: n.dns.join(",") } : {}),
  };
}

/** One line for people (`jobs plan`, the page, `profiles show`): what the rescue system's network will be. */
export function describeRescueNet(n: RescueNet | undefined): string {
  const base = n?.bond ? `bond ${n.bond.mode} of ${n.bond.macs.join(", ")}` : "the NIC that booted";
  const on = n?.vlan !== undefined ? `VLAN ${n.vlan} on ${base}` : base;
  const lifeboat = n?.server ? `; Lifeboat at ${n.server}` : "";
  if (!n?.address) return `DHCP on ${on}${lifeboat}`;
  const extra = [n.gateway ? `gateway ${n.gateway}` : "no gateway", ...(n.dns?.length ? [`DNS ${n.dns.join(", ")}`] : [])];
  return `static ${n.address} (${extra.join(", ")}) on ${on}${lifeboat}`;
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
