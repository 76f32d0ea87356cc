/**
 * Which iPXE script a machine gets: the rescue kernel when it has an active job, `exit`
 * otherwise. Rendering is pure (used by GET /boot/ipxe and `lifeboat hosts boot-script`);
 * the lookup reads the store. Templates live in pxe/. The routes serve the scripts, the
 * rescue kernel and initramfs and the boot loaders (for UEFI HTTP boot) with Range and HEAD.
 */
import { createReadStream, readFileSync, realpathSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { ServerContext } from "../../context.ts";
import type { Config } from "../../config/schema.ts";
import { recognisedUuid } from "../../dhcp/firmware.ts";
import { interfaceInfo } from "../../dhcp/server.ts";
import { isMac, normalizeMac } from "../../mac.ts";
import { normaliseName } from "../../tftp/files.ts";
import { renderKernelArgs } from "../../plan/cmdline.ts";
import { isBootable } from "../../jobs/job-state.ts";
import type { JobRecord, Store } from "../../store/types.ts";

const pxeDir = join(dirname(fileURLToPath(import.meta.url)), "../../../pxe");
const templates = new Map<string, string>();

function template(name: "boot" | "rescue" | "exit"): string {
  let t = templates.get(name);
  if (t === undefined) {
    t = readFileSync(join(pxeDir, `${name}.ipxe`), "utf8");
    templates.set(name, t);
  }
  return t;
}

function fill(t: string, vars: Record<string, string>): string {
  return t.replace(/\{\{(\w+)\}\}/g, (_m, k: string) => {
    const v = vars[k];
    if (v === undefined) throw new Error(`pxe template: no value for {{${k}}}`);
    return v;
  });
}

/** Serial and screen: the rescue system is also helped remotely over a serial console. */
export const RESCUE_CONSOLE = "console=tty0 console=ttyS0,115200n8";

/** The entry script every iPXE fetches first (GET /boot.ipxe). */
export function entryScript(base: string): string {
  return fill(template("boot"), { base });
}

/** The per-machine script: rescue kernel for a job, `exit` for anyone else. Pure. */
export function machineScript(o: { base: string; mac: string; job?: Pick<JobRecord, "id">; token?: string }): string {
  if (!o.job) return fill(template("exit"), { mac: o.mac });
  const args = renderKernelArgs({ server: o.base, job: o.job.id, token: o.token ?? "", mac: o.mac });
  return fill(template("rescue"), { base: o.base, mac: o.mac, job: o.job.id, args, console: RESCUE_CONSOLE });
}

/**
 * The job a booting machine gets the rescue system for, if any: its active job, unless that job's
 * plan already ran to its end (isBootable: a lost "done" must not restore the machine twice).
 */
export async function jobForMachine(store: Store, mac: string, uuid?: string): Promise<{ job: JobRecord; via: string } | undefined> {
  const found = await activeJobForMachine(store, mac, uuid);
  return found && isBootable(found.job) ? found : undefined;
}

/**
 * The active job for a booting machine: by its MAC, else through the host it belongs to
 * (by this MAC or by SMBIOS UUID) and that host's other MACs, so a multi-NIC server or a
 * docked laptop booting from another NIC is still found.
 */
async function activeJobForMachine(store: Store, mac: string, uuid?: string): Promise<{ job: JobRecord; via: string } | undefined> {
  const direct = await store.jobs.activeForMac(mac);
  if (direct) return { job: direct, via: "mac" };
  const hosts = [];
  const byMac = await store.hosts.byMac(mac);
  if (byMac) hosts.push(byMac);
  const wanted = recognisedUuid(uuid);
  if (wanted.length) hosts.push(...(await store.hosts.list()).filter((h) => h.smbiosUuid && wanted.includes(h.smbiosUuid.toLowerCase())));
  for (const h of hosts) {
    for (const m of h.macs) {
      const job = await store.jobs.activeForMac(m);
      if (job) return { job, via: `host ${h.name}` };
    }
  }
  return undefined;
}

/** Stands in for the per-boot token in previews: the real one is issued when the machine asks. */
export const PREVIEW_TOKEN = "TOKEN-ISSUED-AT-BOOT";

/** What a MAC would get, without issuing a token (for `lifeboat hosts boot-script`). */
export async function bootScriptPreview(config: Config, store: Store, mac: string, uuid?: string) {
  const found = await jobForMachine(store, mac, uuid);
  const host = config.listen.interface ? interfaceInfo(config.listen.interface).ip : config.listen.address === "0.0.0.0" ? hostname() : config.listen.address;
  const base = config.http.publicUrl.replace(/\/+$/, "") || `http://${host}:${config.http.port}`;
  return {
    mac,
    job: found?.job.id ?? null,
    via: found?.via ?? null,
    script: machineScript({ base, mac, job: found?.job, token: found ? PREVIEW_TOKEN : undefined }),
  };
}

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
    return reply.code(404).type("text/plain").send(`${what} is not there (${path}); build it first`);
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
function baseUrl(ctx: ServerContext, req: FastifyRequest): string {
  return ctx.config.http.publicUrl.replace(/\/+$/, "") || `${req.protocol}://${req.host}`;
}

export function bootRoutes(ctx: ServerContext): FastifyPluginAsync {
  return async (app) => {
    const log = ctx.log.child({ svc: "boot" });
    const image = (name: string) => join(ctx.config.dataDir, "image", name);
    const fromCloneWindow = async (mac: string) => {
      const job = await ctx.jobs.armFromCloneWindow(mac);
      return job && { job, via: "clone window" };
    };

    app.get("/boot.ipxe", { schema: scriptSchema("iPXE entry script: chains to the per-machine script") }, async (req, reply) =>
      reply.type("text/plain").send(entryScript(baseUrl(ctx, req))),
    );

    app.get<{ Querystring: { mac: string; uuid?: string; arch?: string; platform?: string } }>(
      "/boot/ipxe",
      {
        schema: scriptSchema("Per-machine iPXE script: the rescue system for a machine with an active job, `exit` otherwise", {
          type: "object",
          required: ["mac"],
          properties: {
            mac: { type: "string", description: "iPXE ${netX/mac}" },
            uuid: { type: "string", description: "iPXE ${uuid} (SMBIOS byte order)" },
            arch: { type: "string", description: "iPXE ${buildarch}" },
            platform: { type: "string", description: "iPXE ${platform}" },
          },
        }),
      },
      async (req, reply) => {
        const q = req.query;
        if (!isMac(q.mac)) return reply.code(400).type("text/plain").send(`mac: not a MAC address: ${JSON.stringify(q.mac)}`);
        const mac = normalizeMac(q.mac);
        const base = baseUrl(ctx, req);
        const found = (await jobForMachine(ctx.store, mac, q.uuid)) ?? (await fromCloneWindow(mac));
        if (!found) {
          log.info({ mac, uuid: q.uuid, ip: req.ip }, "no active job: exit to local boot");
          return reply.type("text/plain").send(machineScript({ base, mac }));
        }
        // A fresh token each boot: the previous boot's token stops working.
        const token = await ctx.jobs.issueBootToken(found.job.id);
        log.info({ mac, uuid: q.uuid, arch: q.arch, platform: q.platform, job: found.job.id, via: found.via, ip: req.ip }, "rescue system for an active job");
        return reply.type("text/plain").send(machineScript({ base, mac, job: found.job, token }));
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
          return reply.code(404).type("text/plain").send("no such boot loader");
        }
        if (!name || !path.startsWith(realpathSync(root) + sep)) return reply.code(404).type("text/plain").send("no such boot loader");
        return sendFile(req, reply, path, `boot loader ${name}`);
      },
    });
  };
}
