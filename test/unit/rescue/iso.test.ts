import { describe, expect, it } from "vitest";
import { ISO_INITRD, ISO_KERNEL, isoGrubConfig, xorrisoArgs } from "../../../rescue-image/iso.ts";
import { parseMediaNet } from "../../../server/cli/image.ts";
import { ONE_TIME_CODE_MAX_WRONG, oneTimeCodeRefusal } from "../../../server/jobs/boot-policy.ts";
import { parseKernelArgs } from "../../../server/plan/cmdline.ts";
import { newOneTimeCode, normaliseOneTimeCode } from "../../../server/tokens.ts";
import { job } from "../jobs/job-fixture.ts";

describe("the rescue medium's GRUB configuration (both GRUBs read it)", () => {
  it("boots the rescue kernel with the medium's keys of the one kernel command line contract", () => {
    const cfg = isoGrubConfig({ server: "http://10.0.5.1:8080", code: "ABCD-EFGH-JK23", ip: "10.0.5.20/24", gw: "10.0.5.1" });
    const linux = cfg.split("\n").find((l) => l.trim().startsWith("linux "))!;
    expect(linux.trim().split(" ")[1]).toBe(ISO_KERNEL);
    expect(parseKernelArgs(linux)).toEqual({ server: "http://10.0.5.1:8080", code: "ABCD-EFGH-JK23", ip: "10.0.5.20/24", gw: "10.0.5.1" });
    expect(linux).toContain("console=ttyS0,115200n8");
    expect(cfg).toContain(`initrd ${ISO_INITRD}`);
    // Nothing given: no lifeboat key at all (the agent asks on the console), no double blank.
    const bare = isoGrubConfig({});
    expect(bare).toContain(`linux ${ISO_KERNEL} console=tty0`);
    expect(bare).not.toContain("lifeboat.");
  });

  it("refuses a value the kernel would split (the contract's own check)", () => {
    expect(() => isoGrubConfig({ server: "http://x y" })).toThrow(/lifeboat\.server: unsafe value/);
  });

  it("xorriso: BIOS El Torito + GRUB's hybrid MBR, the ESP appended and as the UEFI El Torito entry", () => {
    const a = xorrisoArgs("/r", "/e.img", "/o.iso");
    expect(a.slice(0, 2)).toEqual(["-as", "mkisofs"]);
    expect(a).toEqual(expect.arrayContaining(["--grub2-mbr", "/usr/lib/grub/i386-pc/boot_hybrid.img", "-append_partition", "2", "0xef", "/e.img", "-eltorito-alt-boot"]));
    expect(a[a.indexOf("-b") + 1]).toBe("boot/grub/i386-pc/eltorito.img");
    expect(a[a.indexOf("-e") + 1]).toBe("--interval:appended_partition_2:all::");
    expect(a.at(-1)).toBe("/r");
  });
});

describe("--net of image iso", () => {
  it("dhcp, or static with an optional gateway and DNS server", () => {
    expect(parseMediaNet("dhcp")).toBeUndefined();
    expect(parseMediaNet("static:10.0.5.20/24")).toEqual({ address: "10.0.5.20/24" });
    expect(parseMediaNet("static:10.0.5.20/24,10.0.5.1,10.0.5.2")).toEqual({ address: "10.0.5.20/24", gateway: "10.0.5.1", dns: ["10.0.5.2"] });
  });
  it("anything else is one line", () => {
    expect(() => parseMediaNet("static:10.0.5.20")).toThrow(/^--net: expected an IPv4 address with its prefix/);
    expect(() => parseMediaNet("static:10.0.5.20/24,gw")).toThrow(/^--net: expected an IPv4 address: /);
    expect(() => parseMediaNet("static:a,b,c,d")).toThrow(/^--net: expected dhcp or static/);
  });
});

describe("one-time codes", () => {
  it("are 12 symbols a person types from a screen; typing is forgiving about case, dashes and blanks", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const c = newOneTimeCode();
      expect(c).toMatch(/^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$/);
      seen.add(c);
    }
    expect(seen.size).toBe(200);
    expect(normaliseOneTimeCode(" abcd-efgh jk23\t")).toBe("ABCDEFGHJK23");
  });

  const now = 1_000_000;
  const entry = { job: "job-1", issuedAt: now - 1000, expiresAt: now + 1000 };
  const armed = job({ id: "job-1", state: "armed" });
  const ok = { entry, job: armed, bootable: true, wrongRecently: 0, now };
  it("vouch only for an issued, unused, unexpired code of a bootable job that is no drill, from an address that is not guessing", () => {
    expect(oneTimeCodeRefusal(ok)).toBeNull();
    expect(oneTimeCodeRefusal({ ...ok, entry: undefined })).toMatch(/^no such one-time code on this server/);
    expect(oneTimeCodeRefusal({ ...ok, entry: { ...entry, used: { at: now - 10, by: "10.0.0.9" } } })).toMatch(/^this one-time code was used already \(at .* from 10\.0\.0\.9\)/);
    expect(oneTimeCodeRefusal({ ...ok, now: now + 2000 })).toMatch(/^this one-time code expired at /);
    expect(oneTimeCodeRefusal({ ...ok, job: undefined })).toBe("job job-1 no longer exists");
    expect(oneTimeCodeRefusal({ ...ok, job: job({ id: "job-1", kind: "drill" }) })).toMatch(/is a drill/);
    expect(oneTimeCodeRefusal({ ...ok, job: job({ id: "job-1", state: "done" }), bootable: false })).toBe("job job-1 is done: it boots no machine any more");
    expect(oneTimeCodeRefusal({ ...ok, wrongRecently: ONE_TIME_CODE_MAX_WRONG - 1 })).toBeNull();
    expect(oneTimeCodeRefusal({ ...ok, wrongRecently: ONE_TIME_CODE_MAX_WRONG })).toMatch(/^too many wrong one-time codes/);
  });
});
