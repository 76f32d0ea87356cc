import { describe, expect, it } from "vitest";
import { versionLine } from "../../../rescue-image/build.ts";
import {
  REQUIRED_NIC_DRIVERS,
  imagePath,
  missingDrivers,
  moduleClosure,
  moduleName,
  parseModulesDep,
  pickKernelVersion,
} from "../../../rescue-image/manifest.ts";

const dep = `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/sound/core/snd.ko:
`;

describe("rescue image manifest helpers", () => {
  it("moduleClosure takes whole trees plus their dependencies, nothing else", () => {
    const m = moduleClosure(parseModulesDep(dep), ["drivers/net", "fs/ext4"]);
    expect(m).toEqual([
      "kernel/drivers/net/net_failover.ko",
      "kernel/drivers/net/virtio_net.ko",
      "kernel/fs/ext4/ext4.ko",
      "kernel/fs/jbd2/jbd2.ko",
      "kernel/fs/mbcache.ko",
      "kernel/lib/crc16.ko",
      "kernel/net/core/failover.ko",
    ]);
    // A tree name is a path prefix, not a string prefix.
    expect(moduleClosure(parseModulesDep(dep), ["fs/ext"])).toEqual([]);
  });

  it("module names, builtins and missing drivers", () => {
    expect(moduleName("kernel/drivers/md/dm-crypt.ko")).toBe("dm_crypt");
    expect(moduleName("kernel/drivers/md/raid456.ko.xz")).toBe("raid456");
    expect(missingDrivers(["ext4", "virtio_net", "e1000"], ["kernel/fs/ext4/ext4.ko"], ["kernel/drivers/net/virtio_net.ko"])).toEqual(["e1000"]);
    expect(REQUIRED_NIC_DRIVERS).toContain("e1000e");
  });

  it("usr-merged paths, kernel pick, version lines", () => {
    expect(imagePath("sbin/sfdisk")).toBe("usr/sbin/sfdisk");
    expect(imagePath("lib64/ld-linux-x86-64.so.2")).toBe("usr/lib64/ld-linux-x86-64.so.2");
    expect(imagePath("usr/bin/curl")).toBe("usr/bin/curl");
    expect(imagePath("etc/lvm/lvm.conf")).toBe("etc/lvm/lvm.conf");
    expect(pickKernelVersion(["6.1.0-9-amd64", "6.1.0-10-amd64", "extra"])).toBe("6.1.0-10-amd64");
    expect(() => pickKernelVersion([])).toThrow(/no linux-image/);
    expect(versionLine("Incompatible libdevmapper 1.02\n  LVM version:  2.03.16(2)\n")).toBe("LVM version:  2.03.16(2)");
    expect(versionLine("BusyBox v1.35.0 multi-call binary.\nUsage: x")).toBe("BusyBox v1.35.0 multi-call binary.");
  });
});
