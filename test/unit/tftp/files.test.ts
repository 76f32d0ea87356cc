import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { normaliseName, openSource } from "../../../server/tftp/files.ts";
import { decodeTftp, requestPacket } from "../../../server/tftp/packets.ts";
import { tempDir } from "../../helpers/tmp.ts";

describe("TFTP file names", () => {
  it("normalises PXE-style names: backslashes, leading slashes, dots", () => {
    expect(normaliseName("\\pxelinux\\undionly.kpxe")).toBe("pxelinux/undionly.kpxe");
    expect(normaliseName("/snponly.efi")).toBe("snponly.efi");
    expect(normaliseName("//a/./b")).toBe("a/b");
  });
  it("refuses .., NUL and empty names", () => {
    for (const bad of ["../etc/passwd", "a/../../b", "..\\..\\x", "a\0b", "/", ""]) expect(normaliseName(bad)).toBeUndefined();
  });
});

describe("TFTP sources", () => {
  const root = tempDir();
  const outside = tempDir();
  writeFileSync(join(root, "undionly.kpxe"), "loader");
  mkdirSync(join(root, "sub"));
  writeFileSync(join(root, "sub", "f"), "inner");
  writeFileSync(join(outside, "secret"), "secret");
  symlinkSync(join(outside, "secret"), join(root, "escape"));
  symlinkSync("undionly.kpxe", join(root, "alias"));
  const client = { address: "10.231.7.9" };
  const read = (name: string) => {
    const s = openSource(root, name, client);
    if (!s.ok) return s;
    const b = Buffer.alloc(s.size);
    s.readInto(b, 0, 0, s.size);
    s.close();
    return b.toString();
  };

  it("serves files, also through backslashes, a leading slash and in-root symlinks", () => {
    expect(read("undionly.kpxe")).toBe("loader");
    expect(read("\\sub\\f")).toBe("inner");
    expect(read("/alias")).toBe("loader");
  });
  it("refuses escapes (.., absolute paths out, symlinks out) and directories; missing files are 'not found'", () => {
    expect(read("../secret")).toMatchObject({ ok: false, code: 2 });
    expect(read(`${outside}/secret`)).toMatchObject({ ok: false, code: 1 }); // taken as relative to the root
    expect(read("escape")).toMatchObject({ ok: false, code: 2, message: /outside/ });
    expect(read("sub")).toMatchObject({ ok: false, code: 2 });
    expect(read("nope")).toMatchObject({ ok: false, code: 1 });
  });
  it("serves generated content before files", () => {
    const s = openSource(root, "/mac/52-54-00-07-00-01.ipxe", client, (name, c) =>
      name.startsWith("mac/") ? Buffer.from(`#!ipxe\necho ${name} for ${c.address}\n`) : undefined,
    );
    const b = Buffer.alloc(s.ok ? s.size : 0);
    if (s.ok) s.readInto(b, 0, 0, s.size);
    expect(b.toString()).toBe("#!ipxe\necho mac/52-54-00-07-00-01.ipxe for 10.231.7.9\n");
  });
});

describe("TFTP packet decoding", () => {
  it("lower-cases option names (RFC 2347: case-insensitive) and the mode", () => {
    expect(decodeTftp(requestPacket("RRQ", "f", { BlkSize: "1432", TSIZE: "0" }, "OCTET"))).toMatchObject({
      ok: true, packet: { op: "RRQ", filename: "f", mode: "octet", options: { blksize: "1432", tsize: "0" } },
    });
  });
  it("rejects requests without terminators or with a dangling option", () => {
    expect(decodeTftp(Buffer.from("\x00\x01file\x00oct", "latin1"))).toMatchObject({ ok: false });
    expect(decodeTftp(Buffer.from("\x00\x01file\x00octet\x00blksize\x00", "latin1"))).toMatchObject({ ok: false, error: /option without a value/ });
    expect(decodeTftp(Buffer.from([0, 9]))).toMatchObject({ ok: false, error: /opcode 9/ });
  });
});
