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
