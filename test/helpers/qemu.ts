/**
 * QEMU network-boot machines for tests, plus a test kernel and initramfs.
 *
 * - `bootVm()` starts a machine (SeaBIOS + the NIC's iPXE ROM, or OVMF with its own
 *   PXE and the NIC ROM off) on a tap in a test LAN (see netns.ts) with a serial log.
 * - `testKernel()` fetches Debian's current kernel package with `apt-get download` into
 *   /var/cache/lifeboat/netboot (never installed on the host; reused when present).
 * - `buildTestInitramfs()` makes a tiny busybox initramfs with the NIC modules and an /init
 *   script you give; `reportInit()` is one that brings the NIC up and POSTs a line to the
 *   Lifeboat agent log with the job and token from the kernel command line.
 *
 * Accelerator: `qemuAccel()`, KVM only where kvm_intel or kvm_amd is loaded (on these
 * machines /dev/kvm is a software hypervisor on which iPXE crashes, and neither is), else TCG.
 */
import { accessSync, chmodSync, constants, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import type { Lan } from "./netns.ts";

export const KERNEL_CACHE = process.env.LIFEBOAT_KERNEL_CACHE ?? "/var/cache/lifeboat/netboot";
const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/** QEMU's accelerator arguments: KVM where a hardware KVM module is loaded and /dev/kvm opens, else TCG. */
export function qemuAccel(): string[] {
  if (existsSync("/sys/module/kvm_intel") || existsSync("/sys/module/kvm_amd")) {
    try {
      accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
      return ["-accel", "kvm", "-cpu", "host"];
    } catch {
      // not usable by this user: TCG
    }
  }
  return ["-accel", "tcg"];
}

/** What is missing to boot QEMU machines here, or undefined. */
export function qemuUnavailable(): string | undefined {
  for (const f of ["/usr/bin/qemu-system-x86_64", OVMF_CODE, "/usr/lib/ipxe/qemu/pxe-virtio.rom", "/bin/busybox"])
    if (!existsSync(f)) return `${f} is missing (scripts/bootstrap installs qemu-system-x86, ovmf, ipxe-qemu, busybox-static)`;
  return undefined;
}

export interface TestKernel {
  vmlinuz: string;
  /** /lib/modules/<version> of the unpacked package. */
  modules: string;
  version: string;
}

/** Debian's current amd64 kernel, downloaded and unpacked once into the cache. */
export async function testKernel(cache = KERNEL_CACHE): Promise<TestKernel> {
  const x = join(cache, "x");
  if (!existsSync(join(x, "lib/modules"))) {
    mkdirSync(cache, { recursive: true });
    const deps = await execa("apt-cache", ["depends", "linux-image-amd64"]);
    const pkg = /Depends: (linux-image-[0-9]\S+)/.exec(deps.stdout)?.[1];
    if (!pkg) throw new Error("apt-cache depends linux-image-amd64 names no kernel package (apt-get update?)");
    for (const f of readdirSync(cache)) if (f.endsWith(".deb")) rmSync(join(cache, f));
    await execa("apt-get", ["-o", "DPkg::Lock::Timeout=600", "download", pkg], { cwd: cache });
    const deb = readdirSync(cache).find((f) => f.endsWith(".deb"))!;
    rmSync(x, { recursive: true, force: true });
    await execa("dpkg-deb", ["-x", join(cache, deb), x]);
  }
  const version = readdirSync(join(x, "lib/modules"))[0]!;
  const vmlinuz = join(x, "boot", readdirSync(join(x, "boot")).find((f) => f.startsWith("vmlinuz-"))!);
  return { vmlinuz, modules: join(x, "lib/modules", version), version };
}

/** Modules for QEMU's virtio-net and e1000 NICs, in load order. */
const NIC_MODULES = [
  "kernel/drivers/virtio/virtio_ring.ko",
  "kernel/drivers/virtio/virtio.ko",
  "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
  "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
  "kernel/drivers/virtio/virtio_pci.ko",
  "kernel/net/core/failover.ko",
  "kernel/drivers/net/net_failover.ko",
  "kernel/drivers/net/virtio_net.ko",
  "kernel/drivers/net/ethernet/intel/e1000/e1000.ko",
];

/**
 * The /init of the test initramfs: loads the NIC modules, takes an address with udhcpc,
 * reads lifeboat.server/job/token from /proc/cmdline and POSTs "netboot-test ok …" to
 * the job's agent log with the token (so the token on the command line is proven to work),
 * then powers off.
 */
export function reportInit(agentBase: string): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "NETBOOT-TEST: userland reached, kernel $(uname -r)"
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m 2>/dev/null; done
arg() { sed -n "s/.*$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
srv=$(arg lifeboat.server); job=$(arg lifeboat.job); token=$(arg lifeboat.token); want=$(arg lifeboat.mac)
ip link set lo up
for i in 1 2 3 4 5 6 7 8 9 10; do ifc=$(ls /sys/class/net | grep -v '^lo$' | head -1); [ -n "$ifc" ] && break; sleep 1; done
mac=$(cat /sys/class/net/$ifc/address); ip link set "$ifc" up
echo "NETBOOT-TEST: iface=$ifc mac=$mac server=$srv job=$job"
if udhcpc -i "$ifc" -n -q -t 10 -T 2 -s /etc/udhcpc.script; then
  wget -q -O - --header "Authorization: Bearer $token" --header "Content-Type: text/plain" \\
    --post-data "netboot-test ok mac=$mac cmdline-mac=$want kernel=$(uname -r)" "$srv${agentBase}/$job/log" && echo "NETBOOT-TEST: REPORT SENT"
fi
sleep 1; poweroff -f
`;
}

const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/\${mask:-24}" dev "$interface"
               [ -n "$router" ] && ip route add default via "\${router%% *}" dev "$interface"; true;;
esac
`;

/** Builds a gzip'd newc initramfs at `out` with busybox, the NIC modules and `init`. */
export async function buildTestInitramfs(kernel: TestKernel, out: string, init: string): Promise<void> {
  const root = `${out}.d`;
  rmSync(root, { recursive: true, force: true });
  for (const d of ["bin", "sbin", "proc", "sys", "dev", "etc", "tmp", "lib/modules"]) mkdirSync(join(root, d), { recursive: true });
  copyFileSync("/bin/busybox", join(root, "bin/busybox"));
  chmodSync(join(root, "bin/busybox"), 0o755);
  const order: string[] = [];
  for (const m of NIC_MODULES) {
    const dir = join(kernel.modules, m.slice(0, m.lastIndexOf("/")));
    const base = m.slice(m.lastIndexOf("/") + 1);
    const file = readdirSync(dir).find((f) => f.startsWith(base));
    if (!file) continue;
    // Debian compresses modules (.ko.xz): busybox insmod cannot read them, so unpack.
    const dst = join(root, "lib/modules", base);
    if (file.endsWith(".xz")) writeFileSync(dst, (await execa("xz", ["-dc", join(dir, file)], { encoding: "buffer" })).stdout);
    else copyFileSync(join(dir, file), dst);
    order.push(base);
  }
  writeFileSync(join(root, "lib/modules/order"), `${order.join("\n")}\n`);
  writeFileSync(join(root, "etc/udhcpc.script"), UDHCPC_SCRIPT, { mode: 0o755 });
  writeFileSync(join(root, "init"), init, { mode: 0o755 });
  await execa("sh", ["-c", `cd '${root}' && find . | cpio -o -H newc --quiet | gzip -1 > '${out}'`]);
  rmSync(root, { recursive: true, force: true });
}

export interface VmOptions {
  lan: Lan;
  tap: string;
  mac: string;
  firmware: "bios" | "uefi";
  /** Serial console log file. */
  serialLog: string;
  /** Scratch directory (OVMF vars copy). */
  workDir: string;
  /** NIC model; default virtio-net-pci. */
  nic?: string;
  extraArgs?: string[];
  /** UEFI: this variable store (the machine's NVRAM, kept across its boots) instead of a fresh one. */
  ovmfVars?: string;
  /** false: the NIC is not a boot device (a machine that boots its disk first); default true. */
  netBoot?: boolean;
}

export interface Vm {
  proc: ResultPromise;
  serial(): string;
  /** Resolves when `re` shows up in the serial log; rejects on timeout or when QEMU exits first. */
  waitSerial(re: RegExp, timeoutMs: number): Promise<void>;
  kill(): Promise<void>;
}

/** A fresh copy of OVMF's variable store (its NVRAM: boot entries live there). */
export function freshOvmfVars(workDir: string, name: string): string {
  const vars = join(workDir, `vars-${name}.fd`);
  copyFileSync(OVMF_VARS, vars);
  return vars;
}

/** QEMU's firmware arguments: SeaBIOS on `pc`, or OVMF on `q35` with the given variable store. */
export function firmwareArgs(firmware: "bios" | "uefi", vars: () => string): string[] {
  if (firmware === "bios") return ["-machine", "pc"];
  return ["-machine", "q35", "-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, "-drive", `if=pflash,format=raw,file=${vars()}`];
}

/** The Vm handle of a started QEMU process whose serial console goes to `serialLog`. */
function vmHandle(proc: ResultPromise, serialLog: string): Vm {
  const serial = () => (existsSync(serialLog) ? readFileSync(serialLog, "latin1") : "");
  return {
    proc,
    serial,
    waitSerial: async (re, timeoutMs) => {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (re.test(serial())) return;
        if (proc.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      if (re.test(serial())) return;
      throw new Error(`serial log never showed ${re} (${proc.exitCode !== null ? `QEMU exited ${proc.exitCode}` : "timeout"}); last lines:\n${serial().slice(-1500)}`);
    },
    kill: async () => {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      await Promise.race([proc, new Promise((r) => setTimeout(r, 3000))]);
    },
  };
}

/**
 * Boots a machine from the network. BIOS: SeaBIOS runs the NIC's iPXE ROM (QEMU has no
 * other BIOS PXE). UEFI: OVMF's own PXE with the NIC's option ROM switched off (`romfile=`),
 * so the firmware's PXE, not iPXE, does the first DHCP and TFTP.
 */
export function bootVm(o: VmOptions): Vm {
  const nic = o.nic ?? "virtio-net-pci";
  const device = `${nic}${o.firmware === "uefi" ? ",romfile=" : ""},netdev=n0,mac=${o.mac}${o.netBoot === false ? "" : ",bootindex=1"}`;
  writeFileSync(o.serialLog, "");
  const proc = o.lan.spawn(
    "lan",
    [
      "qemu-system-x86_64", ...qemuAccel(), "-m", "512", "-smp", "1", ...firmwareArgs(o.firmware, () => o.ovmfVars ?? freshOvmfVars(o.workDir, o.mac.replace(/:/g, ""))),
      "-nographic", "-vga", "none", "-no-reboot",
      "-netdev", `tap,id=n0,ifname=${o.tap},script=no,downscript=no`, "-device", device,
      ...(o.extraArgs ?? []),
    ],
    { stdout: o.serialLog, stderr: `${o.serialLog}.stderr` },
  );
  return vmHandle(proc, o.serialLog);
}

/**
 * Boots a machine from its own disk image (virtio, raw), no network: proves a restored disk
 * boots on its own. UEFI uses `ovmfVars` when given (the NVRAM the recovery wrote its boot
 * entry into), else a fresh store. `-no-reboot`, so a system that powers off ends QEMU.
 */
export function bootDisk(o: { disk: string; firmware: "bios" | "uefi"; serialLog: string; workDir: string; ovmfVars?: string }): Vm {
  writeFileSync(o.serialLog, "");
  const proc = execa(
    "qemu-system-x86_64",
    [
      ...qemuAccel(), "-m", "1024", "-smp", "2", ...firmwareArgs(o.firmware, () => o.ovmfVars ?? freshOvmfVars(o.workDir, "disk")),
      "-nographic", "-vga", "none", "-no-reboot", "-nic", "none",
      "-drive", `file=${o.disk},format=raw,if=none,id=d0`, "-device", "virtio-blk-pci,drive=d0,bootindex=1",
    ],
    { reject: false, stdin: "ignore", stdout: { file: o.serialLog }, stderr: { file: `${o.serialLog}.stderr` } },
  );
  return vmHandle(proc, o.serialLog);
}
