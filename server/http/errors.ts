import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ZodError } from "zod";
import { ChainError } from "../amanda/chain.ts";
import { DumpStreamError } from "../amanda/stream.ts";
import { ConflictError, NotFoundError, RefusedError, TooLargeError, UserError } from "../errors.ts";
import { PowerError } from "../power/power.ts";

/**
 * An answer a route gives instead of its result: the status, a short code (`error` in the
 * body) and one line for a person; `extra` adds fields a contract names (the agent's 410
 * says the job's state). Thrown by routes and preHandlers, sent by `answerErrors`.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** The error body every route answers with on 4xx/5xx: the one shared schema, referred to as ERROR_REF. */
export const errorSchema = {
  $id: "lifeboat-error",
  type: "object",
  required: ["error", "message"],
  properties: { error: { type: "string" }, message: { type: "string" } },
} as const;
export const ERROR_REF = { $ref: "lifeboat-error#" } as const;

/** Response schemas for the given error statuses, each the shared error schema. */
export function errorResponses(...statuses: number[]): Record<number, typeof ERROR_REF> {
  return Object.fromEntries(statuses.map((s) => [s, ERROR_REF]));
}

/** What the domain's errors mean in HTTP: one status per kind, everywhere. */
function asHttpError(err: unknown, req: FastifyRequest): HttpError | undefined {
  if (err instanceof HttpError) return err;
  if (err instanceof NotFoundError) return new HttpError(404, "not-found", err.message);
  if (err instanceof ConflictError) return new HttpError(409, "conflict", err.message);
  if (err instanceof RefusedError) return new HttpError(403, "refused", err.message);
  if (err instanceof TooLargeError) return new HttpError(413, "too-large", err.message);
  if (err instanceof DumpStreamError) return new HttpError(err.status, "unavailable", err.message);
  // A BMC (or the boot interface) that failed: the peer's fault, not the request's.
  if (err instanceof PowerError) return new HttpError(502, "power", err.message);
  if (err instanceof ChainError) return new HttpError(422, "no-chain", err.message);
  if (err instanceof UserError) return new HttpError(400, "bad-request", err.message);
  if (err instanceof ZodError) {
    const issue = err.issues[0]!;
    return new HttpError(400, "bad-request", `${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  const e = err as FastifyError;
  if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") return new HttpError(413, "too-large", `request body larger than ${req.routeOptions.bodyLimit} bytes`);
  if (e.validation || (e.statusCode && e.statusCode < 500)) return new HttpError(e.statusCode ?? 400, "bad-request", e.message);
  return undefined;
}

/** The shared error schema and the one error handler: typed errors to their status, anything else a logged 500. */
export function answerErrors(app: FastifyInstance): void {
  app.addSchema(errorSchema);
  app.setErrorHandler((err, req, reply: FastifyReply) => {
    const answer = asHttpError(err, req);
    if (answer) return reply.code(answer.status).send({ error: answer.code, message: answer.message, ...answer.extra });
    req.log.error({ err }, "request failed");
    return reply.code(500).send({ error: "internal", message: "internal error (see the server log)" });
  });
}
