import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAPTURE_LIMITS } from "../../../server/layout/layout-capture.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { hashToken } from "../../../server/tokens.ts";
import { testServer } from "../../helpers/server.ts";
import { hugeCapture, manyBlockDevices } from "./huge-capture.ts";

/**
 * Issue 16 item 2: a hostile capture upload must not stall the one event loop that serves
 * DHCP, TFTP and the dump streams. Its own file: the large documents of capture-limits.test.ts
 * would leave garbage whose collection lands in these measurements.
 */
// Wall time by definition (that is what a DHCP client waits): retried when a busy machine
// starves this worker, where the code before the fix blocked for seconds every time.
describe("capture upload while /healthz is asked", { retry: 2 }, () => {
  let server: RunningServer;
  const token = "huge-capture-token";
  // Made before the server starts, so building them is not measured.
  let manyNodes: Buffer;
  let tooLarge: Buffer;
  beforeAll(async () => {
    manyNodes = Buffer.from(JSON.stringify(manyBlockDevices(20_000)));
    tooLarge = Buffer.from(JSON.stringify(hugeCapture(20_000)));
    server = await testServer();
    await server.ctx.store.hosts.add({ name: "huge", tokenHash: hashToken(token), smbiosUuid: null, macs: [], amandaConfig: null, dleMap: {} });
  });
  afterAll(async () => server?.stop(100));

  const healthz = async (): Promise<number> => {
    const started = performance.now();
    const res = await fetch(`${server.httpUrl}/healthz`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    return performance.now() - started;
  };

  const put = (body: Buffer) =>
    new Promise<{ status: number; body: { message: string } }>((resolve, reject) => {
      const req = request(`${server.httpUrl}/api/v1/hosts/huge/layout`, {
        method: "PUT",
        headers: { "content-type": "application/json", "content-length": body.length, authorization: `Bearer ${token}` },
      });
      req.on("error", reject);
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) as { message: string } }));
      });
      req.end(body);
    });

  /**
   * Uploads `body` while two clients ask /healthz back to back: the slowest answer, and how
   * many were asked while the upload was in flight. Client and server share this process, so
   * the body is encoded beforehand, sent with node:http (no copies of it on this side) and the
   * connections warmed up.
   */
  async function uploadWhileProbing(body: Buffer) {
    for (let i = 0; i < 5; i++) await healthz();
    let uploading = true;
    const upload = put(body).finally(() => (uploading = false));
    let slowestMs = 0;
    let duringUpload = 0;
    const probe = async () => {
      while (uploading) {
        const asked = uploading;
        const ms = await healthz();
        slowestMs = Math.max(slowestMs, ms);
        if (asked) duringUpload++;
      }
    };
    await Promise.all([probe(), probe()]);
    return { ...(await upload), slowestMs, duringUpload };
  }

  it("a 20,000-node capture under the byte limit is refused before it is parsed, in one line; /healthz answers within 50 ms throughout", async () => {
    expect(manyNodes.length).toBeLessThan(CAPTURE_LIMITS.bytes);
    const r = await uploadWhileProbing(manyNodes);
    expect(r.status).toBe(400);
    expect(r.body.message).toBe(`capture document: more than ${CAPTURE_LIMITS.containers} JSON objects and arrays`);
    expect(r.duringUpload).toBeGreaterThanOrEqual(2);
    expect(r.slowestMs).toBeLessThan(50);
  });

  it("a 20,000-node capture over the byte limit is refused (413, one line) before it is parsed; /healthz answers within 50 ms", async () => {
    expect(tooLarge.length).toBeGreaterThan(CAPTURE_LIMITS.bytes);
    const r = await uploadWhileProbing(tooLarge);
    expect(r.status).toBe(413);
    expect(r.body.message).toBe(`request body larger than ${CAPTURE_LIMITS.bytes} bytes`);
    expect(r.duringUpload).toBeGreaterThanOrEqual(2);
    expect(r.slowestMs).toBeLessThan(50);
  });
});
