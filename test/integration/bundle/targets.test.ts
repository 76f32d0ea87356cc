import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeBundles } from "../../../server/bundle/schedule.ts";
import { BUNDLE_FILE } from "../../../server/bundle/manifest.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { NEW_MAC, WEB1_MAC, populate, serveWith, writeLabConfig } from "./lab.ts";

/**
 * Bundles kept apart, on a schedule (issue 23 item 2): server A writes at start and on each
 * run to a directory target, to a second `lifeboat serve` on loopback (HTTP push with that
 * server's admin token) and to a broken target, whose failure is visible in `store bundles`,
 * /metrics and the API; retention keeps two. The second server's bundle, imported into an
 * empty data dir, arms and plans a recovery of A's host.
 */
describe("scheduled bundles to a directory and to another Lifeboat", { timeout: 300_000 }, () => {
  const root = tempDir("lifeboat-bundle-targets-");
  const usb = join(root, "usb");
  const dataA = join(root, "a");
  const dataB = join(root, "b");
  const dataC = join(root, "c");
  const configB = join(root, "b.yaml");
  let a: RunningServer;
  let b: RunningServer;
  let c: RunningServer | undefined;
  let configA = "";
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  beforeAll(async () => {
    mkdirSync(usb);
    writeFileSync(join(root, "not-a-dir"), "");
    writeFileSync(configB, "bundle:\n  keep: 2\n  maxReceiveBytes: 1048576\n");
    b = await serveWith(configB, dataB);
    configA = writeLabConfig(
      root,
      [
        "bundle:",
        "  keep: 2",
        "  targets:",
        "    - {name: usb, type: directory, path: " + usb + "}",
        `    - {name: standby, type: lifeboat, url: "${b.httpUrl}", tokenFile: ${join(dataB, "admin-token")}}`,
        `    - {name: broken, type: directory, path: ${join(root, "not-a-dir")}}`,
        "",
      ].join("\n"),
    ).configFile;
    a = await serveWith(configA, dataA);
    // The first bundle is written at start (none was before); wait for it, then give A something to carry.
    for (let i = 0; i < 100 && !(await a.ctx.store.settings.get("bundle.last-run")); i++) await sleep(100);
    await populate(a, configA, dataA);
    for (let i = 0; i < 2; i++) {
      await sleep(1100); // bundle names have a one-second resolution
      await writeBundles(a.ctx);
    }
  });
  afterAll(async () => {
    for (const s of [a, b, c]) await s?.stop(0);
  });

  it("each target's last success or failure shows in `store bundles`, /metrics and the API; two are kept", async () => {
    const r = await lifeboat(["store", "bundles", "--json", "--config", configA, "--data-dir", dataA]);
    expect(r.exitCode, r.stderr).toBe(1); // a target failed
    const view = JSON.parse(r.stdout) as { targets: Array<{ name: string; ok: boolean; lastSuccess: unknown; lastFailure: { error: string } | null }> };
    expect(view.targets.map((t) => [t.name, t.ok])).toEqual([
      ["usb", true],
      ["standby", true],
      ["broken", false],
    ]);
    expect(view.targets[2]!.lastFailure!.error).toMatch(/ENOTDIR/);
    const human = await lifeboat(["store", "bundles", "--config", configA, "--data-dir", dataA]);
    expect(human.stdout).toMatch(/^broken\s+directory\s+\S+\s+FAILED\s+never\s+\S+: ENOTDIR/m);

    expect(readdirSync(usb).filter((f) => BUNDLE_FILE.test(f))).toHaveLength(2);
    expect(readdirSync(usb)).toHaveLength(2);
    const received = JSON.parse((await lifeboat(["store", "bundles", "--json", "--config", configB, "--data-dir", dataB])).stdout) as { received: Array<{ file: string }> };
    expect(received.received).toHaveLength(2);
    expect(received.received.map((x) => x.file).sort()).toEqual(readdirSync(usb).sort());

    const metrics = await (await fetch(`${a.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^lifeboat_bundle_target_ok\{target="usb"\} 1$/m);
    expect(metrics).toMatch(/^lifeboat_bundle_target_ok\{target="standby"\} 1$/m);
    expect(metrics).toMatch(/^lifeboat_bundle_target_ok\{target="broken"\} 0$/m);
    expect(metrics).toMatch(/^lifeboat_bundle_last_success_timestamp_seconds\{target="standby"\} 1\d{9}/m);
    expect(metrics).toMatch(/^lifeboat_bundle_last_failure_timestamp_seconds\{target="broken"\} 1\d{9}/m);
    const admin = readFileSync(join(dataA, "admin-token"), "utf8").trim();
    const api = (await (await fetch(`${a.httpUrl}/api/v1/bundles`, { headers: { authorization: `Bearer ${admin}` } })).json()) as { targets: unknown[] };
    expect(api.targets).toEqual(view.targets);
  });

  it("the receiving route takes only the admin token, bundle names, whole bundles, under its size cap", async () => {
    const token = readFileSync(join(dataB, "admin-token"), "utf8").trim();
    const name = readdirSync(usb)[0]!;
    const put = (file: string, body: Buffer, auth = token) =>
      fetch(`${b.httpUrl}/api/v1/bundles/${encodeURIComponent(file)}`, { method: "PUT", headers: { authorization: `Bearer ${auth}`, "content-type": "application/octet-stream" }, body });
    const good = readFileSync(join(usb, name));
    expect((await put(name, good, "wrong")).status).toBe(401);
    const badName = await put("../../x.bundle", good);
    expect([badName.status, ((await badName.json()) as { message: string }).message]).toEqual([400, '"../../x.bundle" is not a bundle file name (lifeboat-SERVERID-TIME.bundle[.gpg])']);
    const damaged = Buffer.from(good);
    damaged[700] = damaged[700]! ^ 1;
    const d = await put(name, damaged);
    expect(d.status).toBe(400);
    expect(((await d.json()) as { message: string }).message).toMatch(/refused: .*damaged/);
    const big = await put(name.replace(/\d{6}Z/, "000000Z"), Buffer.alloc(2 * 1024 * 1024, 1));
    expect(big.status).toBe(413);
    // Nothing half-written or refused is left behind.
    expect(readdirSync(join(dataB, "bundles", "received")).sort()).toEqual(readdirSync(usb).sort());
  });

  it("a second server imports the pushed bundle and arms and plans a recovery of the first one's host", async () => {
    const newest = readdirSync(join(dataB, "bundles", "received")).sort().pop()!;
    const im = await lifeboat(["store", "import", join(dataB, "bundles", "received", newest), "--config", configB, "--data-dir", dataC]);
    expect(im.exitCode, im.stderr).toBe(0);
    // The standby reads the same Amanda media (the synthetic config stands in for shared vtapes), and has no targets of its own.
    const configC = join(root, "c.yaml");
    writeFileSync(configC, readFileSync(configA, "utf8").split("bundle:")[0]!);
    c = await serveWith(configC, dataC);
    const cli = (...args: string[]) => lifeboat([...args, "--config", configC, "--data-dir", dataC, "--server", c!.httpUrl]);
    const jobs = JSON.parse((await cli("jobs", "list", "--json")).stdout) as Array<{ id: string; mac: string }>;
    expect(jobs.map((j) => j.mac)).toEqual([WEB1_MAC]);
    const arm = await cli("jobs", "arm", NEW_MAC, "--json");
    expect(arm.exitCode, arm.stderr).toBe(0);
    const [job] = JSON.parse(arm.stdout) as Array<{ id: string; profile: string }>;
    expect(job!.profile).toBe("web");
    const chain = JSON.parse((await lifeboat(["catalog", "chain", "web1", "/", "--json", "--config", configC, "--data-dir", dataC])).stdout) as { dumps: Array<{ id: string }> };
    expect(chain.dumps).toHaveLength(2);
    for (const id of [job!.id, jobs[0]!.id]) {
      const plan = await cli("jobs", "plan", id);
      expect(plan.exitCode, plan.stderr).toBe(0);
      expect(plan.stdout).toMatch(/^plan_begin /m);
      for (const d of chain.dumps) expect(plan.stdout).toContain(d.id);
    }
  });
});
