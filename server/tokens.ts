import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** Bearer tokens (admin, host capture, job boot): made here, stored only as hashes, compared in constant time. */
export function newToken(): string {
  return randomBytes(24).toString("base64url");
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export function tokensEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

/** The one-time code's alphabet: no 0/O or 1/I (32 symbols, so each byte maps evenly), so a code read off a screen is typed right. */
const CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/** A one-time code an admin reads and types on a console: 12 symbols (60 bits), shown as XXXX-XXXX-XXXX. */
export function newOneTimeCode(): string {
  const bytes = randomBytes(12);
  const s = [...bytes].map((b) => CODE_ALPHABET[b % CODE_ALPHABET.length]).join("");
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8)}`;
}

/** A typed code as it is compared: upper case, without dashes and blanks. Pure. */
export function normaliseOneTimeCode(typed: string): string {
  return typed.toUpperCase().replace(/[\s-]/g, "");
}
