import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../server/config/load.ts";
import { createLogger } from "../../../server/log.ts";
import { layoutFromCapture, parseCapture } from "../../../server/layout/layout-capture.ts";
import { type RunningServer, startServer } from "../../../server/serve.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { cleanupLoopsAfterAll, loopUnavailable, makeLoop, rescan } from "./loopdev.ts";
import { itNeeding } from "../../helpers/needs.ts";

/**
 * The capture path end to end on loopback: the server serves capture.sh, a host uploads
 * with its own token (the real script with curl, on a loop device), the admin reads and
 * compares versions and dry-runs a plan with the real CLI.
 */

const fixtures = fileURLToPath(new URL("../../fixtures/", import.meta.url));
const captureSh = fileURLToPath(new URL("../../../server/layout/capture.sh", import.meta.url));
const fixture = (name: string) => JSON.parse(readFileSync(join(fixtures, "layouts", `${name}.capture.json`), "utf8")) as Record<string, unknown>;

describe("capture upload, layout versions and the hosts CLI", () => {
  const dataDir = tempDir();
  const work = tempDir();
  cleanupLoopsAfterAll();
  let server: RunningServer;
  let token = "";
  let admin = "";
  const dd = ["--data-dir", dataDir];

  beforeAll(async () => {
    const config = loadConfig({ overrides: { dataDir, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
    server = await startServer(config, createLogger("silent", { pretty: false }));
    admin = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    const add = await lifeboat(["hosts", "add", "web1", ...dd, "--server", server.httpUrl, "--json"]);
    expect(add.exitCode, add.stderr).toBe(0);
    token = (JSON.parse(add.stdout) as { token: string }).token;
  });
  afterAll(async () => server?.stop(100));

  const put = (host: string, body: unknown, auth?: string) =>
    fetch(`${server.httpUrl}/api/v1/hosts/${host}/layout`, {
      method: "PUT",
      headers: { "content-type": "application/json", ...(auth ? { authorization: `Bearer ${auth}` } : {}) },
      body: JSON.stringify(body),
    });

  it("serves capture.sh as a shell script, without a token", async () => {
    const res = await fetch(`${server.httpUrl}/capture.sh`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/x-shellscript/);
    expect(await res.text()).toBe(readFileSync(captureSh, "utf8"));
  });

  it("refuses uploads without the host's own token (401, counted), and bad documents with the key (400)", async () => {
    expect((await put("web1", fixture("mbr-ext4"))).status).toBe(401);
    expect((await put("web1", fixture("mbr-ext4"), "not-the-token")).status).toBe(401);
    expect((await put("web1", fixture("mbr-ext4"), admin)).status).toBe(401);
    expect((await put("nohost", fixture("mbr-ext4"), token)).status).toBe(401);
    const bad = fixture("mbr-ext4");
    (bad.lsblk as { blockdevices: Array<Record<string, unknown>> }).blockdevices[0]!.type = 42;
    const r = await put("web1", bad, token);
    expect(r.status).toBe(400);
    expect(((await r.json()) as { message: string }).message).toBe("capture document: lsblk.blockdevices.0.type: Invalid input: expected string, received number");
    const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/lifeboat_capture_uploads_total\{result="unauthorized"\} 4/);
    expect(metrics).toMatch(/lifeboat_capture_uploads_total\{result="invalid"\} 1/);
    expect((await lifeboat(["hosts", "show", "web1", ...dd])).stdout).toContain("none captured yet");
  });

  it("stores each upload as a new version; the admin reads any version", async () => {
    const r1 = await put("web1", fixture("mbr-ext4"), token);
    expect(r1.status).toBe(200);
    expect(await r1.json()).toMatchObject({ host: "web1", version: 1 });
    const changed = fixture("mbr-ext4");
    const probes = changed.probes as Array<{ dev: string; blkid: string }>;
    probes.find((p) => p.dev === "/dev/sda1")!.blkid = probes.find((p) => p.dev === "/dev/sda1")!.blkid.replace("LABEL=root", "LABEL=rootfs");
    expect((await put("web1", changed, token)).status).toBe(200);

    const noAdmin = await fetch(`${server.httpUrl}/api/v1/hosts/web1/layout`);
    expect(noAdmin.status).toBe(401);
    const get = (q = "") => fetch(`${server.httpUrl}/api/v1/hosts/web1/layout${q}`, { headers: { authorization: `Bearer ${admin}` } });
    const latest = (await (await get()).json()) as { version: number; layout: { filesystems: Array<{ label: string }> } };
    expect(latest.version).toBe(2);
    expect(latest.layout.filesystems[0]!.label).toBe("rootfs");
    const v1 = (await (await get("?version=1")).json()) as { layout: unknown };
    expect(v1.layout).toEqual(JSON.parse(JSON.stringify(layoutFromCapture(parseCapture(fixture("mbr-ext4"))))));
    expect((await get("?version=9")).status).toBe(404);
    const versions = await (await fetch(`${server.httpUrl}/api/v1/hosts/web1/layouts`, { headers: { authorization: `Bearer ${admin}` } })).json();
    expect((versions as Array<{ version: number }>).map((v) => v.version)).toEqual([1, 2]);
  });

  it("lifeboat hosts layout shows a version and the differences between two", async () => {
    const show = await lifeboat(["hosts", "layout", "web1", ...dd]);
    expect(show.exitCode, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^layout v2\nhost fixture/);
    expect(show.stdout).toContain('fs ext4 on /dev/sda1');
    const diff = await lifeboat(["hosts", "layout", "web1", "--diff", "1", ...dd]);
    expect(diff.stdout).toContain('~ filesystems[/dev/sda1].label: "root" → "rootfs"');
    const json = await lifeboat(["hosts", "layout", "web1", "--version", "1", "--diff", "2", "--json", ...dd]);
    expect(JSON.parse(json.stdout)).toMatchObject({ from: 2, to: 1, changes: ['~ filesystems[/dev/sda1].label: "rootfs" → "root"'] });
    const bad = await lifeboat(["hosts", "layout", "web1", "--version", "x", ...dd]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain("--version: expected a version number");
    const none = await lifeboat(["hosts", "layout", "nohost", ...dd]);
    expect(none).toMatchObject({ exitCode: 2, stderr: "lifeboat: no host named nohost" });
  });

  it("lifeboat hosts plan: the dry run on the same machine, refused on new disks until mapped", async () => {
    const layout = layoutFromCapture(parseCapture(fixture("mbr-ext4")));
    const same = join(work, "same.json");
    writeFileSync(same, JSON.stringify({ disks: [{ name: "sda", path: "/dev/sda", sizeBytes: layout.disks[0]!.sizeBytes, serial: "QM00001", signatures: ["dos", "ext4"] }] }));
    // The capture came from QEMU: its default serial QM00001 names no particular disk.
    const weak = await lifeboat(["hosts", "plan", "web1", "--version", "1", "--disks", same, ...dd]);
    expect(weak.exitCode).toBe(1);
    expect(weak.stdout).toContain("serial QM00001 is QEMU's default ATA serial, which identifies no disk: give an explicit mapping sda=TARGET");
    const ok = await lifeboat(["hosts", "plan", "web1", "--version", "1", "--disks", same, "--map", "sda=serial:QM00001", ...dd]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/sda .* → \/dev\/sda .*\[mapping\]\s+now holds: dos, ext4/);
    expect(ok.stdout).toContain("make_fs ext4 /dev/sda1 ");
    const fresh = join(work, "new.json");
    writeFileSync(fresh, JSON.stringify([{ name: "vda", path: "/dev/vda", sizeBytes: 2 * 1024 ** 3, serial: "NEW1" }]));
    const refused = await lifeboat(["hosts", "plan", "web1", "--disks", fresh, ...dd]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).toContain("REFUSED, nothing will be written");
    const mapped = await lifeboat(["hosts", "plan", "web1", "--disks", fresh, "--map", "sda=vda", "--json", ...dd]);
    expect(mapped.exitCode, mapped.stderr).toBe(0);
    const plan = JSON.parse(mapped.stdout) as { ok: boolean; script: string; mapping: Array<{ matchedBy: string }> };
    expect(plan.ok).toBe(true);
    expect(plan.mapping[0]!.matchedBy).toBe("mapping");
    expect(plan.script).toContain("partition /dev/vda ");
    const badFile = await lifeboat(["hosts", "plan", "web1", "--disks", join(work, "missing.json"), ...dd]);
    expect(badFile.exitCode).toBe(2);
    expect(badFile.stderr).toMatch(/missing\.json: cannot read the target disks \(ENOENT\)/);
  });

  it("lifeboat hosts import-rear stores a ReaR layout as the next version", async () => {
    const r = await lifeboat(["hosts", "import-rear", "web1", join(fixtures, "rear", "lvm-xfs.disklayout.conf"), ...dd, "--server", server.httpUrl]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("ReaR layout stored as version 3");
    const broken = join(work, "broken.conf");
    writeFileSync(broken, "disk /dev/sda 100 gpt\npart /dev/sdq 1 2 x none /dev/sdq1\n");
    const b = await lifeboat(["hosts", "import-rear", "web1", broken, ...dd, "--server", server.httpUrl]);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toMatch(/broken\.conf: disklayout\.conf line 2: /);
  });

  it("lifeboat capture script prints the script and its path", async () => {
    const r = await lifeboat(["capture", "script"]);
    expect(r.stdout).toBe(readFileSync(captureSh, "utf8").trimEnd());
    expect((await lifeboat(["capture", "script", "--path"])).stdout).toBe(captureSh);
  });

  const noLoop = loopUnavailable();
  itNeeding(noLoop, "the served script, run as cron would (sh -s), uploads a real capture with curl", async () => {
    const dev = await makeLoop(work, "upload", 64 * 1024 * 1024);
    await execa("sfdisk", ["-q", dev], { input: "label: gpt\ntype=L\n" });
    await rescan(dev);
    await execa("mkfs.ext4", ["-q", "-L", "cron'd", `${dev}p1`]);
    const tokenFile = join(work, "token");
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const script = await (await fetch(`${server.httpUrl}/capture.sh`)).text();
    const r = await execa("sh", ["-s", "--", "--server", server.httpUrl, "--host", "web1", "--token-file", tokenFile, "--devices", dev, "--dle", "/srv/www=/srv/www", "--dle", "root=/"], { input: script, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ host: "web1", version: 4 });
    const show = await lifeboat(["hosts", "layout", "web1", "--json", ...dd]);
    const l = (JSON.parse(show.stdout) as { layout: { disks: Array<{ path: string }>; filesystems: Array<{ label: string }>; dles: unknown } }).layout;
    expect(l.disks.map((d) => d.path)).toEqual([dev]);
    expect(l.dles).toEqual({ "/srv/www": "/srv/www", root: "/" });
    expect(l.filesystems[0]!.label).toBe("cron'd");
    // The same script run locally by the CLI, restricted to the loop device.
    const local = await lifeboat(["capture", "run", "--devices", dev]);
    expect(local.exitCode, local.stderr).toBe(0);
    expect(local.stdout).toContain(`fs ext4 on ${dev}p1`);
    expect(local.stdout).toContain('label "cron\'d"');
    // The token never appears on curl's command line (it goes through a here-document).
    expect(readFileSync(captureSh, "utf8")).toMatch(/-K \/dev\/fd\/3/);
    const wrong = await execa("sh", ["-s", "--", "--server", server.httpUrl, "--host", "web1", "--token", "nope", "--devices", dev], { input: script, reject: false });
    expect(wrong.exitCode).toBe(2);
    expect(wrong.stderr).toMatch(/upload to .* failed \(curl exit 22\)/);
  });
});
