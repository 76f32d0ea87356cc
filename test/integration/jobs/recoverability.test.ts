/**
 * Recoverability at a glance (issue 24) through every door: `GET /api/v1/hosts`, `lifeboat hosts
 * list` (table and --json) and `/metrics`, on a real server with a real store. The rescue image is
 * a stand-in: its info.json, vmlinuz and initramfs files exist (what "built" means here), no kernel.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordDrill } from "../../../server/jobs/drill-record.ts";
import type { Recoverability } from "../../../server/jobs/recoverability.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { standInImage, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { dump } from "../../unit/jobs/job-fixture.ts";
import { fixtureLayout } from "../../unit/recovery/fixtures.ts";

type HostRow = { name: string; recoverability: Recoverability };

describe("recoverability: API, CLI and /metrics", { timeout: 120_000 }, () => {
  let server: RunningServer;
  let dataDir: string;
  const cli = (...args: string[]) => lifeboat([...args, "--data-dir", dataDir]);
  const admin = () => ({ authorization: `Bearer ${server.ctx.adminToken}` });
  const hosts = async () => (await server.app.inject({ url: "/api/v1/hosts", headers: admin() })).json() as HostRow[];
  const metrics = async () => (await server.app.inject({ url: "/metrics" })).body;
  const complete = [dump({ disk: "/", level: 0, datestamp: "20261201000000" }), dump({ disk: "/", level: 1, datestamp: "20261202000000" })];

  beforeAll(async () => {
    dataDir = tempDir();
    server = await testServer({ dataDir });
    const { store } = server.ctx;
    await store.hosts.add({ name: "web1", tokenHash: "x", smbiosUuid: null, macs: ["52:54:00:ee:24:01"], amandaConfig: "daily", dleMap: { "/": "/" } });
    await store.layouts.add("web1", fixtureLayout("gpt-uefi"));
    await store.hosts.add({ name: "db1", tokenHash: "y", smbiosUuid: null, macs: ["52:54:00:ee:24:02"], amandaConfig: "daily", dleMap: { "/": "/" } });
  });
  afterAll(async () => server.stop(0));

  it("says no, with each reason, until the chain is complete and the image built; then yes", async () => {
    // The level 1 of / has lost a part: the chain stops at it, named.
    const problem = 'part 2 of web1:"/" L1 20261202000000 is missing from the scanned volumes';
    await server.ctx.store.catalog.replace("daily", [complete[0]!, { ...complete[1]!, problem }], []);
    const [db1, web1a] = await hosts();
    let web1 = web1a;
    expect(db1).toMatchObject({ name: "db1", recoverability: { recoverable: false } });
    expect(db1!.recoverability.reasons[0]).toBe("no layout captured (install capture.sh on it: lifeboat capture install)");
    expect(web1!.recoverability.reasons).toEqual([
      `DLE "/" (/): chain of web1:"/" needs web1:"/" L1 20261202000000, which cannot be read: ${problem}`,
      "the rescue image is not built (lifeboat image build)",
    ]);
    expect(await metrics()).toMatch(/^lifeboat_host_recoverable\{host="web1"\} 0$/m);

    const table = await cli("hosts", "list");
    expect(table.exitCode, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^NAME\s+MACS\s+AMANDACONFIG\s+LAYOUT\s+LASTDRILL\s+RECOVERABLE$/m);
    expect(table.stdout).toMatch(/^web1\s+52:54:00:ee:24:01\s+daily\s+v1, 0 min old\s+never\s+NO: DLE "\/" \(\/\): chain of web1:"\/" needs web1:"\/" L1 20261202000000, which cannot be read: part 2 .*; the rescue image is not built/m);

    // The part found again and the image built (stand-in files): recoverable.
    await server.ctx.store.catalog.replace("daily", complete, []);
    standInImage(dataDir);
    web1 = (await hosts())[1];
    expect(web1!.recoverability).toMatchObject({ recoverable: true, reasons: [], image: { kernelVersion: "6.1.0-test" }, chains: [{ dle: "/", ok: true, levels: [0, 1] }] });
    const json = JSON.parse((await cli("hosts", "list", "--json")).stdout) as HostRow[];
    expect(json.find((h) => h.name === "web1")!.recoverability.recoverable).toBe(true);
    const m = await metrics();
    expect(m).toMatch(/^lifeboat_host_recoverable\{host="web1"\} 1$/m);
    expect(m).toMatch(/^lifeboat_host_recoverable\{host="db1"\} 0$/m);
    expect(m).toMatch(/^lifeboat_host_layout_age_seconds\{host="web1"\} \d+$/m);
    expect(m).not.toMatch(/^lifeboat_drill_last_success\{/m);
  });

  it("a failed last drill makes it not recoverable, with the drill's reason; /metrics exports the last drill", async () => {
    const endedAt = new Date(Date.now() - 3600_000).toISOString();
    const base = { job: "job-drill1", host: "web1", endedAt, restoreSeconds: 100, bootSeconds: 50, bytes: 200, accel: "tcg" };
    await recordDrill(server.ctx.store, { ...base, passed: false, reason: "no login prompt within 600 s; console: Kernel panic", recoverSeconds: null });
    const web1 = (await hosts()).find((h) => h.name === "web1")!;
    expect(web1.recoverability.reasons).toEqual([`last drill (job-drill1, ${endedAt}) failed: no login prompt within 600 s; console: Kernel panic`]);
    expect((await cli("hosts", "list")).stdout).toMatch(/^web1 .* FAILED 1 h ago\s+NO: last drill/m);
    let m = await metrics();
    expect(m).toMatch(/^lifeboat_drill_last_success\{host="web1"\} 0$/m);
    expect(m).toMatch(/^lifeboat_drill_last_age_seconds\{host="web1"\} 360\d$/m);
    expect(m).not.toMatch(/^lifeboat_drill_last_recover_seconds\{host="web1"\}/m);
    await recordDrill(server.ctx.store, { ...base, passed: true, reason: null, recoverSeconds: 240 });
    m = await metrics();
    expect(m).toMatch(/^lifeboat_drill_last_success\{host="web1"\} 1$/m);
    expect(m).toMatch(/^lifeboat_drill_last_recover_seconds\{host="web1"\} 240$/m);
    expect(m).toMatch(/^lifeboat_host_recoverable\{host="web1"\} 1$/m);
    expect((await cli("hosts", "list")).stdout).toMatch(/^web1 .* passed 1 h ago, 240 s to recover\s+yes$/m);
  });
});
