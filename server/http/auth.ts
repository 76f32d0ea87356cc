import { mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { FastifyReply, FastifyRequest } from "fastify";
import { UserError } from "../errors.ts";
import { ensurePrivateFile } from "../private-file.ts";
import { newToken, tokensEqual } from "../tokens.ts";

/** Reads the admin token, creating it (mode 0600) on first start. */
export function ensureAdminToken(file: string): string {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  ensurePrivateFile(file, () => `${newToken()}\n`);
  return readAdminToken(file);
}

export function readAdminToken(file: string): string {
  try {
    return readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new UserError(
      `${file}: cannot read the admin token (${(err as NodeJS.ErrnoException).code ?? String(err)}); is the server started with the same --data-dir?`,
    );
  }
}

export function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h?.startsWith("Bearer ")) return undefined;
  return h.slice(7).trim();
}

/** A preHandler that answers 401 (and logs it) unless the request carries the admin token. */
export function requireAdmin(adminToken: string) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const t = bearer(req);
    if (!t || !tokensEqual(t, adminToken)) {
      req.log.warn({ url: req.url, ip: req.ip }, t ? "wrong admin token" : "missing admin token");
      return reply.code(401).send({ error: "unauthorized", message: "admin bearer token required" });
    }
  };
}
