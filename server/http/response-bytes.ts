import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import { counter } from "../metrics.ts";
import { AGENT_BASE, DUMPS_BASE } from "../plan/agent-api.ts";

/** Which part of Lifeboat a URL belongs to, for the byte counters. */
export function routeGroup(url: string): "boot" | "dumps" | "agent" | "api" | "web" | "other" {
  const path = url.split("?")[0]!;
  if (path === "/boot.ipxe" || path.startsWith("/boot/")) return "boot";
  if (path.startsWith(`${DUMPS_BASE}/`)) return "dumps";
  if (path.startsWith(`${AGENT_BASE}/`)) return "agent";
  if (path.startsWith("/api/")) return "api";
  if (path === "/" || path.startsWith("/web/")) return "web";
  return "other";
}

/**
 * `lifeboat_http_response_bytes_total{group}`: response body bytes by route group, from
 * the Content-Length of each response sent whole. Not counted: replies streamed without
 * one (the live event stream, decompressed dumps), HEAD (no body) and responses cut off
 * (a client gone or a write error: the dump streams count their own bytes). Add it before
 * the route plugins so it covers them.
 */
export function countResponseBytes(app: FastifyInstance, registry: Registry): void {
  const bytes = counter(registry, "lifeboat_http_response_bytes_total", "HTTP response body bytes sent, by route group (boot, dumps, agent, api, web, other)", ["group"]);
  app.addHook("onResponse", async (req, reply) => {
    const length = Number(reply.getHeader("content-length"));
    if (length > 0 && req.method !== "HEAD" && !reply.raw.errored) bytes.inc({ group: routeGroup(req.routeOptions.url ?? req.url) }, length);
  });
}
