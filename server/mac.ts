import { UserError } from "./errors.ts";

/**
 * Accepts a MAC in any common spelling (`AA:BB:..`, `aa-bb-..`, `aabb.ccdd.eeff`, `aabbccddeeff`,
 * iPXE's `01-aa-bb-..` hardware-type prefix) and returns it one way: lower case, colon separated.
 */
export function normalizeMac(input: string): string {
  let hex = input.trim().toLowerCase().replace(/[^0-9a-f]/g, "");
  if (hex.length === 14 && hex.startsWith("01")) hex = hex.slice(2);
  if (hex.length !== 12 || /[^0-9a-f:.\- ]/i.test(input.trim().replace(/^01[-:]/, "")))
    throw new UserError(`not a MAC address: ${JSON.stringify(input)} (expected six hex bytes, e.g. 52:54:00:12:34:56)`, 2);
  return hex.match(/../g)!.join(":");
}

export function isMac(input: string): boolean {
  try {
    normalizeMac(input);
    return true;
  } catch {
    return false;
  }
}

/**
 * A MAC or the first 1 to 5 bytes of one (a vendor's OUI `00:25:90`, a rack's range
 * `52:54:00:00:01`), `:` or `-` separated, in one spelling: lower case, colon separated.
 */
export function normalizeMacPrefix(input: string): string {
  const parts = input.trim().toLowerCase().split(/[:-]/);
  if (parts.length === 6) return normalizeMac(input);
  if (parts.length > 5 || !parts.every((p) => /^[0-9a-f]{2}$/.test(p)))
    throw new UserError(`not a MAC or MAC prefix: ${JSON.stringify(input)} (expected whole hex bytes, e.g. 00:25:90 or 52:54:00:12:34:56)`, 2);
  return parts.join(":");
}

/** Does `mac` (normalised) fall under one of the prefixes (normalised; whole MACs match themselves)? */
export function macUnderPrefix(mac: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => mac === p || mac.startsWith(`${p}:`));
}
