/**
 * The boot routes: the entry script, the per-machine script (what it holds is the boot
 * service's answer: server/jobs/boot-service.ts), and the rescue kernel, initramfs and the boot
 * loaders (for UEFI HTTP boot) with Range and HEAD.
 */
import { createReadStream, realpathSync, statSync } from "node:fs";
import { join, sep } from "node:path";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { ServerContext } from "../../context.ts";
import { NotFoundError, UserError } from "../../errors.ts";
import { isMac, normalizeMac } from "../../mac.ts";
import { normaliseName } from "../../tftp/files.ts";
import { bootBaseUrl, entryScript } from "../../jobs/boot-scripts.ts";
import { requesterAddress } from "../../jobs/boot-service.ts";
import { errorResponses } from "../errors.ts";

/** `bytes=a-b` / `bytes=a-` / `bytes=-n` → [start, end] inclusive; undefined: not satisfiable. One range only. */
export function parseRange(header: string, size: number): [number, number] | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  let start: number;
  let end: number;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return undefined;
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start <= end && start < size ? [start, end] : undefined;
}

/** Sends a file with Content-Length, single-range support (206/416) and bodiless HEAD. */
async function sendFile(req: FastifyRequest, reply: FastifyReply, path: string, what: string) {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error("not a file");
    size = st.size;
  } catch {
    throw new NotFoundError(`${what} is not there (${path}); build it first`);
  }
  reply.header("accept-ranges", "bytes").type("application/octet-stream");
  let start = 0;
  let end = size - 1;
  const range = req.headers.range;
  if (range !== undefined) {
    const r = parseRange(range, size);
    if (!r) return reply.code(416).header("content-range", `bytes */${size}`).send();
    [start, end] = r;
    reply.code(206).header("content-range", `bytes ${start}-${end}/${size}`);
  }
  reply.header("content-length", String(end - start + 1));
  if (req.method === "HEAD" || size === 0) return reply.send();
  return reply.send(createReadStream(path, { start, end }));
}

const scriptSchema = (summary: string, querystring?: object) => ({
  summary,
  ...(querystring ? { querystring } : {}),
  response: { 200: { type: "string" } },
});

/** The base URL a booting machine uses for us: the configured public URL, else the Host it connected to. */
const baseUrl = (ctx: ServerContext, req: FastifyRequest) => bootBaseUrl(ctx.config.http.publicUrl, req.host, req.protocol);

export function bootRoutes(ctx: ServerContext): FastifyPluginAsync {
  return async (app) => {
    const image = (name: string) => join(ctx.config.dataDir, "image", name);

    app.get("/boot.ipxe", { schema: scriptSchema("iPXE entry script: chains to the per-machine script") }, async (req, reply) =>
      reply.type("text/plain").send(entryScript(baseUrl(ctx, req))),
    );

    app.get<{ Querystring: { mac: string; uuid?: string; arch?: string; platform?: string } }>(
      "/boot/ipxe",
      {
        schema: scriptSchema(
          "Per-machine iPXE script: the rescue system with a boot token for a machine with an active job, once per answer of Lifeboat's DHCP to the address it answered (server/jobs/boot-policy.ts); `exit` otherwise",
          {
            type: "object",
            required: ["mac"],
            properties: {
              mac: { type: "string", description: "iPXE ${netX/mac}" },
              uuid: { type: "string", description: "iPXE ${uuid} (SMBIOS byte order)" },
              arch: { type: "string", description: "iPXE ${buildarch}" },
              platform: { type: "string", description: "iPXE ${platform}" },
            },
          },
        ),
      },
      async (req, reply) => {
        const q = req.query;
        if (!isMac(q.mac)) throw new UserError(`mac: not a MAC address: ${JSON.stringify(q.mac)}`);
        const mac = normalizeMac(q.mac);
        req.log.info({ mac, uuid: q.uuid, arch: q.arch, platform: q.platform }, "boot script asked for");
        const { script } = await ctx.boot.boot({ mac, uuid: q.uuid, requester: requesterAddress(req.ip), base: baseUrl(ctx, req) });
        return reply.type("text/plain").send(script);
      },
    );

    app.post<{ Body: { code: string; mac?: string } }>(
      "/boot/code",
      {
        schema: {
          summary:
            "A machine booted from an ISO or USB stick (`lifeboat image iso`) trades the one-time code the admin gave for its job and a boot token, once (server/jobs/boot-policy.ts); 403 with why not",
          body: {
            type: "object",
            required: ["code"],
            additionalProperties: false,
            properties: { code: { type: "string", minLength: 1, maxLength: 64 }, mac: { type: "string", maxLength: 17 } },
          },
          response: { 200: { type: "object", required: ["job", "token"], properties: { job: { type: "string" }, token: { type: "string" } } }, ...errorResponses(400, 403, 409) },
        },
      },
      async (req) => {
        const mac = req.body.mac && isMac(req.body.mac) ? normalizeMac(req.body.mac) : undefined;
        const { job, token } = await ctx.boot.redeemCode(req.body.code, requesterAddress(req.ip), mac);
        return { job: job.id, token };
      },
    );

    for (const name of ["vmlinuz", "initramfs"]) {
      app.route({
        method: ["GET", "HEAD"],
        url: `/boot/${name}`,
        schema: { summary: `The rescue ${name} (Range and HEAD supported)`, produces: ["application/octet-stream"] },
        exposeHeadRoute: false,
        handler: (req, reply) => sendFile(req, reply, image(name), `the rescue ${name}`),
      });
    }

    app.route<{ Params: { "*": string } }>({
      method: ["GET", "HEAD"],
      url: "/boot/loaders/*",
      schema: { summary: "Boot loaders from the TFTP root, for UEFI HTTP boot (HEAD gives the size)" },
      exposeHeadRoute: false,
      handler: (req, reply) => {
        const name = normaliseName(req.params["*"]);
        const root = ctx.config.tftp.root;
        let path: string;
        try {
          path = realpathSync(join(root, name ?? ""));
        } catch {
          throw new NotFoundError("no such boot loader");
        }
        if (!name || !path.startsWith(realpathSync(root) + sep)) throw new NotFoundError("no such boot loader");
        return sendFile(req, reply, path, `boot loader ${name}`);
      },
    });
  };
}
