import { isIPv4 } from "node:net";
import { z } from "zod";
import { PARTITION } from "../layout/layout-validate.ts";
import { isMac, normalizeMac, normalizeMacPrefix } from "../mac.ts";
import type { HostRecord, PlanChoices, StaticAddress } from "../store/types.ts";
import { addressPatternProblem } from "../plan/clone-address.ts";
import { everyProblem } from "../drill/every.ts";
import { checkProblem, guestAddressProblem } from "../drill/checks.ts";

/** A refinement from a function that answers a one-line problem or null. */
const refineWith = (problem: (s: string) => string | null) => (s: string, ctx: z.RefinementCtx) => {
  const p = problem(s);
  if (p) ctx.addIssue({ code: "custom", message: p });
};
import { NET_BOOTS, POWER_ACTIONS, type PowerConfig, normalizeFingerprint } from "../power/power.ts";
import { END_STATES } from "../plan/steps.ts";
import { BOND_MODES, type RescueNet } from "../plan/cmdline.ts";
import { NIC_NAME } from "../plan/nics.ts";

/**
 * Request bodies of the admin API: the one definition the routes validate with, the
 * OpenAPI document publishes and the CLI builds its requests from.
 */
const mac = z.string().refine(isMac, { message: "expected a MAC address" }).transform(normalizeMac);

const ipv4 = z.string().refine((a) => isIPv4(a), "expected an IPv4 address");
/** 10.0.5.20/24: an IPv4 address and a prefix length 1-32. */
function isIpv4Prefix(s: string): boolean {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(s);
  return !!m && isIPv4(m[1]!) && Number(m[2]) >= 1 && Number(m[2]) <= 32;
}

/**
 * The rescue system's network (plan/cmdline.ts RescueNet, README "Networks"): a bond of NICs by
 * MAC, a VLAN, a static address with gateway and DNS; nothing set is DHCP on the NIC that booted.
 */
export const rescueNetSchema = z
  .strictObject({
    bond: z
      .strictObject({
        mode: z.enum(BOND_MODES),
        macs: z
          .array(mac)
          .refine((ms) => ms.length >= 2 && ms.length <= 8, "a bond needs two to eight NICs (MACs)")
          .refine((ms) => new Set(ms).size === ms.length, "expected each bond member once"),
      })
      .optional(),
    // Refinements, not JSON Schema patterns and bounds: those would be the caller's error message.
    vlan: z.number().refine((v) => Number.isInteger(v) && v >= 1 && v <= 4094, "expected a VLAN id 1-4094").optional(),
    address: z.string().refine(isIpv4Prefix, "expected an IPv4 address with its prefix, e.g. 10.0.5.20/24").optional(),
    gateway: ipv4.optional(),
    dns: z.array(ipv4).refine((d) => d.length <= 3, "expected at most 3 DNS servers").optional(),
    // Goes on the kernel command line as lifeboat.server: scheme, host and port only.
    server: z
      .string()
      .refine((u) => /^https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?\/?$/.test(u), "expected Lifeboat's URL as the rescue system reaches it: scheme, host and port, e.g. http://10.0.20.1:8080")
      .transform((u) => u.replace(/\/$/, ""))
      .optional(),
  })
  .refine((n) => n.address || (!n.gateway && !n.dns?.length), "a gateway or DNS servers go with a static address (without one the rescue system takes them from DHCP)") satisfies z.ZodType<RescueNet>;

/** The restored system's static address (set_address): 10.0.5.21/24, a gateway, up to 3 DNS servers. */
const staticAddressSchema = z.strictObject({
  address: z.string().refine(isIpv4Prefix, "expected an IPv4 address with its prefix, e.g. 10.0.5.21/24"),
  gateway: ipv4.optional(),
  dns: z.array(ipv4).refine((d) => d.length <= 3, "expected at most 3 DNS servers").optional(),
}) satisfies z.ZodType<StaticAddress>;

/** The plan builder's choices a profile or a job may make (the job's win over the profile's). */
export const planChoicesSchema = z.object({
  /** New UUIDs everywhere, fstab/crypttab rewritten to match (fix_fstab): clones beside their template. */
  newUuids: z.boolean().optional(),
  /** The captured partition that takes the rest of a bigger disk (default: the last resizable one). */
  // A refinement, not a pattern: the JSON Schema's regex would be the caller's error message.
  grow: z
    .string()
    .refine((p) => PARTITION.test(p), "expected a captured partition, e.g. /dev/sda2 or /dev/nvme0n1p3")
    .optional(),
  /** What the machine does once the job is done: reboot into the restored system (default), poweroff, or hold in the rescue system. */
  endState: z.enum(END_STATES).optional(),
  /** How the rescue system reaches Lifeboat; absent: DHCP on the NIC that booted. */
  rescueNet: rescueNetSchema.optional(),
  /** Captured NIC name → the new machine's NIC by MAC, for the restored system's network (default: by MAC, then by order). */
  nicMap: z
    .record(z.string(), mac)
    .superRefine((m, ctx) => {
      for (const name of Object.keys(m))
        if (!NIC_NAME.test(name)) ctx.addIssue({ code: "custom", path: [name], message: "expected a NIC name (1-15 letters, digits, '_', '.', '-')" });
    })
    .optional(),
  /** The restored system's own static address on its captured default-route NIC (clones: from the profile's cloneAddress). */
  address: staticAddressSchema.optional(),
}) satisfies z.ZodType<PlanChoices>;

export const armBodySchema = z
  .object({
    /** One machine, or many for mass cloning. */
    mac: z.string().optional(),
    macs: z.array(z.string()).optional(),
    kind: z.enum(["recover", "clone"]).default("recover"),
    profile: z.string().optional(),
    at: z.string().regex(/^\d{8}(\d{6})?$/, "expected an Amanda datestamp YYYYMMDD[hhmmss]").optional(),
    expiresHours: z.number().positive().max(24 * 30).optional(),
    /** Clones: `{n}` is the clone's number from 1, `{mac}` its MAC without colons. */
    hostnamePattern: z.string().optional(),
    options: planChoicesSchema.optional(),
    /**
     * The machine may get its boot token without an answer from Lifeboat's DHCP (dhcp.mode off,
     * a relay, a typed URL): then whoever asks for its MAC's boot script gets one. See the README.
     */
    trustHttpBoot: z.boolean().optional(),
    /**
     * Power the machine through its host's power config once armed (jobs arm --power): a
     * one-time network boot, then on; a machine that is on is refused unless `force`. With
     * `macs`, every MAC's host needs a power config, and the machines are powered in waves of
     * config power.waveSize (each job's `powerWave` says where it is).
     */
    power: z.object({ force: z.boolean().default(false) }).optional(),
  })
  .refine((b) => (b.mac ? 1 : 0) + (b.macs?.length ? 1 : 0) === 1, { message: "give mac or macs" });
export type ArmBody = z.input<typeof armBodySchema>;

/** `lifeboat drill HOST`: the restore point and what the restored console shows once up (server/drill/). */
export const drillBodySchema = z.object({
  at: z.string().regex(/^\d{8}(\d{6})?$/, "expected an Amanda datestamp YYYYMMDD[hhmmss]").optional(),
  /** A regular expression; default: config drill.readyPattern (a login prompt). */
  ready: z.string().min(1).max(500).optional(),
  /** Checks once it is up: tcp:PORT, ssh:COMMAND (drill/checks.ts); default: the host's own profile's drillChecks. */
  checks: z.array(z.string().superRefine(refineWith(checkProblem))).max(16).optional(),
  /** The restored system's own address (ADDR/PREFIX) the checks reach; default: the profile's drillAddress, else DHCP. */
  address: z.string().superRefine(refineWith(guestAddressProblem)).optional(),
});
export type DrillBody = z.input<typeof drillBodySchema>;

export const profileBodySchema = z.object({
  host: z.string().min(1),
  layoutVersion: z.number().int().positive().nullable().default(null),
  at: z.string().regex(/^\d{8}(\d{6})?$/, "expected an Amanda datestamp YYYYMMDD[hhmmss]").nullable().default(null),
  options: planChoicesSchema
    .extend({
      /** Captured disk → serial:X, wwn:X, by-id:X or none (a profile names no kernel names: no machine has been seen). */
      mapping: z.record(z.string(), z.string()).optional(),
      includeRemovable: z.boolean().optional(),
      migration: z.enum(["proportional", "exact"]).optional(),
      bootloader: z.enum(["auto", "none"]).optional(),
      hostnamePattern: z.string().optional(),
      /** Clones' own addresses: one octet {n} or {n+K} (n: the clone's number from 1), e.g. 10.0.5.{n+20}/24. */
      cloneAddress: z
        .strictObject({
          pattern: z.string().superRefine((p, ctx) => {
            const problem = addressPatternProblem(p);
            if (problem) ctx.addIssue({ code: "custom", message: problem });
          }),
          gateway: ipv4.optional(),
          dns: z.array(ipv4).refine((d) => d.length <= 3, "expected at most 3 DNS servers").optional(),
        })
        .optional(),
      /** A host's own profile: how often its drill runs, e.g. 7d, 12h, 90m, 2w, or off (over config drill.every). */
      drillEvery: z.string().superRefine(refineWith(everyProblem)).optional(),
      /** A host's own profile: its drills' checks (tcp:PORT, ssh:COMMAND) and the address they reach. */
      drillChecks: z.array(z.string().superRefine(refineWith(checkProblem))).max(16).optional(),
      drillAddress: z.string().superRefine(refineWith(guestAddressProblem)).optional(),
      // Accepted once and never run: refused until a step runs them (a refinement, so the reason reaches the caller).
      postRestoreHooks: z
        .array(z.string())
        .refine((hooks) => hooks.length === 0, "post-restore hooks are not run by Lifeboat: remove them from the profile")
        .optional(),
    })
    .default({}),
});
export type ProfileBody = z.input<typeof profileBodySchema>;

/** A host as the API and CLI show it: never its token hash. */
export function hostView(h: HostRecord) {
  return { name: h.name, macs: h.macs, smbiosUuid: h.smbiosUuid, amandaConfig: h.amandaConfig, dleMap: h.dleMap, createdAt: h.createdAt };
}

export const hostBodySchema = z.object({
  name: z.string().refine((n) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(n), "expected letters, digits, '.', '_' or '-'"),
  macs: z.array(mac).default([]),
  /** SMBIOS UUID (iPXE ${uuid}). */
  smbiosUuid: z.string().min(1).nullable().default(null),
  /** The Amanda config (a name under `amanda:`) that backs it up. */
  amandaConfig: z.string().min(1).nullable().default(null),
  /** Amanda DLE (disk name) → the mount point it restores to. */
  dleMap: z.record(z.string().min(1), z.string().refine((m) => m.startsWith("/"), "expected an absolute mount point")).default({}),
});
export type HostBody = z.input<typeof hostBodySchema>;

export const assignBodySchema = z.object({ mac, profile: z.string().min(1) });
export type AssignBody = z.input<typeof assignBodySchema>;

/** Captured disk → target: a kernel name, /dev path, serial:X, wwn:X, by-id:X, or none (left out). Stored as the target's identity. */
export const mapBodySchema = z.object({ mapping: z.record(z.string(), z.string()) });
export type MapBody = z.input<typeof mapBodySchema>;

/** A MAC or the first bytes of one (vendor OUI, a rack's range), in one spelling. */
const macPrefix = z.string().refine((v) => {
  try {
    normalizeMacPrefix(v);
    return true;
  } catch {
    return false;
  }
}, { message: "expected a MAC or whole bytes of one, e.g. 00:25:90 or 52:54:00:00:01" }).transform(normalizeMacPrefix);

export const cloneWindowBodySchema = z.object({
  profile: z.string().min(1),
  minutes: z.number().positive().max(24 * 60),
  hostnamePattern: z.string().optional(),
  /** Only these MACs or MAC prefixes become clones; absent or empty: any unknown MAC. */
  only: z.array(macPrefix).max(1024).optional(),
});
export type CloneWindowBody = z.input<typeof cloneWindowBodySchema>;

const password = z.string().min(1, "expected the BMC user's password");
const hostOrIp = z.string().refine((h) => /^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252})$/.test(h), "expected a host name or IP address");

/** A host's power config (hosts power-config): the password is sealed in the store and never shown again. */
export const powerConfigBodySchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("ipmi"),
    /** The BMC's host name or IP address. */
    address: hostOrIp,
    port: z.number().int().min(1).max(65535).default(623),
    user: z.string().min(1),
    password,
    /** RMCP+ cipher suite (ipmitool -C): 3 (SHA1, AES) is what most BMCs take; 17 (SHA256) the newer ones. */
    cipherSuite: z.number().int().min(0).max(17).default(3),
  }),
  z.object({
    kind: z.literal("redfish"),
    url: z.string().refine((u) => /^https?:\/\/[^/\s]+\/?$/.test(u), "expected the service root's scheme and host, e.g. https://10.0.0.5"),
    user: z.string().min(1),
    password,
    netBoot: z.enum(NET_BOOTS).default("pxe"),
    /** The service's certificate, pinned: its SHA-256 fingerprint (a BMC's self-signed certificate no CA vouches for). */
    tlsFingerprint: z
      .string()
      .transform((f, ctx) => normalizeFingerprint(f) ?? (ctx.addIssue({ code: "custom", message: "expected a SHA-256 fingerprint: 32 bytes in hex, colon-separated or not" }), z.NEVER))
      .optional(),
  }).refine((r) => r.tlsFingerprint === undefined || r.url.startsWith("https://"), { message: "tlsFingerprint pins an https service's certificate: the url must be https://", path: ["tlsFingerprint"] }),
  z.object({ kind: z.literal("wol") }),
]);
export type PowerConfigBody = z.input<typeof powerConfigBodySchema>;

/** The stored config and the password, apart (pure). */
export function splitPowerConfig(body: z.output<typeof powerConfigBodySchema>): { config: PowerConfig; password: string | null } {
  if (body.kind === "wol") return { config: body, password: null };
  const { password: secret, ...config } = body;
  return { config, password: secret };
}

export const powerActionBodySchema = z.object({ action: z.enum(POWER_ACTIONS) });
export type PowerActionBody = z.input<typeof powerActionBodySchema>;

/** The OpenPGP armour of a secret key (gpg --export-secret-keys --armor). */
export const SECRET_KEY_ARMOUR = "-----BEGIN PGP PRIVATE KEY BLOCK-----";

/**
 * An Amanda config's key for its encrypted dumps (amanda key set; server/amanda/decrypt.ts):
 * the passphrase (amcryptsimple's .am_passphrase, or the one protecting the secret key) and/or
 * the armoured OpenPGP secret key amgpgcrypt encrypted to. Sealed in the store, never shown again.
 */
export const amandaKeyBodySchema = z
  .strictObject({
    passphrase: z.string().min(1).max(4096).refine((p) => !/[\r\n]/.test(p), "a passphrase is one line").optional(),
    secretKey: z
      .string()
      .max(1 << 20)
      .refine((k) => k.trimStart().startsWith(SECRET_KEY_ARMOUR), `expected an armoured OpenPGP secret key (${SECRET_KEY_ARMOUR}; gpg --export-secret-keys --armor)`)
      .optional(),
  })
  .refine((b) => b.passphrase !== undefined || b.secretKey !== undefined, "give a passphrase, a secret key or both");
export type AmandaKeyBody = z.input<typeof amandaKeyBodySchema>;
