import { existsSync, mkdirSync, realpathSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { libraryClosure, readElf } from "../../../rescue-image/elf.ts";
import { MERGED_DIRS } from "../../../rescue-image/manifest.ts";
import { StageError } from "../../../rescue-image/stage-root.ts";
import { tempDir } from "../../helpers/tmp.ts";

/**
 * A minimal ELF64 object with the dynamic-linking facts given: one PT_LOAD mapping the whole
 * file at 0x400000 (so DT_STRTAB is a virtual address to translate), PT_INTERP, PT_DYNAMIC.
 */
function fakeElf(o: { interp?: string; needed?: string[]; rpath?: string; runpath?: string; machine?: number; elfClass?: number }): Buffer {
  const base = 0x400000;
  const strings: string[] = [];
  const strtab: number[] = [0];
  const str = (s: string) => {
    const at = strtab.length;
    strtab.push(...Buffer.from(`${s}\0`, "latin1"));
    strings.push(s);
    return at;
  };
  const dyn: Array<[number, number]> = [];
  for (const n of o.needed ?? []) dyn.push([1, str(n)]);
  if (o.rpath) dyn.push([15, str(o.rpath)]);
  if (o.runpath) dyn.push([29, str(o.runpath)]);
  const phnum = o.interp ? 3 : 2;
  const interpAt = 64 + phnum * 56;
  const interp = o.interp ? Buffer.from(`${o.interp}\0`, "latin1") : Buffer.alloc(0);
  const strtabAt = interpAt + interp.length;
  const dynAt = strtabAt + strtab.length + ((8 - ((strtabAt + strtab.length) % 8)) % 8);
  dyn.push([5, base + strtabAt], [0, 0]);
  const size = dynAt + dyn.length * 16;
  const b = Buffer.alloc(size);
  b.write("\x7fELF", 0, "latin1");
  b[4] = o.elfClass ?? 2;
  b[5] = 1;
  b[6] = 1;
  b.writeUInt16LE(3, 16);
  b.writeUInt16LE(o.machine ?? 62, 18);
  b.writeBigUInt64LE(64n, 0x20);
  b.writeUInt16LE(64, 0x34);
  b.writeUInt16LE(56, 0x36);
  b.writeUInt16LE(phnum, 0x38);
  const ph = (i: number, type: number, offset: number, vaddr: number, filesz: number) => {
    const h = 64 + i * 56;
    b.writeUInt32LE(type, h);
    b.writeBigUInt64LE(BigInt(offset), h + 8);
    b.writeBigUInt64LE(BigInt(vaddr), h + 16);
    b.writeBigUInt64LE(BigInt(filesz), h + 32);
    b.writeBigUInt64LE(BigInt(filesz), h + 40);
  };
  ph(0, 1, 0, base, size);
  ph(1, 2, dynAt, base + dynAt, dyn.length * 16);
  if (o.interp) ph(2, 3, interpAt, base + interpAt, interp.length);
  interp.copy(b, interpAt);
  Buffer.from(strtab).copy(b, strtabAt);
  dyn.forEach(([tag, val], i) => {
    b.writeBigInt64LE(BigInt(tag), dynAt + i * 16);
    b.writeBigUInt64LE(BigInt(val), dynAt + i * 16 + 8);
  });
  return b;
}

function stage(files: Record<string, Buffer | string>): string {
  const dir = tempDir("lifeboat-elf-");
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

const LOADER = "/lib64/ld-linux-x86-64.so.2";

describe("reading ELF dynamic sections", () => {
  it("interpreter, DT_NEEDED, RPATH and RUNPATH (string table found through its virtual address)", () => {
    expect(readElf(fakeElf({ interp: LOADER, needed: ["libc.so.6", "libz.so.1"], rpath: "/a:/b", runpath: "$ORIGIN/../lib" }))).toEqual({
      x86_64: true,
      interp: LOADER,
      needed: ["libc.so.6", "libz.so.1"],
      rpath: ["/a", "/b"],
      runpath: ["$ORIGIN/../lib"],
    });
    expect(readElf(fakeElf({ needed: ["libc.so.6"] }))).toMatchObject({ interp: null, needed: ["libc.so.6"] });
  });

  it("a script is not ELF; another ABI is marked; a truncated file is an error, not a crash", () => {
    expect(readElf(Buffer.from("#!/bin/sh\necho hi\n"))).toBeNull();
    expect(readElf(fakeElf({ needed: ["libc.so.6"], machine: 3 }))).toMatchObject({ x86_64: false, needed: [] });
    expect(readElf(fakeElf({ needed: ["libc.so.6"], elfClass: 1 }))).toMatchObject({ x86_64: false });
    const whole = fakeElf({ interp: LOADER, needed: ["libc.so.6"] });
    expect(() => readElf(whole.subarray(0, 100))).toThrow(/malformed ELF/);
  });

  it("real programs: what the real loader (ldd) finds, the closure finds, at the same files", async () => {
    // On the host, "/" as the root: the host's own files are the staged ones here.
    // curl and zstd come with scripts/bootstrap; systemd (a RUNPATH to its private library) where installed.
    const systemd = "/usr/lib/systemd/systemd";
    for (const program of ["/usr/bin/curl", "/usr/bin/zstd", ...(existsSync(systemd) ? [systemd] : [])]) {
      const ldd = (await execa("ldd", [program])).stdout;
      const files = (paths: string[]) => [...new Set(paths.map((p) => realpathSync(p)))].sort();
      const got = libraryClosure("/", program, { mergedUsr: MERGED_DIRS });
      expect(got.interp, program).toBe(LOADER);
      // ldd lists the interpreter on a line of its own; libc names it as a library, so the closure has it too.
      expect(files(got.libs.map((l) => join("/", l))), program).toEqual(files([...[...ldd.matchAll(/=> (\S+) \(0x/g)].map((m) => m[1]!), LOADER]));
    }
  });
});

describe("the shared-library closure, searched inside the stage only", () => {
  const loader = fakeElf({});

  it("system directories in order, RUNPATH with $ORIGIN, merged /usr, each library once", () => {
    const s = stage({
      "usr/sbin/tool": fakeElf({ interp: LOADER, needed: ["libone.so.1", "libpriv.so.0", "libc.so.6"], runpath: "$ORIGIN/../lib/x86_64-linux-gnu/tool" }),
      "usr/lib/x86_64-linux-gnu/tool/libpriv.so.0": fakeElf({ needed: ["libc.so.6", "libone.so.1"] }),
      "lib/x86_64-linux-gnu/libone.so.1": fakeElf({ needed: ["libc.so.6"] }),
      // Only in the other half of the merged /usr: found as lib/… would be in the image.
      "usr/lib/x86_64-linux-gnu/libc.so.6": fakeElf({ needed: ["ld-linux-x86-64.so.2"] }),
      "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": loader,
    });
    expect(libraryClosure(s, "sbin/tool", { mergedUsr: MERGED_DIRS })).toEqual({
      interp: LOADER,
      libs: ["lib/x86_64-linux-gnu/libone.so.1", "usr/sbin/../lib/x86_64-linux-gnu/tool/libpriv.so.0", "lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"],
    });
  });

  it("a library of another ABI is passed over, as the loader does; RPATH is inherited from the loading object", () => {
    const s = stage({
      "bin/p": fakeElf({ interp: LOADER, needed: ["libq.so.1"], rpath: "/opt/p/lib" }),
      "opt/p/lib/libq.so.1": fakeElf({ needed: ["libr.so.1"] }),
      "opt/p/lib/libr.so.1": fakeElf({}),
      "lib/x86_64-linux-gnu/libq.so.1": fakeElf({ machine: 3 }),
    });
    expect(libraryClosure(s, "bin/p").libs).toEqual(["opt/p/lib/libq.so.1", "opt/p/lib/libr.so.1"]);
    const s2 = stage({ "bin/p": fakeElf({ interp: LOADER, needed: ["libq.so.1"] }), "lib/libq.so.1": fakeElf({ machine: 3 }), "usr/lib/libq.so.1": fakeElf({}) });
    expect(libraryClosure(s2, "bin/p").libs).toEqual(["usr/lib/libq.so.1"]);
  });

  it("a library that is not in the stage fails, naming it and who needs it, even when the host has it", () => {
    // The host has libc.so.6 in /lib/x86_64-linux-gnu; the stage does not.
    const s = stage({ "bin/p": fakeElf({ interp: LOADER, needed: ["libone.so.1"] }), "lib/x86_64-linux-gnu/libone.so.1": fakeElf({ needed: ["libc.so.6"] }) });
    expect(() => libraryClosure(s, "bin/p")).toThrow(StageError);
    expect(() => libraryClosure(s, "bin/p")).toThrow(
      /^bin\/p: shared library libc.so.6 \(needed by lib\/x86_64-linux-gnu\/libone.so.1\) is not in the staged packages \(searched lib\/x86_64-linux-gnu, usr\/lib\/x86_64-linux-gnu, lib, usr\/lib\)$/,
    );
    const s2 = stage({ "bin/p": fakeElf({ interp: LOADER, needed: ["libc.so.6"], runpath: "$LIB/x" }) });
    expect(() => libraryClosure(s2, "bin/p")).toThrow(/bin\/p: unsupported token in its library path "\$LIB\/x"/);
  });

  it("static programs and scripts have no closure", () => {
    const s = stage({ "bin/busybox": fakeElf({}), "bin/script": "#!/bin/sh\n" });
    expect(libraryClosure(s, "bin/busybox")).toEqual({ interp: null, libs: [] });
    expect(libraryClosure(s, "bin/script")).toEqual({ interp: null, libs: [] });
  });
});
