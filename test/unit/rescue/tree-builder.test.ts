/**
 * The image builder's file collection on a small stage made from this host's own programs,
 * laid out as Debian 12's udev and libc6 ship them (absolute links such as
 * lib/systemd/systemd-udevd → /bin/udevadm and lib64/ld-linux-x86-64.so.2 → /lib/…), with the
 * real files moved to a directory the host does not have and marked with a trailer: whatever
 * reaches the image must be the stage's copy, found without the host's files.
 */
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { addTools, BuildError, buildImage, toolVersion, TreeBuilder, versionLine } from "../../../rescue-image/build.ts";
import type { RescueTool } from "../../../rescue-image/manifest.ts";
import { brokenLinks } from "../../../rescue-image/stage-root.ts";
import { tempDir } from "../../helpers/tmp.ts";

/** A top-level directory no host has: links into it can only be resolved inside the stage. */
const STAGE_ONLY = "lifeboat-stage-only";
const MARK = Buffer.from("\nLIFEBOAT-STAGED-COPY\n");

const TOOLS: RescueTool[] = [
  { name: "systemd-udevd", path: "lib/systemd/systemd-udevd", versionArgs: ["--version"] },
  { name: "udevadm", path: "bin/udevadm", versionArgs: ["--version"], aliases: ["udevadm-alias"] },
];

/** The host's file with the trailer appended (ELF files run the same with bytes after their segments). */
function staged(stage: string, path: string, from: string): void {
  mkdirSync(dirname(join(stage, path)), { recursive: true });
  writeFileSync(join(stage, path), Buffer.concat([readFileSync(from), MARK]), { mode: 0o755 });
}

function link(stage: string, path: string, target: string): void {
  mkdirSync(dirname(join(stage, path)), { recursive: true });
  symlinkSync(target, join(stage, path));
}

function makeStage(o: { withUdevadm: boolean }): string {
  const stage = tempDir("lifeboat-stage-");
  expect(existsSync(`/${STAGE_ONLY}`)).toBe(false);
  // udevadm is coreutils' basename here (it prints a version, needs only libc).
  if (o.withUdevadm) {
    staged(stage, `${STAGE_ONLY}/udevadm`, "/usr/bin/basename");
    link(stage, "bin/udevadm", `/${STAGE_ONLY}/udevadm`);
  }
  link(stage, "bin/udevadm-alias", "udevadm");
  link(stage, "lib/systemd/systemd-udevd", "/bin/udevadm");
  staged(stage, `${STAGE_ONLY}/libc.so.6`, "/lib/x86_64-linux-gnu/libc.so.6");
  link(stage, "usr/lib/x86_64-linux-gnu/libc.so.6", `/${STAGE_ONLY}/libc.so.6`);
  staged(stage, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2");
  link(stage, "lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
  return stage;
}

describe("the image builder takes every file from the stage, never from the host", () => {
  it("tools behind absolute links (udev's systemd-udevd → /bin/udevadm), their loader and libraries: the stage's copies, links kept", async () => {
    const stage = makeStage({ withUdevadm: true });
    const tree = join(tempDir("lifeboat-tree-"), "tree");
    const t = new TreeBuilder(stage, tree);
    addTools(t, TOOLS);
    const inTree = (p: string) => readFileSync(join(tree, p));
    expect(readlinkSync(join(tree, "usr/lib/systemd/systemd-udevd"))).toBe("/bin/udevadm");
    expect(readlinkSync(join(tree, "usr/bin/udevadm"))).toBe(`/${STAGE_ONLY}/udevadm`);
    expect(readlinkSync(join(tree, "usr/bin/udevadm-alias"))).toBe("udevadm");
    expect(inTree(`${STAGE_ONLY}/udevadm`)).toEqual(readFileSync(join(stage, STAGE_ONLY, "udevadm")));
    // libc through its absolute link, merged /usr (libc6 ships lib/, this stage usr/lib/)
    expect(readlinkSync(join(tree, "usr/lib/x86_64-linux-gnu/libc.so.6"))).toBe(`/${STAGE_ONLY}/libc.so.6`);
    expect(inTree(`${STAGE_ONLY}/libc.so.6`).subarray(-MARK.length)).toEqual(MARK);
    // The interpreter behind /lib64's absolute link (the host has one there: not taken).
    expect(lstatSync(join(tree, "usr/lib64/ld-linux-x86-64.so.2")).isSymbolicLink()).toBe(true);
    expect(inTree("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2").subarray(-MARK.length)).toEqual(MARK);
    expect(brokenLinks(tree)).toEqual([]);
    // Both names run in the tree with the tree's loader and libc.
    const hostLine = versionLine((await execa("/usr/bin/basename", ["--version"])).stdout);
    for (const tool of TOOLS) expect(await toolVersion(tree, tool)).toBe(hostLine);
  });

  it("a tool whose link leads nowhere in the stage is missing, named with the link, even where the host has the target", () => {
    const stage = makeStage({ withUdevadm: false });
    const t = new TreeBuilder(stage, join(tempDir("lifeboat-tree-"), "tree"));
    expect(() => addTools(t, TOOLS)).toThrow(BuildError);
    expect(() => addTools(t, TOOLS)).toThrow(
      "required tool systemd-udevd is missing from the staged packages: lib/systemd/systemd-udevd, via lib/systemd/systemd-udevd → /bin/udevadm, bin/udevadm does not exist",
    );
    // A library only the host has is missing too: zstd needs libzstd, liblzma… which this stage lacks.
    const stage2 = makeStage({ withUdevadm: true });
    copyFileSync("/usr/bin/zstd", join(stage2, "bin/zstd"));
    const t2 = new TreeBuilder(stage2, join(tempDir("lifeboat-tree-"), "tree"));
    expect(() => addTools(t2, [{ name: "zstd", path: "bin/zstd", versionArgs: [] }])).toThrow(/^bin\/zstd: shared library lib\S+ \(needed by bin\/zstd\) is not in the staged packages/);
  });

  it("two halves of the merged /usr shipping the same name, or a link loop, fail the build by name", () => {
    const stage = makeStage({ withUdevadm: true });
    staged(stage, "usr/bin/udevadm", "/usr/bin/basename");
    link(stage, "bin/loop", "loop");
    const t = new TreeBuilder(stage, join(tempDir("lifeboat-tree-"), "tree"));
    t.add("usr/bin/udevadm");
    expect(() => t.add("bin/udevadm")).toThrow(/^bin\/udevadm: usr\/bin\/udevadm is already in the image from another staged path/);
    expect(() => addTools(t, [{ name: "loop", path: "bin/loop", versionArgs: [] }])).toThrow(/bin\/loop: too many levels of symbolic links, looping through bin\/loop → loop/);
  });

  it("the build runs under umask 022 whatever the CLI's (077): the server's user and the booted system read the image", async () => {
    const before = process.umask(0o077);
    try {
      const dir = tempDir("lifeboat-build-");
      const seen: number[] = [];
      // Stopped at its first progress line, before apt-get runs: what matters is the umask the build sees.
      const stop = (): never => {
        seen.push(process.umask());
        throw new BuildError("stopped by the test");
      };
      await expect(buildImage({ cacheDir: join(dir, "cache"), outDir: join(dir, "out"), sshKeys: [], progress: stop })).rejects.toThrow("stopped by the test");
      expect(seen).toEqual([0o022]);
      expect(statSync(join(dir, "out")).mode & 0o777).toBe(0o755);
      expect(statSync(join(dir, "cache", "empty-dpkg-status")).mode & 0o777).toBe(0o644);
      expect(process.umask()).toBe(0o077);
    } finally {
      process.umask(before);
    }
  });
});
