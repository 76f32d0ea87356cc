import swagger from "@fastify/swagger";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { ServerContext } from "../context.ts";
import { healthRoutes } from "./routes/health.ts";

/** One line per request, at debug: a busy boot server would drown its info log otherwise. */
class RequestsAtDebug extends LogController {
  override incomingRequest(): void {}
  override requestCompleted(err: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    req.log.debug(
      { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime), err },
      "request",
    );
  }
}

/**
 * Builds the fastify app with every route group registered. No socket: `serve` listens,
 * tests call `app.inject()`. Each route declares its JSON schema; together they are the
 * OpenAPI document at /api/v1/openapi.json.
 */
export async function buildApp(ctx: ServerContext): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: ctx.log.child({ svc: "http" }) as FastifyBaseLogger,
    logController: new RequestsAtDebug(),
    // Dump streams can be long: no overall request timeout.
    requestTimeout: 0,
    bodyLimit: 16 * 1024 * 1024,
  });
  await app.register(swagger, {
    openapi: {
      info: { title: "Lifeboat API", version: "1" },
      components: {
        securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      },
    },
  });
  await app.register(healthRoutes(ctx));
  app.get("/api/v1/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  return app;
}
