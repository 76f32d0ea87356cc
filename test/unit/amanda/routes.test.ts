import { closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { catalogFromLogs } from "../../../server/amanda/catalog.ts";
import { readAmandaConfig } from "../../../server/amanda/conf.ts";
import { crc32c } from "../../../server/amanda/crc32c.ts";
import { loadConfig } from "../../../server/config/load.ts";
import type { ServerContext } from "../../../server/context.ts";
import { answerErrors } from "../../../server/http/errors.ts";
import { API_BASE } from "../../../server/http/app.ts";
import { catalogRoutes, dumpRoutes } from "../../../server/http/routes/catalog.ts";
import { DUMPS_BASE } from "../../../server/plan/agent-api.ts";
import { createLogger } from "../../../server/log.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { bytes, writeSynthLab } from "./synthetic.ts";

let app: FastifyInstance | undefined;
afterEach(async () => app?.close());

async function serve(opts: Parameters<typeof dumpRoutes>[1] = {}) {
  const data = bytes(200000, 3);
  const l = writeSynthLab(tempDir("lifeboat-amanda-routes-"), [{ label: "T-01", slot: 1, datestamp: "20261124020601", dumps: [{ host: "h", disk: "/d", datestamp: "20261124020601", level: 0, data }] }], [], { partSize: 65536 });
  const store = new SqliteStore(":memory:");
  const dumps = (await catalogFromLogs(readAmandaConfig(l.configDir))).dumps;
  await store.catalog.replace("synth", dumps, []);
  // The route group alone: the jobs service is not needed by it.
  const ctx = { config: loadConfig({ overrides: { dataDir: tempDir() } }), store, log: createLogger("silent", { pretty: false }), adminToken: "admin-token", metrics: new Registry(), version: "test" } as unknown as ServerContext;
  app = Fastify();
  answerErrors(app);
  await app.register(catalogRoutes(ctx), { prefix: `${API_BASE}/catalog` });
  await app.register(dumpRoutes(ctx, opts), { prefix: DUMPS_BASE });
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  return { url, data, id: dumps[0]!.id, l, store };
}

describe("dump stream route", () => {
  it("admin token, or whatever authorizeStream accepts (a job token); 401 otherwise", async () => {
    const { url, id, data } = await serve({ authorizeStream: async (token, dumpId) => token === `job-token-for-${dumpId}` });
    expect((await fetch(`${url}/api/v1/dumps/${id}/stream`)).status).toBe(401);
    expect((await fetch(`${url}/api/v1/dumps/${id}/stream`, { headers: { authorization: "Bearer other" } })).status).toBe(401);
    const r = await fetch(`${url}/api/v1/dumps/${id}/stream`, { headers: { authorization: `Bearer job-token-for-${id}` } });
    expect(r.status).toBe(200);
    expect(Buffer.from(await r.arrayBuffer()).equals(data)).toBe(true);
    expect((await fetch(`${url}/api/v1/catalog/dumps`, { headers: { authorization: `Bearer job-token-for-${id}` } })).status).toBe(401);
  });

  it("a CRC mismatch truncates the HTTP body (the client sees an error, never a quietly wrong dump) and is recorded", async () => {
    const { url, id, l, store } = await serve();
    const fd = openSync(join(l.vtapes, "slot1", "00002.h._d.0"), "r+");
    writeSync(fd, Buffer.from("X"), 0, 1, 32768 + 5);
    closeSync(fd);
    const r = await fetch(`${url}/api/v1/dumps/${id}/stream`, { headers: { authorization: "Bearer admin-token" } });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-length")).toBe("200000");
    await expect(r.arrayBuffer()).rejects.toThrow();
    await new Promise((res) => setTimeout(res, 50));
    const audit = await store.audit.list({ target: `dump:${id}` });
    expect(audit[0]).toMatchObject({ action: "dump.stream.failed" });
    expect((audit[0]!.detail as { error: string }).error).toMatch(/^CRC mismatch on h:"\/d" L0 20261124020601 as stored/);
    // and the server goes on serving
    expect((await fetch(`${url}/api/v1/dumps/${id}/stream`, { method: "HEAD", headers: { authorization: "Bearer admin-token" } })).status).toBe(200);
  });

  it("416 for an unsatisfiable range, 404 for an unknown dump, 409 naming a missing part", async () => {
    const { url, id, l } = await serve();
    const h = { authorization: "Bearer admin-token" };
    const bad = await fetch(`${url}/api/v1/dumps/${id}/stream`, { headers: { ...h, range: "bytes=300000-" } });
    expect([bad.status, bad.headers.get("content-range")]).toEqual([416, "bytes */200000"]);
    expect((await fetch(`${url}/api/v1/dumps/nope/stream`, { headers: h })).status).toBe(404);
    const { rmSync } = await import("node:fs");
    rmSync(join(l.vtapes, "slot1", "00003.h._d.0"));
    const gone = await fetch(`${url}/api/v1/dumps/${id}/stream`, { headers: h });
    expect(gone.status).toBe(409);
    expect(((await gone.json()) as { message: string }).message).toMatch(/^h:"\/d" L0 20261124020601: part 3 is missing: .*00003.h._d.0$/);
  });

  it("records the Amanda CRC-32C a full stream was checked against (no per-stream hash); a range records none", async () => {
    const { url, id, data, store } = await serve();
    const h = { authorization: "Bearer admin-token" };
    expect(Buffer.from(await (await fetch(`${url}/api/v1/dumps/${id}/stream`, { headers: h })).arrayBuffer()).equals(data)).toBe(true);
    expect(Buffer.from(await (await fetch(`${url}/api/v1/dumps/${id}/stream`, { headers: { ...h, range: "bytes=10-20" } })).arrayBuffer()).equals(data.subarray(10, 21))).toBe(true);
    await new Promise((res) => setTimeout(res, 50));
    const details = (await store.audit.list({ target: `dump:${id}` })).map((a) => a.detail as { crc32c: string | null; bytes: number; sha256?: string });
    expect(details.map((d) => [d.crc32c, d.bytes, d.sha256]).sort()).toEqual([[`${crc32c(data)}:200000`, 200000, undefined], [null, 11, undefined]].sort());
  });
});
