import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { FastifyPluginAsync } from "fastify";
import type { ServerContext } from "../../context.ts";

/** The page's files (server/http/web/): plain HTML, CSS and JS, no build step. */
const files = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/web/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/web/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
} as const;

/**
 * The page only ever talks to this server and builds its DOM with textContent: a strict
 * policy so that even a missed escape cannot run a script or send data elsewhere.
 */
const securityHeaders = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/**
 * The admin page at `/` and its two assets. Files are read once at start (a few KiB);
 * the page asks for the admin token itself, so these routes need none.
 */
export function webRoutes(_ctx: ServerContext): FastifyPluginAsync {
  return async (app) => {
    for (const [url, { file, type }] of Object.entries(files)) {
      const body = readFileSync(new URL(`../web/${file}`, import.meta.url));
      const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 16)}"`;
      app.get(url, { schema: { hide: true } }, async (req, reply) => {
        reply.headers({ ...securityHeaders, etag, "cache-control": "no-cache" }).type(type);
        if (req.headers["if-none-match"] === etag) return reply.code(304).send();
        return reply.send(body);
      });
    }
    app.get("/favicon.ico", { schema: { hide: true } }, async (_req, reply) => reply.code(204).send());
  };
}
