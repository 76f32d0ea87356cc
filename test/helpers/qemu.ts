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
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { OVMF_CODE, firmwareArgs, freshOvmfVars, qemuAccelerator, startQemu, vmHandle, type Vm } from "../../server/drill/qemu.ts";
import type { Lan } from "./netns.ts";

export const KERNEL_CACHE = process.env.LIFEBOAT_KERNEL_CACHE ?? "/var/cache/lifeboat/netboot";
export { OVMF_SB_CODE, type Vm, firmwareArgs, freshOvmfVars } from "../../server/drill/qemu.ts";

/** QEMU's accelerator arguments: KVM where a hardware KVM module is loaded and /dev/kvm opens, else TCG (server/drill/qemu.ts). */
export function qemuAccel(): string[] {
  return qemuAccelerator().args;
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
 * then powers off. `probe`: shell lines run first that define `probe()`, whose output is
 * appended to the posted line (e.g. the Secure Boot state).
 */
export function reportInit(agentBase: string, probe = "probe() { :; }"): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "NETBOOT-TEST: userland reached, kernel $(uname -r)"
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m 2>/dev/null; done
${probe}
result=$(probe); echo "NETBOOT-TEST: probe:$result"
arg() { sed -n "s/.*$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
srv=$(arg lifeboat.server); job=$(arg lifeboat.job); token=$(arg lifeboat.token); want=$(arg lifeboat.mac)
ip link set lo up
# The first NIC (a device behind it): loading bonding makes a bond0 with none.
for i in 1 2 3 4 5 6 7 8 9 10; do ifc=$(for n in $(ls /sys/class/net); do [ -e /sys/class/net/$n/device ] && echo $n; done | head -1); [ -n "$ifc" ] && break; sleep 1; done
mac=$(cat /sys/class/net/$ifc/address); ip link set "$ifc" up
echo "NETBOOT-TEST: iface=$ifc mac=$mac server=$srv job=$job"
if udhcpc -i "$ifc" -n -q -t 10 -T 2 -s /etc/udhcpc.script; then
  wget -q -O - --header "Authorization: Bearer $token" --header "Content-Type: text/plain" \\
    --post-data "netboot-test ok mac=$mac cmdline-mac=$want kernel=$(uname -r)$result" "$srv${agentBase}/$job/log" && echo "NETBOOT-TEST: REPORT SENT"
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

/** A module file of the kernel package as insmod takes it: Debian's .ko.xz unpacked (the signature is inside, appended to the .ko). */
export async function moduleBytes(file: string): Promise<Buffer> {
  return file.endsWith(".xz") ? Buffer.from((await execa("xz", ["-dc", file], { encoding: "buffer" })).stdout) : readFileSync(file);
}

/**
 * Builds a gzip'd newc initramfs at `out` with busybox, the NIC modules and `init`;
 * `extra`: more files, by path in the initramfs.
 */
export async function buildTestInitramfs(kernel: TestKernel, out: string, init: string, extra: Record<string, Buffer | string> = {}): Promise<void> {
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
    writeFileSync(join(root, "lib/modules", base), await moduleBytes(join(dir, file)));
    order.push(base);
  }
  for (const [path, data] of Object.entries(extra)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), data);
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
  /** UEFI with Secure Boot enforced (OVMF_CODE_4M.secboot.fd, a fresh copy of OVMF_VARS_4M.ms.fd unless ovmfVars). */
  secureBoot?: boolean;
  /** true: a guest reboot resets the machine, as real hardware does; default: QEMU exits (-no-reboot). */
  reboot?: boolean;
  /** The NIC's backend (`-netdev` value with id=n0) instead of `tap` on the bridge, e.g. a port of test/helpers/vlan-switch.ts. */
  netdev?: string;
}

/**
 * The command that boots a machine from the network (run in the LAN namespace). BIOS: SeaBIOS
 * runs the NIC's iPXE ROM (QEMU has no other BIOS PXE). UEFI: OVMF's own PXE with the NIC's
 * option ROM switched off (`romfile=`), so the firmware's PXE, not iPXE, does the first DHCP
 * and TFTP.
 */
export function netBootArgv(o: VmOptions): string[] {
  const nic = o.nic ?? "virtio-net-pci";
  const device = `${nic}${o.firmware === "uefi" ? ",romfile=" : ""},netdev=n0,mac=${o.mac}${o.netBoot === false ? "" : ",bootindex=1"}`;
  return [
    "qemu-system-x86_64", ...qemuAccel(), "-m", "512", "-smp", "1", ...firmwareArgs(o.firmware, () => o.ovmfVars ?? freshOvmfVars(o.workDir, o.mac.replace(/:/g, ""), o.secureBoot), o.secureBoot),
    "-nographic", "-vga", "none", ...(o.reboot ? [] : ["-no-reboot"]),
    "-netdev", o.netdev ?? `tap,id=n0,ifname=${o.tap},script=no,downscript=no`, "-device", device,
    ...(o.extraArgs ?? []),
  ];
}

/** Starts `netBootArgv(o)` in the LAN namespace with its serial console in `o.serialLog`. */
export function bootVm(o: VmOptions): Vm {
  writeFileSync(o.serialLog, "");
  const proc = o.lan.spawn("lan", netBootArgv(o), { stdout: o.serialLog, stderr: `${o.serialLog}.stderr` });
  return vmHandle(proc, o.serialLog);
}

/** A NIC of a machine booted from its disk: QEMU's user-mode network behind it (the host's loopback is 10.0.2.2 there). */
export interface DiskBootNic {
  /** QEMU device model, e.g. e1000 or virtio-net-pci. */
  model: string;
  mac: string;
  /** PCI slot, e.g. 0x6 (the slot gives the predictable interface name). */
  addr?: string;
  /** Options of its own user-mode network, e.g. `net=10.0.3.0/24,host=10.0.3.2` (default QEMU's 10.0.2.0/24). */
  net?: string;
}

/**
 * Boots a machine from its own disk image (virtio, raw): proves a restored disk boots on its
 * own. No network unless `nics` (without an option ROM: the firmware boots the disk, never the
 * network); several NICs each on a user-mode network of its own. UEFI uses `ovmfVars` when given (the NVRAM the recovery wrote its boot entry into),
 * else a fresh store. `-no-reboot`, so a system that powers off ends QEMU.
 */
export function bootDisk(o: { disk: string; firmware: "bios" | "uefi"; serialLog: string; workDir: string; ovmfVars?: string; nics?: DiskBootNic[] }): Vm {
  const nics = o.nics ?? [];
  const nic = nics.length
    ? nics.flatMap((n, i) => ["-netdev", `user,id=n${i}${n.net ? `,${n.net}` : ""}`, "-device", `${n.model},netdev=n${i},mac=${n.mac}${n.addr ? `,addr=${n.addr}` : ""},romfile=`])
    : ["-nic", "none"];
  return startQemu(
    [
      ...qemuAccel(), "-m", "1024", "-smp", "2", ...firmwareArgs(o.firmware, () => o.ovmfVars ?? freshOvmfVars(o.workDir, "disk")),
      "-nographic", "-vga", "none", "-no-reboot", ...nic,
      "-drive", `file=${o.disk},format=raw,if=none,id=d0`, "-device", "virtio-blk-pci,drive=d0,bootindex=1",
    ],
    o.serialLog,
  );
}
