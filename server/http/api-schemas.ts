import { z } from "zod";
import { isMac, normalizeMac, normalizeMacPrefix } from "../mac.ts";

/**
 * Request bodies of the admin API: the one definition the routes validate with, the
 * OpenAPI document publishes and the CLI builds its requests from.
 */
const mac = z.string().refine(isMac, { message: "expected a MAC address" }).transform(normalizeMac);

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
    /**
     * The machine may get its boot token without an answer from Lifeboat's DHCP (dhcp.mode off,
     * a relay, a typed URL): then whoever asks for its MAC's boot script gets one. See the README.
     */
    trustHttpBoot: z.boolean().optional(),
  })
  .refine((b) => (b.mac ? 1 : 0) + (b.macs?.length ? 1 : 0) === 1, { message: "give mac or macs" });
export type ArmBody = z.input<typeof armBodySchema>;

export const profileBodySchema = z.object({
  host: z.string().min(1),
  layoutVersion: z.number().int().positive().nullable().default(null),
  at: z.string().regex(/^\d{8}(\d{6})?$/, "expected an Amanda datestamp YYYYMMDD[hhmmss]").nullable().default(null),
  options: z
    .object({
      /** Captured disk → serial:X, wwn:X, by-id:X or none (a profile names no kernel names: no machine has been seen). */
      mapping: z.record(z.string(), z.string()).optional(),
      includeRemovable: z.boolean().optional(),
      migration: z.enum(["proportional", "exact"]).optional(),
      bootloader: z.enum(["auto", "none"]).optional(),
      hostnamePattern: z.string().optional(),
      // Accepted once and never run: refused until a step runs them (a refinement, so the reason reaches the caller).
      postRestoreHooks: z
        .array(z.string())
        .refine((hooks) => hooks.length === 0, "post-restore hooks are not run by Lifeboat: remove them from the profile")
        .optional(),
    })
    .default({}),
});
export type ProfileBody = z.input<typeof profileBodySchema>;

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
