/**
 * Secure Boot for real (issue 20): two QEMU machines (TCG) under OVMF_CODE_4M.secboot.fd with
 * Microsoft's keys enrolled (a fresh copy of OVMF_VARS_4M.ms.fd each), Secure Boot enforced,
 * network-boot side by side from the real `lifeboat serve` (full mode, dhcp.uefiLoader at its default, auto)
 * in a namespace LAN (10.231.20.0/24) through Debian's signed chain: OVMF PXE → TFTP
 * shimx64.efi (shim-signed) → grubx64.efi (grub-efi-amd64-signed's network GRUB) → its
 * per-MAC configuration from Lifeboat's boot service.
 *
 *   - The armed machine gets Debian's signed kernel (the test kernel package) and a busybox
 *     initramfs. There the kernel log says Secure Boot is enabled, lockdown is on, every
 *     storage and stack module the rescue image requires (rescue-image/manifest.ts) loads with
 *     its Debian signature, a copy of one module with its signature cut off is refused as unsigned, and
 *     the report reaches the job's agent log with the token from GRUB's kernel line.
 *   - The unarmed machine gets no kernel: GRUB goes on to its disk's removable loader (a
 *     small ESP with Debian's shim and signed disk GRUB), which the firmware and shim verify
 *     and which prints its marker.
 *
 * Full mode only: in proxy mode the signed GRUB asks the LAN server's next-server for its files,
 * never Lifeboat (tried here beside dnsmasq: shim and GRUB came from Lifeboat, then GRUB asked
 * nothing more), so dhcp.uefiLoader auto is iPXE there and shim is refused (firmware.ts).
 *
 * The signed files come from `apt-get download` into /var/cache/lifeboat/signed-loaders,
 * as `lifeboat image build` fetches them.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { REQUIRED_STACK_MODULES, REQUIRED_STORAGE_DRIVERS, moduleName } from "../../../rescue-image/manifest.ts";
import { fetchSignedLoaders } from "../../../rescue-image/signed-loaders.ts";
import { AGENT_BASE } from "../../../server/plan/agent-api.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { type Lan, createLan, netnsUnavailable } from "../../helpers/netns.ts";
import { OVMF_SB_CODE, type TestKernel, bootVm, buildTestInitramfs, moduleBytes, qemuUnavailable, reportInit, testKernel } from "../../helpers/qemu.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { armForTest } from "./armed.ts";
import { fullLanConfig, serveInNs } from "./lifeboat-ns.ts";
import { describeNeeding } from "../../helpers/needs.ts";

const skip =
  (await netnsUnavailable()) ??
  qemuUnavailable() ??
  ["/usr/bin/mcopy", "/usr/sbin/mkfs.fat", "/usr/sbin/sfdisk", "/usr/bin/apt-get", OVMF_SB_CODE].map((f) => (existsSync(f) ? undefined : `${f} is missing (scripts/bootstrap installs scripts/apt-packages.txt)`)).find(Boolean);

const SIGNED_CACHE = "/var/cache/lifeboat";
const BOOT_TIMEOUT = 300_000;
const work = tempDir("lbt7-sb-");
const ARMED = "52:54:00:20:00:11";
const UNARMED = "52:54:00:20:00:12";
let lan: Lan;
let kernel: TestKernel;
let disk: string;
let modules: string[];
let unpacked: string;

/** Every module file of the kernel package by module name. */
function moduleFiles(k: TestKernel): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ko(\.xz)?$/.test(e)) out.set(moduleName(e), p);
    }
  };
  walk(join(k.modules, "kernel"));
  return out;
}

/** The required storage and stack modules with their dependencies, in load order (modinfo's depends); built-in ones left out. */
async function storageModules(k: TestKernel): Promise<Array<{ name: string; file: string }>> {
  const files = moduleFiles(k);
  const builtin = new Set(readFileSync(join(k.modules, "modules.builtin"), "utf8").split("\n").filter(Boolean).map(moduleName));
  const order: Array<{ name: string; file: string }> = [];
  const seen = new Set<string>();
  const visit = async (name: string): Promise<void> => {
    if (seen.has(name) || builtin.has(name)) return;
    seen.add(name);
    const file = files.get(name);
    if (!file) throw new Error(`${name}: neither a module nor built into ${k.version}`);
    const deps = (await execa("modinfo", ["-F", "depends", file])).stdout.trim().split(",").filter(Boolean);
    for (const d of deps) await visit(moduleName(d));
    // Soft dependencies ("pre: crc32c" of libcrc32c, which fails to start without one): by name, or the
    // generic implementation of that algorithm (crc32c_generic); one that names neither is optional.
    const softdep = (await execa("modinfo", ["-F", "softdep", file])).stdout;
    for (const pre of /pre:\s*([^:]*?)(?:\s+post:|$)/m.exec(softdep)?.[1]?.split(/\s+/).filter(Boolean) ?? []) {
      const n = [moduleName(pre), `${moduleName(pre)}_generic`].find((c) => files.has(c) || builtin.has(c));
      if (n) await visit(n);
    }
    order.push({ name, file });
  };
  for (const m of [...REQUIRED_STORAGE_DRIVERS, ...REQUIRED_STACK_MODULES]) await visit(m);
  return order;
}

/** A module file without its appended signature (struct module_signature + magic; sig_len is the struct's last, big-endian field). */
function unsigned(ko: Buffer): Buffer {
  const magic = "~Module signature appended~\n";
  if (ko.subarray(ko.length - magic.length).toString("latin1") !== magic) throw new Error("the module carries no signature");
  const sigLen = ko.readUInt32BE(ko.length - magic.length - 4);
  return ko.subarray(0, ko.length - magic.length - 12 - sigLen);
}

/** Run by the test initramfs before it reports: Secure Boot and lockdown state, the storage modules, the unsigned module. */
const PROBE = `probe() {
  mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
  n=0; ok=0; bad=
  for m in $(cat /lib/modules/storage/order); do
    n=$((n+1))
    if [ -d /sys/module/$m ] || insmod /lib/modules/storage/$m.ko 2>/tmp/insmod.err; then ok=$((ok+1)); else bad="$bad,$m:$(tr -d '\\n' </tmp/insmod.err)"; fi
  done
  if insmod /lib/modules/unsigned/unsigned.ko 2>/dev/null; then u=loaded
  elif dmesg | grep -qE 'Loading of unsigned module is rejected|unsigned module loading is restricted'; then u=refused-unsigned
  else u=refused-otherwise; fi
  dmesg | grep -q 'Secure boot enabled' && sb=enabled || sb=off
  ld=$(sed -n 's/.*\\[\\(.*\\)\\].*/\\1/p' /sys/kernel/security/lockdown 2>/dev/null)
  printf ' sb=%s lockdown=%s modules=%s/%s unsigned=%s%s' "$sb" "\${ld:-unknown}" "$ok" "$n" "$u" "\${bad:+ failed=$bad}"
}`;

/** A 40 MiB GPT disk whose EFI system partition holds Debian's shim as \EFI\BOOT\BOOTX64.EFI, its signed disk GRUB and a grub.cfg that prints a marker and powers off. */
async function sbDisk(path: string): Promise<void> {
  await execa("truncate", ["-s", "40M", path]);
  await execa("sfdisk", ["--quiet", path], { input: "label: gpt\nstart=2048, size=77824, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n" });
  await execa("mkfs.fat", ["--offset", "2048", "-n", "ESP", path, String(77824 / 2)]);
  const at = `${path}@@1M`;
  const cfg = join(work, "disk-grub.cfg");
  writeFileSync(cfg, 'echo "LIFEBOAT-TEST: the disk\'s own shim and GRUB started under Secure Boot"\nsleep 1\nhalt\n');
  await execa("mmd", ["-i", at, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"]);
  await execa("mcopy", ["-i", at, join(unpacked, "usr/lib/shim/shimx64.efi.signed"), "::/EFI/BOOT/BOOTX64.EFI"]);
  await execa("mcopy", ["-i", at, join(unpacked, "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"), "::/EFI/BOOT/grubx64.efi"]);
  await execa("mcopy", ["-i", at, cfg, "::/EFI/debian/grub.cfg"]);
}

/** The armed machine's report in its job's agent log: Secure Boot and lockdown on, every storage module loaded, the unsigned one refused. */
async function expectSecureReport(store: SqliteStore, jobId: string, mac: string): Promise<void> {
  const log = (await store.jobs.events(jobId)).find((e) => e.type === "agent-log");
  expect(log, "the test initramfs posted to the job's agent log").toBeDefined();
  const text = (log!.data as { text: string }).text;
  console.log(`secure boot: ${mac} reported: ${text}`);
  expect(text).toMatch(new RegExp(`^netboot-test ok mac=${mac} cmdline-mac=${mac} kernel=${kernel.version} `));
  expect(text).toContain(" sb=enabled ");
  expect(text).toMatch(/ lockdown=(integrity|confidentiality) /);
  expect(text).toContain(` modules=${modules.length}/${modules.length} `);
  // The kernel's own words: "Loading of unsigned module is rejected" (signatures enforced under Secure Boot).
  expect(text).toMatch(/ unsigned=refused-unsigned( |$)/);
  expect(text).not.toContain("failed=");
}

describeNeeding(skip, "Secure Boot: QEMU machines network-boot through Debian's signed shim → GRUB → kernel", () => {
  beforeAll(async () => {
    kernel = await testKernel();
    const dataDir = join(work, "srv");
    const signed = await fetchSignedLoaders({ cacheDir: SIGNED_CACHE, outDir: join(dataDir, "image"), progress: () => {} });
    unpacked = signed.unpacked;
    const storage = await storageModules(kernel);
    modules = storage.map((m) => m.name);
    const extra: Record<string, Buffer | string> = { "lib/modules/storage/order": `${modules.join("\n")}\n` };
    for (const m of storage) extra[`lib/modules/storage/${m.name}.ko`] = await moduleBytes(m.file);
    // A leaf module outside the storage set, its signature cut off: lockdown must refuse it.
    extra["lib/modules/unsigned/unsigned.ko"] = unsigned(await moduleBytes(moduleFiles(kernel).get("nls_koi8_r")!));
    await buildTestInitramfs(kernel, join(dataDir, "image", "initramfs"), reportInit(AGENT_BASE, PROBE), extra);
    await execa("cp", [kernel.vmlinuz, join(dataDir, "image", "vmlinuz")]);
    disk = join(work, "esp.img");
    await sbDisk(disk);
    lan = await createLan({ prefix: "lbt7-sb", subnet: "10.231.20", members: { srv: 1 } });
    await lan.addTap("tap0");
    await lan.addTap("tap1");
  }, 600_000);
  afterAll(async () => {
    await lan?.down();
  });

  it("an armed machine reaches the signed kernel with Secure Boot and lockdown on, its storage modules load, an unsigned one is refused; an unarmed one gets back to its disk's shim", async () => {
    const dataDir = join(work, "srv");
    mkdirSync(dataDir, { recursive: true });
    const store = new SqliteStore(join(dataDir, "lifeboat.db"));
    const job = await armForTest(store, { host: "sb-armed", macs: [ARMED] });
    // dhcp.uefiLoader left at its default (auto): the signed files in the image directory make it shim.
    const srv = await serveInNs(lan, "srv", dataDir, fullLanConfig("10.231.20", []), ["http", "tftp", "dhcp"]);
    const started = Date.now();
    const common = { lan, firmware: "uefi" as const, secureBoot: true, workDir: work };
    const armed = bootVm({ ...common, tap: "tap0", mac: ARMED, serialLog: join(work, "armed.serial") });
    const unarmed = bootVm({
      ...common,
      tap: "tap1",
      mac: UNARMED,
      serialLog: join(work, "unarmed.serial"),
      extraArgs: ["-drive", `file=${disk},format=raw,if=none,id=d0`, "-device", "virtio-blk-pci,drive=d0,bootindex=2"],
    });
    try {
      const seconds = await Promise.all([
        armed.waitSerial(/NETBOOT-TEST: REPORT SENT/, BOOT_TIMEOUT).then(() => (Date.now() - started) / 1000),
        unarmed.waitSerial(/LIFEBOAT-TEST: the disk's own shim and GRUB started under Secure Boot/, BOOT_TIMEOUT).then(() => (Date.now() - started) / 1000),
      ]);
      await expectSecureReport(store, job.id, ARMED);
      // The chain as the server saw it: shim, then GRUB, then the per-MAC configurations, one kernel only.
      const tftp = srv.lines().filter((l) => l.svc === "tftp" && l.msg === "sent").map((l) => `${String(l.client).split(":")[0]} ${String(l.file)}`);
      for (const f of ["shimx64.efi", "grubx64.efi", "grub/grub.cfg", `grub/lifeboat/${ARMED}.cfg`, "lifeboat/vmlinuz", "lifeboat/initramfs", `grub/lifeboat/${UNARMED}.cfg`])
        expect(tftp.some((t) => t.endsWith(` ${f}`) || t.endsWith(` /${f}`)), `TFTP sent ${f}: ${tftp.join(", ")}`).toBe(true);
      expect(tftp.filter((t) => /lifeboat\/vmlinuz$/.test(t))).toHaveLength(1);
      expect(armed.serial()).toMatch(new RegExp(`Lifeboat: ${ARMED} has job ${job.id}: loading the rescue system`));
      expect(unarmed.serial()).toMatch(new RegExp(`Lifeboat: no recovery job for ${UNARMED}, booting from local disk`));
      expect(unarmed.serial()).not.toContain("NETBOOT-TEST");
      console.log(`secure boot: the armed machine reported after ${seconds[0]!.toFixed(1)} s, the unarmed one reached its disk after ${seconds[1]!.toFixed(1)} s`);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- lifeboat log tail ---\n${srv.log().split("\n").slice(-30).join("\n")}`);
    } finally {
      await armed.kill();
      await unarmed.kill();
      await srv.stop();
      await store.close();
    }
  }, BOOT_TIMEOUT + 60_000);
});
