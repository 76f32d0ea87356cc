import { readFileSync } from "node:fs";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import type { ServerContext } from "../../context.ts";
import { NotFoundError, UserError } from "../../errors.ts";
import { CAPTURE_LIMITS, captureScriptPath, captureTextProblem, layoutFromCapture, parseCapture } from "../../layout/layout-capture.ts";
import { type DiskLayout, parseLayout } from "../../layout/layout.ts";
import { layoutProblem } from "../../layout/layout-validate.ts";
import { requireAdmin, requireToken } from "../auth.ts";
import { errorResponses } from "../errors.ts";
import { counter } from "../../metrics.ts";

const nameParams = { type: "object", required: ["name"], properties: { name: { type: "string" } } } as const;
const anyObject = { type: "object", additionalProperties: true } as const;
const stored = {
  type: "object",
  required: ["host", "version", "capturedAt"],
  properties: { host: { type: "string" }, version: { type: "integer" }, capturedAt: { type: "string" } },
} as const;
type UploadRequest = FastifyRequest<{ Params: { name: string }; Body: { format: string } }>;

/** GET /capture.sh: the script hosts run (no auth: it holds no secret). */
export function captureScriptRoutes(): FastifyPluginAsync {
  const script = readFileSync(captureScriptPath, "utf8");
  return async (app) => {
    app.get(
      "/capture.sh",
      { schema: { summary: "The capture script (POSIX sh) hosts run from cron", tags: ["capture"], response: { 200: { type: "string" } } } },
      async (_req, reply) => reply.type("text/x-shellscript; charset=utf-8").send(script),
    );
  };
}

/**
 * Host layouts, under /api/v1/hosts: the upload (PUT: a capture with the host's own capture
 * token, a layout document with the admin token; both validated) and the stored versions (admin).
 */
export function captureRoutes(ctx: ServerContext): FastifyPluginAsync {
  const admin = requireAdmin(ctx);
  const uploads = counter(ctx.metrics, "lifeboat_capture_uploads_total", "Layout uploads by result (stored, unauthorized, invalid)", ["result"]);
  // A capture is raw tool output that Lifeboat parses itself: the host's own token. A
  // layout document says directly what to write: only the admin may hand one in.
  const isDocument = (req: UploadRequest) => req.body.format === "lifeboat-layout/1";
  const uploadToken = requireToken<UploadRequest>(ctx, {
    admin: isDocument,
    host: (req) => !isDocument(req),
    message: (req) =>
      isDocument(req)
        ? `host ${req.params.name}: a lifeboat-layout/1 document needs the admin token (hosts upload captures: lifeboat-capture/1)`
        : `host ${req.params.name}: capture token required (lifeboat hosts token NAME)`,
    refused: () => uploads.inc({ result: "unauthorized" }),
  });

  return async (app) => {
    // Uploads are counted before they are parsed (JSON.parse costs per object, on the one event loop).
    const parseJson = app.getDefaultJsonParser("error", "error");
    app.addContentTypeParser("application/json", { parseAs: "buffer", bodyLimit: CAPTURE_LIMITS.bytes }, (req, body: Buffer, done) => {
      const problem = captureTextProblem(body);
      if (problem) {
        uploads.inc({ result: "invalid" });
        return done(Object.assign(new Error(problem), { statusCode: 400 }), undefined);
      }
      return parseJson(req, body.toString("utf8"), done);
    });

    app.put(
      "/:name/layout",
      {
        // A real machine's capture is well under 1 MiB; the JSON is parsed before the handler runs.
        bodyLimit: CAPTURE_LIMITS.bytes,
        preHandler: uploadToken,
        schema: {
          summary: "Upload a capture (from capture.sh) or a layout document; stored as a new version",
          description:
            "A capture (lifeboat-capture/1, what capture.sh uploads): Authorization: Bearer <the host's capture token> (`lifeboat hosts token NAME`). " +
            "A layout document (lifeboat-layout/1): the admin token. Either is checked (device paths, mount points, mkfs options, sizes and counts) before it is stored.",
          tags: ["capture"],
          security: [{ bearer: [] }],
          params: nameParams,
          body: { type: "object", required: ["format"], properties: { format: { enum: ["lifeboat-capture/1", "lifeboat-layout/1"] } } },
          response: { 200: stored, ...errorResponses(400, 401, 404, 413) },
        },
      },
      async (req: UploadRequest) => {
        const host = await ctx.store.hosts.get(req.params.name);
        const body = req.body;
        const raw = isDocument(req);
        if (!host) throw new NotFoundError(`no host named ${req.params.name}`);
        let layout: DiskLayout;
        try {
          // The admin's DLE map (hosts record) wins over what the host said.
          layout = raw ? parseLayout(body) : layoutFromCapture(parseCapture(body));
          layout = { ...layout, dles: { ...layout.dles, ...host.dleMap } };
          const problem = layoutProblem(layout);
          if (problem) throw new Error(`${raw ? "layout" : "capture"} of ${host.name} refused: ${problem}`);
        } catch (err) {
          uploads.inc({ result: "invalid" });
          req.log.warn({ host: host.name, ip: req.ip, err: (err as Error).message }, "layout upload refused");
          throw new UserError((err as Error).message);
        }
        const rec = await ctx.store.layouts.add(host.name, layout);
        if (raw) await ctx.store.audit.append({ actor: `api:${req.ip}`, action: "host.layout", target: `host:${host.name}`, detail: { version: rec.version, source: layout.source } });
        uploads.inc({ result: "stored" });
        req.log.info({ host: host.name, version: rec.version, disks: layout.disks.length }, "layout stored");
        return { host: rec.host, version: rec.version, capturedAt: rec.capturedAt };
      },
    );

    app.get(
      "/:name/layout",
      {
        preHandler: admin,
        schema: {
          summary: "A stored layout version (default: the newest)",
          tags: ["capture"],
          security: [{ bearer: [] }],
          params: nameParams,
          querystring: { type: "object", properties: { version: { type: "integer", minimum: 1 } } },
          response: { 200: { ...stored, properties: { ...stored.properties, layout: anyObject } }, ...errorResponses(401, 404) },
        },
      },
      async (req: FastifyRequest<{ Params: { name: string }; Querystring: { version?: number } }>) => {
        const rec = await ctx.store.layouts.get(req.params.name, req.query.version);
        if (!rec) throw new NotFoundError(`host ${req.params.name}: no layout${req.query.version ? ` version ${req.query.version}` : " captured yet"}`);
        return { host: rec.host, version: rec.version, capturedAt: rec.capturedAt, layout: rec.document };
      },
    );

    app.get(
      "/:name/layouts",
      {
        preHandler: admin,
        schema: {
          summary: "The stored layout versions of a host",
          tags: ["capture"],
          security: [{ bearer: [] }],
          params: nameParams,
          response: { 200: { type: "array", items: stored }, ...errorResponses(401) },
        },
      },
      async (req: FastifyRequest<{ Params: { name: string } }>) =>
        (await ctx.store.layouts.versions(req.params.name)).map((v) => ({ host: v.host, version: v.version, capturedAt: v.capturedAt })),
    );
  };
}
