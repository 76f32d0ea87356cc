/**
 * The boot HTTP routes on a real server (in-process, ephemeral port): entry script, the
 * per-machine script (rescue kernel with a fresh token for an active job, found by MAC,
 * by the host's other MACs or by SMBIOS UUID, once per answer of Lifeboat's DHCP; `exit` for
 * anyone else), and the kernel, initramfs and boot loaders with Content-Length, Range and HEAD.
 * DHCP is proxy but not started (no interface): the test says what it answered.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../../server/config/load.ts";
import { hashToken } from "../../../server/tokens.ts";
import { createLogger } from "../../../server/log.ts";
import { AGENT_BASE } from "../../../server/plan/agent-api.ts";
import { parseKernelArgs } from "../../../server/plan/cmdline.ts";
import { type RunningServer, startServer } from "../../../server/serve.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { armForTest } from "./armed.ts";

const dataDir = tempDir("lbt7-routes-");
const kernel = randomBytes(100_000);
let srv: RunningServer;
let jobId: string;

beforeAll(async () => {
  mkdirSync(join(dataDir, "image"), { recursive: true });
  writeFileSync(join(dataDir, "image", "vmlinuz"), kernel);
  writeFileSync(join(dataDir, "image", "initramfs"), "initramfs bytes");
  const config = loadConfig({ overrides: { dataDir, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "proxy" } });
  srv = await startServer(config, createLogger("silent", { pretty: false }));
  jobId = (await armForTest(srv.ctx.store, { host: "web1", macs: ["52:54:00:07:00:01", "52:54:00:07:00:02"], uuid: "00112233-4455-6677-8899-aabbccddeeff" })).id;
});
afterAll(() => srv.stop(100));

const get = (path: string, init?: RequestInit) => fetch(`${srv.httpUrl}${path}`, init);
/** A network boot of `mac`: Lifeboat's DHCP answers it (fetch comes from 127.0.0.1), then its iPXE asks for the script. */
const boot = async (mac: string, query = "") => {
  srv.ctx.boot.dhcpAnswered(mac, "127.0.0.1");
  return (await get(`/boot/ipxe?mac=${mac}${query}`)).text();
};

describe("boot scripts", () => {
  it("GET /boot.ipxe chains to the per-machine script with iPXE's variables", async () => {
    const r = await get("/boot.ipxe");
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text.startsWith("#!ipxe\n")).toBe(true);
    expect(text).toContain(`chain --autofree ${srv.httpUrl}/boot/ipxe?mac=\${netX/mac}&uuid=\${uuid}&arch=\${buildarch}&platform=\${platform}`);
  });

  it("an armed MAC gets the rescue kernel with a fresh token the agent API accepts, once per boot", async () => {
    const text = await boot("52:54:00:07:00:01", "&arch=x86_64&platform=efi");
    expect(text).toMatch(new RegExp(`^kernel ${srv.httpUrl}/boot/vmlinuz initrd=initramfs .*lifeboat\\.job=${jobId}`, "m"));
    expect(text).toContain(`initrd ${srv.httpUrl}/boot/initramfs`);
    const args = parseKernelArgs(/^kernel (.*)$/m.exec(text)![1]!);
    expect(args).toMatchObject({ server: srv.httpUrl, job: jobId, mac: "52:54:00:07:00:01" });
    const job = await srv.ctx.store.jobs.get(jobId);
    expect(job!.tokenHash).toBe(hashToken(args.token!));
    expect((await srv.ctx.store.jobs.events(jobId)).some((e) => e.type === "boot")).toBe(true);
    const log = await get(`${AGENT_BASE}/${jobId}/log`, { method: "POST", headers: { authorization: `Bearer ${args.token}`, "content-type": "text/plain" }, body: "hi" });
    expect(log.status).toBe(200);
    // The same boot asking again gets no second token.
    expect(await (await get("/boot/ipxe?mac=52-54-00-07-00-01")).text()).toMatch(/^exit 1$/m);
    const again = parseKernelArgs(/^kernel (.*)$/m.exec(await boot("52:54:00:07:00:01"))![1]!);
    expect(again.token).not.toBe(args.token);
  });

  it("the host's other NIC and its SMBIOS UUID (as iPXE sends it, SMBIOS byte order) find the job too", async () => {
    expect(await boot("52:54:00:07:00:02")).toContain(`lifeboat.job=${jobId}`);
    const viaUuid = await boot("52:54:00:07:00:99", "&uuid=33221100-5544-7766-8899-aabbccddeeff");
    expect(viaUuid).toContain(`lifeboat.job=${jobId}`);
    expect(viaUuid).toContain("lifeboat.mac=52:54:00:07:00:99");
  });

  it("an unarmed MAC gets exit; a bad MAC is a 400", async () => {
    const text = await boot("52:54:00:07:00:77", "&uuid=00000000-0000-0000-0000-000000000000");
    expect(text).toMatch(/^exit 1$/m);
    expect(text).not.toContain("kernel");
    expect((await get("/boot/ipxe?mac=zz")).status).toBe(400);
    expect((await get("/boot/ipxe")).status).toBe(400);
  });

  it("`lifeboat hosts boot-script MAC` prints what the MAC would get, without issuing a token", async () => {
    const before = (await srv.ctx.store.jobs.get(jobId))!.tokenHash;
    const armed = await lifeboat(["hosts", "boot-script", "52:54:00:07:00:01", "--data-dir", dataDir]);
    expect(armed.exitCode).toBe(0);
    expect(armed.stdout).toContain(`lifeboat.job=${jobId}`);
    expect(armed.stdout).toMatch(/^kernel .*\/boot\/vmlinuz initrd=initramfs/m);
    expect((await srv.ctx.store.jobs.get(jobId))!.tokenHash).toBe(before);
    const other = await lifeboat(["hosts", "boot-script", "52:54:00:07:00:77", "--data-dir", dataDir, "--json"]);
    expect(JSON.parse(other.stdout)).toMatchObject({ mac: "52:54:00:07:00:77", job: null });
    expect(JSON.parse(other.stdout).script).toMatch(/^exit 1$/m);
    // The signed GRUB's configuration for the same decision (Secure Boot chain): the same kernel arguments.
    const grub = await lifeboat(["hosts", "boot-script", "52:54:00:07:00:01", "--data-dir", dataDir, "--format", "grub"]);
    expect(grub.exitCode, grub.stderr).toBe(0);
    expect(grub.stdout).toMatch(new RegExp(`^linux /lifeboat/vmlinuz .*lifeboat\\.job=${jobId} `, "m"));
    expect(parseKernelArgs(/^linux (.*)$/m.exec(grub.stdout)![1]!)).toEqual(parseKernelArgs(/^kernel (.*)$/m.exec(armed.stdout)![1]!));
    expect(JSON.parse((await lifeboat(["hosts", "boot-script", "52:54:00:07:00:77", "--data-dir", dataDir, "--format", "grub", "--json"])).stdout).script).toMatch(/^set lifeboat_local=1$/m);
    const badFormat = await lifeboat(["hosts", "boot-script", "52:54:00:07:00:01", "--data-dir", dataDir, "--format", "pxelinux"]);
    expect(badFormat.exitCode).toBe(2);
    expect(badFormat.stderr).toContain('--format: expected ipxe or grub, not "pxelinux"');
    const bad = await lifeboat(["hosts", "boot-script", "nope", "--data-dir", dataDir]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain("not a MAC address");
  });
});

describe("kernel, initramfs and loaders over HTTP", () => {
  it("GET with Content-Length, HEAD without a body, Range gives 206, a bad range 416", async () => {
    const full = await get("/boot/vmlinuz");
    expect(full.headers.get("content-length")).toBe(String(kernel.length));
    expect(Buffer.from(await full.arrayBuffer())).toEqual(kernel);
    const head = await get("/boot/vmlinuz", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(kernel.length));
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    const part = await get("/boot/vmlinuz", { headers: { range: "bytes=100-199" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 100-199/${kernel.length}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(kernel.subarray(100, 200));
    const tail = await get("/boot/vmlinuz", { headers: { range: "bytes=-10" } });
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(kernel.subarray(-10));
    const bad = await get("/boot/vmlinuz", { headers: { range: `bytes=${kernel.length}-` } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get("content-range")).toBe(`bytes */${kernel.length}`);
    expect(await (await get("/boot/initramfs")).text()).toBe("initramfs bytes");
  });

  it("boot loaders from the TFTP root (UEFI HTTP boot: HEAD then GET), nothing outside it", async () => {
    const root = srv.ctx.config.tftp.root;
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, "snponly.efi"), "efi loader");
    const head = await get("/boot/loaders/snponly.efi", { method: "HEAD" });
    expect(head.headers.get("content-length")).toBe("10");
    expect(await (await get("/boot/loaders/snponly.efi")).text()).toBe("efi loader");
    expect((await get("/boot/loaders/..%2f..%2flifeboat.db")).status).toBe(404);
    expect((await get("/boot/loaders/nope.efi")).status).toBe(404);
  });

  it("a missing image is a 404 saying what to do", async () => {
    const r = await fetch(`${srv.httpUrl}/boot/loaders/`);
    expect(r.status).toBe(404);
  });
});
