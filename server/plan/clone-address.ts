/**
 * Clones' own static addresses (issue 21 item 4): a profile gives a pattern such as
 * `10.0.5.{n+20}/24`, where one octet is `{n}` or `{n+K}` (n: the clone's number from 1), and
 * each clone's restored system gets its address (set_address). Pure: the arm path resolves
 * the pattern (cloneStaticAddress), the plan builder writes the step (plan-stages.ts addressStep).
 */
import type { ProfileOptions, StaticAddress } from "../store/types.ts";

const OCTET = /^(\d{1,3}|\{n(?:\+(\d{1,3}))?\})$/;

/** Why PATTERN is not an address pattern, or null when it is one. */
export function addressPatternProblem(pattern: string): string | null {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(pattern);
  const octets = m ? m[1]!.split(".") : [];
  if (!m || octets.length !== 4 || !octets.every((o) => OCTET.test(o)) || Number(m[2]) < 1 || Number(m[2]) > 32)
    return `address pattern ${JSON.stringify(pattern)}: expected an IPv4 address with its prefix where one octet is {n} or {n+K}, e.g. 10.0.5.{n+20}/24`;
  const variable = octets.filter((o) => o.startsWith("{"));
  if (variable.length !== 1) return `address pattern ${pattern}: exactly one octet is {n} or {n+K} (it has ${variable.length})`;
  if (octets.some((o) => !o.startsWith("{") && Number(o) > 255)) return `address pattern ${pattern}: an octet over 255`;
  return null;
}

/** The address of clone number N (from 1) under PATTERN; throws a one-line reason when it leaves 1-254. */
export function cloneAddress(pattern: string, n: number): string {
  const problem = addressPatternProblem(pattern);
  if (problem) throw new Error(problem);
  const [ip, prefix] = pattern.split("/") as [string, string];
  const octets = ip.split(".").map((o) => {
    const m = OCTET.exec(o)!;
    return o.startsWith("{") ? n + Number(m[2] ?? 0) : Number(o);
  });
  const value = octets.find((_, i) => ip.split(".")[i]!.startsWith("{"))!;
  if (value < 1 || value > 254) throw new Error(`clone ${n}: address pattern ${pattern} gives ${value} for its {n} octet, outside 1-254`);
  return `${octets.join(".")}/${prefix}`;
}

/** Clone number N's static address under its profile's cloneAddress: the pattern's address, the profile's gateway and DNS servers (set_address's arguments). */
export function cloneStaticAddress(c: NonNullable<ProfileOptions["cloneAddress"]>, n: number): StaticAddress {
  return { address: cloneAddress(c.pattern, n), ...(c.gateway ? { gateway: c.gateway } : {}), ...(c.dns?.length ? { dns: c.dns } : {}) };
}
