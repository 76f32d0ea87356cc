import { mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { FastifyRequest } from "fastify";
import { UserError } from "../errors.ts";
import { ensurePrivateFile } from "../private-file.ts";
import type { Store } from "../store/types.ts";
import { hashToken, newToken, tokensEqual } from "../tokens.ts";
import { HttpError } from "./errors.ts";

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

/** Each rule may depend on the request (the capture upload's token depends on its format). */
type PerRequest<R, T> = T | ((req: R) => T);

/**
 * Which bearer tokens a route takes. `admin`: the admin token. `host`: the capture token of
 * the host named by the URL's `:name`. `job`: a job's boot token, judged by the route's own
 * check (an agent route: the token of the job in its URL; a dump stream: an active job whose
 * plan streams that dump). `message`: the 401's one line; `refused` is told of each refusal.
 */
export interface TokenRule<R extends FastifyRequest> {
  admin?: PerRequest<R, boolean>;
  host?: PerRequest<R, boolean>;
  job?: (req: R, token: string) => Promise<boolean>;
  message: PerRequest<R, string>;
  refused?: (req: R) => void;
}

export interface TokenContext {
  adminToken: string;
  store: Pick<Store, "hosts">;
}

const per = <R, T>(value: PerRequest<R, T>, req: R): T => (typeof value === "function" ? (value as (req: R) => T)(req) : value);

/** The one preHandler for bearer tokens: a request no rule lets in is a 401 (logged), thrown as an HttpError. */
export function requireToken<R extends FastifyRequest = FastifyRequest>(ctx: TokenContext, rule: TokenRule<R>) {
  const allowed = async (req: R, token: string): Promise<boolean> => {
    if (per(rule.admin ?? false, req) && tokensEqual(token, ctx.adminToken)) return true;
    if (per(rule.host ?? false, req)) {
      const host = await ctx.store.hosts.get((req.params as { name?: string }).name ?? "");
      if (host && tokensEqual(hashToken(token), host.tokenHash)) return true;
    }
    return !!rule.job && (await rule.job(req, token));
  };
  return async (req: R) => {
    const token = bearer(req);
    if (token && (await allowed(req, token))) return;
    rule.refused?.(req);
    req.log.warn({ url: req.url, ip: req.ip }, token ? "request with a wrong token" : "request without a token");
    throw new HttpError(401, "unauthorized", per(rule.message, req));
  };
}

/** The admin token, for the admin's routes. */
export const requireAdmin = (ctx: TokenContext) => requireToken(ctx, { admin: true, message: "admin bearer token required" });
