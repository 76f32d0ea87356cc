/** The drill's values (server/drill/drill-plan.ts): MAC, disks and mapping, QEMU arguments, command line, console tail. */
import { describe, expect, it } from "vitest";
import { GUEST_SERVER, consoleTail, drillCmdline, drillDisks, drillMac, drillQemuArgs } from "../../../server/drill/drill-plan.ts";
import { parseKernelArgs } from "../../../server/plan/cmdline.ts";
import { fixtureLayout } from "../recovery/fixtures.ts";

const GiB = 1024 ** 3;

describe("drill plan", () => {
  it("a locally administered MAC per host, stable, one host's never another's", () => {
    expect(drillMac("web1")).toMatch(/^02:4c:42(:[0-9a-f]{2}){3}$/);
    expect(drillMac("web1")).toBe(drillMac("web1"));
    expect(drillMac("web2")).not.toBe(drillMac("web1"));
  });

  it("one thin disk per captured disk at its size, mapped by serial; a disk the profile leaves out stays out", () => {
    const layout = fixtureLayout("multi-disk");
    const names = layout.disks.map((d) => d.name);
    const all = drillDisks(layout, undefined, 1024 * GiB);
    if ("problem" in all) throw new Error(all.problem);
    expect(all.disks.map((d) => [d.captured, d.serial, d.sizeBytes])).toEqual(layout.disks.map((d, i) => [d.name, `LBDRILL${i}`, d.sizeBytes]));
    expect(all.mapping).toEqual(Object.fromEntries(names.map((n, i) => [n, `serial:LBDRILL${i}`])));
    const without = drillDisks(layout, { [names[1]!]: null }, 1024 * GiB);
    if ("problem" in without) throw new Error(without.problem);
    expect(without.disks.map((d) => d.captured)).toEqual(names.filter((n) => n !== names[1]));
    expect(without.mapping[names[1]!]).toBe("none");
    expect(drillDisks(layout, Object.fromEntries(names.map((n) => [n, null])), 1024 * GiB)).toEqual({ problem: "the layout leaves no disk to restore" });
  });

  it("refuses disks adding up to more than the bound, naming each", () => {
    const layout = fixtureLayout("gpt-uefi");
    expect(drillDisks(layout, undefined, 0.5 * GiB)).toEqual({ problem: "its disks add up to 1 GiB, more than drill.maxDiskGiB (0.5 GiB): sda 1 GiB" });
  });

  it("the kernel command line carries the network boot's keys, read back as the agent's contract reads them", () => {
    const line = drillCmdline("job-1a2b", "TOKEN_abc-123", "02:4c:42:00:00:01");
    expect(parseKernelArgs(line)).toEqual({ server: `http://${GUEST_SERVER}`, job: "job-1a2b", token: "TOKEN_abc-123", mac: "02:4c:42:00:00:01" });
    expect(line).toContain("console=ttyS0,115200n8");
  });

  it("QEMU: the rescue boot on a restricted network with only the forward; the disk boot with no way out", () => {
    const spec = { accel: ["-accel", "tcg"], firmware: "uefi" as const, ovmfVars: "/w/vars.fd", memoryMiB: 768, cpus: 1, mac: "02:4c:42:00:00:01", disks: [{ captured: "vda", serial: "LBDRILL0", sizeBytes: GiB, file: "/w/vda.raw" }] };
    const rescue = drillQemuArgs(spec, { vmlinuz: "/i/vmlinuz", initramfs: "/i/initramfs", cmdline: "lifeboat.job=j", forward: "socat STDIO TCP:127.0.0.1:8080" });
    expect(rescue.join(" ")).toBe(
      "-accel tcg -m 768 -smp 1 -machine q35 -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd -drive if=pflash,format=raw,unit=1,file=/w/vars.fd " +
        "-nographic -vga none -no-reboot -kernel /i/vmlinuz -initrd /i/initramfs -append lifeboat.job=j " +
        "-netdev user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:socat STDIO TCP:127.0.0.1:8080 -device virtio-net-pci,netdev=n0,mac=02:4c:42:00:00:01,romfile= " +
        "-drive file=/w/vda.raw,if=none,id=d0,format=raw -device virtio-blk-pci,drive=d0,serial=LBDRILL0",
    );
    const disk = drillQemuArgs({ ...spec, firmware: "bios" }).join(" ");
    expect(disk).toContain("-machine pc ");
    expect(disk).toContain("-netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0,mac=02:4c:42:00:00:01 ");
    expect(disk).toContain("virtio-blk-pci,drive=d0,serial=LBDRILL0,bootindex=1");
    expect(disk).not.toContain("-kernel");
    expect(() => drillQemuArgs(spec, { vmlinuz: "v", initramfs: "i", cmdline: "c", forward: "socat STDIO TCP:1.2.3.4:1,fork" })).toThrow("has a comma");
  });

  it("the console's last lines without escapes or control characters", () => {
    const serial = "\x1b[2J\x1b[01;01HBooting\r\nLoading initial ramdisk ...\r\n\r\n[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs\r\n\x07end\r\n";
    expect(consoleTail(serial)).toBe("Booting | Loading initial ramdisk ... | [    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs | end");
    expect(consoleTail("a\nb\nc\nd", 2)).toBe("c | d");
    expect(consoleTail("")).toBe("");
  });
});
