/**
 * `lifeboat image iso` without booting it (QEMU boots it in test/e2e/iso-restore.test.ts): the real
 * CLI, grub-mkimage, mkfs.vfat, mtools and xorriso write the hybrid image; xorriso and mtools read
 * it back. The image directory's files (kernel, initramfs, shim, CD GRUB) are stand-in bytes: what
 * the firmware and GRUB load is not looked at here (the e2e test boots the real ones). With --host
 * the medium carries the job's one-time code, never a token.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ISO_IMAGE_FILES } from "../../../rescue-image/iso.ts";
import type { JobView } from "../../../server/jobs/job-views.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";

const tools = ["/usr/bin/xorriso", "/usr/bin/grub-mkimage", "/usr/lib/grub/i386-pc/boot_hybrid.img", "/usr/bin/mcopy", "/usr/sbin/mkfs.vfat"];
const missing = tools.find((t) => !existsSync(t));

describeNeeding(missing && `${missing} is missing (scripts/apt-packages.txt: xorriso, grub-pc-bin, mtools, dosfstools)`, "lifeboat image iso", () => {
  const work = tempDir("lbt-iso-");
  const image = join(work, "image");
  let server: RunningServer;
  const cli = (...args: string[]) => lifeboat([...args, "--data-dir", join(work, "data"), "--image", image]);
  /** A file of the image read back with xorriso. */
  const isoFile = async (iso: string, path: string) => {
    const out = join(work, `x-${path.replace(/\W/g, "_")}`);
    await execa("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", path, out]);
    return readFileSync(out, "utf8");
  };

  beforeAll(async () => {
    mkdirSync(image, { recursive: true });
    for (const f of ISO_IMAGE_FILES) writeFileSync(join(image, f), `stand-in ${f}\n`);
    server = await testServer({ dataDir: join(work, "data"), planner: async () => standInPlan("plan_begin 1 web1 1\nplan_done\n", 2) });
    await seedHost(server, "web1", "52:54:00:1e:00:01");
  });
  afterAll(async () => server?.stop(0));

  it("writes a hybrid image: BIOS El Torito and MBR boot code, the EFI partition with shim and GRUB, one grub.cfg", async () => {
    const iso = join(work, "any.iso");
    const r = await cli("image", "iso", "--out", iso, "--net", "static:10.0.5.20/24,10.0.5.1,10.0.5.2", "--json");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ out: iso, server: null, job: null, network: "static 10.0.5.20/24 (gateway 10.0.5.1, DNS 10.0.5.2) on the first NIC with a link" });
    const report = (await execa("xorriso", ["-indev", iso, "-report_el_torito", "plain", "-report_system_area", "plain"])).stdout;
    expect(report).toMatch(/El Torito boot img :\s+1\s+BIOS/);
    expect(report).toMatch(/El Torito boot img :\s+2\s+UEFI/);
    expect(report).toMatch(/GPT partname local :\s+2\s+Appended2/);
    // The MBR holds GRUB's hybrid boot code (a stick boots under BIOS): its first bytes as in boot_hybrid.img.
    const mbr = readFileSync(iso).subarray(0, 64);
    expect(mbr.equals(readFileSync("/usr/lib/grub/i386-pc/boot_hybrid.img").subarray(0, 64))).toBe(true);
    // The ESP: shim as the removable-media loader, the signed CD GRUB beside it.
    const esp = join(work, "esp.img");
    const start = Number(/GPT start and size :\s+2\s+(\d+)\s+(\d+)/.exec(report)![1]);
    await execa("dd", [`if=${iso}`, `of=${esp}`, "bs=512", `skip=${start}`, "count=16384", "status=none"]);
    const dir = (await execa("mdir", ["-b", "-i", esp, "::/EFI/BOOT"])).stdout;
    expect(dir).toContain("::/EFI/BOOT/BOOTX64.EFI");
    expect(dir).toContain("::/EFI/BOOT/grubx64.efi");
    expect((await execa("mtype", ["-i", esp, "::/EFI/BOOT/BOOTX64.EFI"])).stdout).toBe("stand-in shimx64.efi");
    const cfg = await isoFile(iso, "/boot/grub/grub.cfg");
    expect(cfg).toContain("linux /lifeboat/vmlinuz lifeboat.ip=10.0.5.20/24 lifeboat.gw=10.0.5.1 lifeboat.dns=10.0.5.2 console=tty0 console=ttyS0,115200n8");
    expect(cfg).not.toMatch(/lifeboat\.(server|code|token|job)=/);
    expect(await isoFile(iso, "/lifeboat/initramfs")).toBe("stand-in initramfs\n");
    expect(await isoFile(iso, "/.disk/info")).toMatch(/Lifeboat/);
  }, 180_000);

  it("--host: the host's active job's one-time code on the medium (never a token); the code works once", async () => {
    const admin = { authorization: `Bearer ${server.ctx.adminToken}` };
    const [job] = (await server.app.inject({ method: "POST", url: "/api/v1/jobs", payload: { mac: "52:54:00:1e:00:01" }, headers: admin })).json() as JobView[];
    const iso = join(work, "web1.iso");
    const r = await cli("image", "iso", "--server", server.httpUrl, "--host", "web1", "--out", iso, "--valid-hours", "1", "--json");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ job: job!.id, server: server.httpUrl, network: "DHCP on each NIC in turn" });
    const cfg = await isoFile(iso, "/boot/grub/grub.cfg");
    const code = /lifeboat\.code=(\S+)/.exec(cfg)?.[1];
    expect(cfg).toContain(`lifeboat.server=${server.httpUrl} `);
    expect(cfg).not.toMatch(/lifeboat\.(token|job)=/);
    const first = await server.app.inject({ method: "POST", url: "/boot/code", payload: { code } });
    expect(first.json()).toMatchObject({ job: job!.id });
    expect((await server.app.inject({ method: "POST", url: "/boot/code", payload: { code } })).statusCode).toBe(403);
  }, 180_000);

  it("jobs arm --code: the job and the code to type on a machine booted from a medium made without --host", async () => {
    await seedHost(server, "web2", "52:54:00:1e:00:03");
    const r = await lifeboat(["jobs", "arm", "52:54:00:1e:00:03", "--code", "--json", "--data-dir", join(work, "data"), "--server", server.httpUrl]);
    expect(r.exitCode, r.stderr).toBe(0);
    const [j] = JSON.parse(r.stdout) as Array<JobView & { code: string }>;
    expect(j!.code).toMatch(/^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$/);
    expect((await server.app.inject({ method: "POST", url: "/boot/code", payload: { code: j!.code } })).json()).toMatchObject({ job: j!.id });
    const bad = await lifeboat(["jobs", "arm", "52:54:00:1e:00:03", "--code", "--power", "--data-dir", join(work, "data"), "--server", server.httpUrl]);
    expect(bad.stderr.trim()).toBe("lifeboat: --code goes with machines booted from a medium: not with --power or --any-unknown");
  }, 180_000);

  it("refuses in one line: a bad --net, --host without --server, a host with no active job, an image without the signed CD GRUB", async () => {
    const bad = async (args: string[], msg: RegExp) => {
      const r = await cli("image", "iso", "--out", join(work, "never.iso"), ...args);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
      expect(existsSync(join(work, "never.iso"))).toBe(false);
    };
    await bad(["--net", "static:10.0.5.300/24"], /--net: expected an IPv4 address with its prefix/);
    await bad(["--net", "bootp"], /--net: expected dhcp or static:ADDR\/PREFIX/);
    await bad(["--host", "web1"], /--host needs --server URL/);
    await seedHost(server, "idle", "52:54:00:1e:00:02");
    await server.app.inject({ method: "PUT", url: "/api/v1/profiles/idle", payload: { host: "idle" }, headers: { authorization: `Bearer ${server.ctx.adminToken}` } });
    await bad(["--server", server.httpUrl, "--host", "idle"], /--host idle: no active job for it; arm one first/);
    const partial = join(work, "partial");
    mkdirSync(partial, { recursive: true });
    for (const f of ["vmlinuz", "initramfs"]) writeFileSync(join(partial, f), "x");
    const r = await lifeboat(["image", "iso", "--data-dir", join(work, "data"), "--image", partial, "--out", join(work, "never.iso")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/image iso failed: no shimx64\.efi in .*: run `lifeboat image build`/);
  }, 180_000);
});
