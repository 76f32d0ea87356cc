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
