import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { MERGED_DIRS } from "../../../rescue-image/manifest.ts";
import { brokenLinks, describeMissing, MAX_LINKS, resolveInRoot, StageError } from "../../../rescue-image/stage-root.ts";
import { tempDir } from "../../helpers/tmp.ts";

/** A root made of files ("content"), directories ("/" suffix) and links ("-> target"). */
function root(entries: Record<string, string>): string {
  const dir = tempDir("lifeboat-stage-root-");
  for (const [path, what] of Object.entries(entries)) {
    const at = join(dir, path);
    mkdirSync(dirname(at), { recursive: true });
    if (what === "/") mkdirSync(at, { recursive: true });
    else if (what.startsWith("-> ")) symlinkSync(what.slice(3), at);
    else writeFileSync(at, what);
  }
  return dir;
}

const merged = { mergedUsr: MERGED_DIRS };

describe("resolving paths inside a stage, as a chroot would", () => {
  it("absolute links start at the stage root, not the host's (udev's systemd-udevd → /bin/udevadm)", () => {
    // The host has no /bin/udevadm-lifeboat-test: only the stage's copy can be found.
    const r = root({ "bin/udevadm-lifeboat-test": "staged", "lib/systemd/systemd-udevd": "-> /bin/udevadm-lifeboat-test" });
    expect(resolveInRoot(r, "lib/systemd/systemd-udevd")).toEqual({ found: true, path: "bin/udevadm-lifeboat-test", type: "file", links: ["lib/systemd/systemd-udevd"] });
    // Same for a link whose target the host does have: the stage's own /etc/passwd.
    const r2 = root({ "etc/passwd": "stage's", "x": "-> /etc/passwd" });
    expect(resolveInRoot(r2, "/x")).toMatchObject({ found: true, path: "etc/passwd" });
  });

  it("relative links, chains, and .. taken after a link is followed (physically)", () => {
    const r = root({
      "usr/lib/x86_64-linux-gnu/libfoo.so.1.2.3": "lib",
      "usr/lib/x86_64-linux-gnu/libfoo.so.1": "-> libfoo.so.1.2.3",
      "lib/x86_64-linux-gnu/libfoo.so.1": "-> ../../usr/lib/x86_64-linux-gnu/libfoo.so.1",
      "opt/a/b/file": "deep",
      "d/up": "-> /opt/a/b",
    });
    expect(resolveInRoot(r, "lib/x86_64-linux-gnu/libfoo.so.1")).toEqual({
      found: true,
      path: "usr/lib/x86_64-linux-gnu/libfoo.so.1.2.3",
      type: "file",
      links: ["lib/x86_64-linux-gnu/libfoo.so.1", "usr/lib/x86_64-linux-gnu/libfoo.so.1"],
    });
    // d/up is /opt/a/b, so d/up/.. is /opt/a (a string-based normalize would say "d").
    expect(resolveInRoot(r, "d/up/../b/file")).toMatchObject({ found: true, path: "opt/a/b/file", links: ["d/up"] });
    expect(resolveInRoot(r, "d/up/..")).toMatchObject({ found: true, path: "opt/a", type: "dir" });
  });

  it("a link that climbs out of the stage stays inside it, at its root", () => {
    const r = root({ "etc/hostname": "stage", "usr/share/x": "-> ../../../../../../etc/hostname", "usr/share/abs": "-> /../../etc/hostname" });
    expect(resolveInRoot(r, "usr/share/x")).toMatchObject({ found: true, path: "etc/hostname" });
    expect(resolveInRoot(r, "usr/share/abs")).toMatchObject({ found: true, path: "etc/hostname" });
    // Where the stage has nothing, nothing is found (the host's /etc/shadow is not looked at).
    const r2 = root({ "x": "-> ../../../../etc/shadow" });
    expect(resolveInRoot(r2, "x")).toEqual({ found: false, missing: "etc", links: ["x"] });
  });

  it("a loop is an error naming the link", () => {
    const r = root({ "lib/a": "-> b", "lib/b": "-> /lib/a", "self": "-> self" });
    expect(() => resolveInRoot(r, "lib/a")).toThrow(StageError);
    expect(() => resolveInRoot(r, "lib/a")).toThrow(/lib\/a: too many levels of symbolic links, looping through lib\/[ab] → /);
    expect(() => resolveInRoot(r, "self")).toThrow(/self: too many levels of symbolic links, looping through self → self/);
    // A long chain that is no loop but longer than the kernel allows is refused the same way.
    const chain: Record<string, string> = { "l0": "end" };
    for (let i = 1; i <= MAX_LINKS + 1; i++) chain[`l${i}`] = `-> l${i - 1}`;
    chain.l0 = "end";
    const r2 = root(chain);
    expect(resolveInRoot(r2, `l${MAX_LINKS}`)).toMatchObject({ found: true, path: "l0" });
    expect(() => resolveInRoot(r2, `l${MAX_LINKS + 1}`)).toThrow(/too many levels/);
  });

  it("merged /usr: bin/x and usr/bin/x are one, both ways, also through a link's target", () => {
    const r = root({
      "bin/udevadm": "udevadm",
      "usr/sbin/tool": "tool",
      "lib/systemd/systemd-udevd": "-> /usr/bin/udevadm",
      "usr/lib/x86_64-linux-gnu/libz.so.1": "z",
    });
    expect(resolveInRoot(r, "lib/systemd/systemd-udevd", merged)).toMatchObject({ found: true, path: "bin/udevadm", links: ["lib/systemd/systemd-udevd"] });
    expect(resolveInRoot(r, "sbin/tool", merged)).toMatchObject({ found: true, path: "usr/sbin/tool" });
    expect(resolveInRoot(r, "lib/x86_64-linux-gnu/libz.so.1", merged)).toMatchObject({ found: true, path: "usr/lib/x86_64-linux-gnu/libz.so.1" });
    // Without the option they are two directories, as in any other tree.
    expect(resolveInRoot(r, "lib/systemd/systemd-udevd")).toMatchObject({ found: false, missing: "usr/bin" });
    // Not merged: etc, usr/share.
    expect(resolveInRoot(r, "share/x", merged)).toMatchObject({ found: false, missing: "share" });
  });

  it("lstat semantics on request; a file used as a directory is missing; what is missing is described", () => {
    const r = root({ "a": "-> /nowhere/x", "f": "file", "bin/x": "-> /usr/lib/y" });
    expect(resolveInRoot(r, "a", { followLast: false })).toEqual({ found: true, path: "a", type: "link", links: [] });
    expect(resolveInRoot(r, "f/x")).toEqual({ found: false, missing: "f/x", links: [] });
    const miss = resolveInRoot(r, "bin/x", merged);
    expect(miss.found).toBe(false);
    expect(describeMissing(r, "bin/x", miss as Extract<typeof miss, { found: false }>)).toBe("bin/x, via bin/x → /usr/lib/y, usr does not exist");
  });

  it("brokenLinks lists every link that leads nowhere inside the tree", () => {
    const r = root({ "usr/bin/busybox": "bb", "usr/bin/sh": "-> busybox", "usr/bin/ok": "-> /usr/bin/busybox", "usr/bin/gone": "-> /bin/gone", "loop": "-> loop" });
    expect(brokenLinks(r).sort()).toEqual(["loop → loop: loop: too many levels of symbolic links, looping through loop → loop", "usr/bin/gone → /bin/gone: bin does not exist"]);
  });
});
