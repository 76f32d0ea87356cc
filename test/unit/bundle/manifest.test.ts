import { describe, expect, it } from "vitest";
import { bundleKind } from "../../../server/bundle/gpg.ts";
import {
  BUNDLE_FILE,
  type Manifest,
  bundleFileName,
  memberPathProblem,
  membersProblem,
  parseManifest,
  renderManifest,
  schemaProblem,
} from "../../../server/bundle/manifest.ts";
import { parseBlockListing, sealOffset } from "../../../server/bundle/tar.ts";

const sha = (c: string) => c.repeat(64);
const manifest: Manifest = {
  format: 1,
  lifeboat: "0.1.0",
  createdAt: "2026-12-05T17:30:00.000Z",
  serverId: "0123456789abcdef0123456789abcdef",
  schema: ["0001-init", "0400-jobs"],
  secrets: "dropped",
  notes: ["amanda daily: amadmin export not run"],
  members: [
    { path: "store/lifeboat.db", size: 4096, sha256: sha("a") },
    { path: "amanda/daily/files/etc/amanda/daily/Lab Docs $HOME", size: 0, sha256: sha("b") },
  ],
};

describe("the bundle manifest (pure)", () => {
  it("renders one line per fact and per member, sorted by path, and parses back", () => {
    const text = renderManifest(manifest);
    expect(text.split("\n").slice(0, 7)).toEqual([
      "lifeboat-bundle 1",
      "lifeboat 0.1.0",
      "created-at 2026-12-05T17:30:00.000Z",
      "server-id 0123456789abcdef0123456789abcdef",
      "schema 0001-init,0400-jobs",
      "secrets dropped",
      "note amanda daily: amadmin export not run",
    ]);
    expect(text).toContain(`member ${sha("b")} 0 amanda/daily/files/etc/amanda/daily/Lab Docs $HOME\nmember ${sha("a")} 4096 store/lifeboat.db\n`);
    const back = parseManifest(text);
    expect({ ...back, members: [...back.members].sort((a, b) => a.size - b.size) }).toEqual({ ...manifest, members: [...manifest.members].sort((a, b) => a.size - b.size) });
  });

  it("refuses a newer format, unknown keys, bad member lines and missing facts, naming the line", () => {
    const text = renderManifest(manifest);
    expect(() => parseManifest(text.replace("lifeboat-bundle 1", "lifeboat-bundle 7"))).toThrow("bundle format 7 comes from a newer Lifeboat (this one reads format 1 and older)");
    expect(() => parseManifest(`x${text}`)).toThrow("its MANIFEST does not start with `lifeboat-bundle N`");
    expect(() => parseManifest(text.replace("secrets dropped", "colour blue"))).toThrow('MANIFEST line 6: unknown key "colour"');
    expect(() => parseManifest(text.replace(" 4096 ", " -1 "))).toThrow("expected `member SHA256 SIZE PATH`");
    expect(() => parseManifest(text.replace("store/lifeboat.db", "../etc/passwd"))).toThrow('member path "../etc/passwd" not in normal form');
    expect(() => parseManifest(text.replace("store/lifeboat.db", "/etc/passwd"))).toThrow("not a relative file path");
    expect(() => parseManifest(text.replace(/^server-id .*\n/m, ""))).toThrow("its MANIFEST has no server-id line: damaged");
    expect(() => parseManifest(text.slice(0, -1))).toThrow("does not end with a newline");
  });

  it("member paths: relative, normal, printable, not MANIFEST or SEAL", () => {
    expect(memberPathProblem("hosts/web1/layout.json")).toBeNull();
    expect(memberPathProblem("a/./b")).toBe("not in normal form");
    expect(memberPathProblem("a//b")).toBe("not in normal form");
    expect(memberPathProblem("a\nb")).toBe("holds a control character");
    expect(memberPathProblem("SEAL")).toBe("a name the bundle keeps for itself");
  });

  it("a store with a migration this Lifeboat does not know is from a newer one", () => {
    expect(schemaProblem(manifest, ["0001-init", "0400-jobs", "0500-more"])).toBeNull();
    expect(schemaProblem({ ...manifest, schema: ["0001-init", "0900-x", "0901-y"] }, ["0001-init"])).toBe(
      "its store comes from a newer Lifeboat (0.1.0): migrations 0900-x, 0901-y unknown here; import it with that version or newer",
    );
  });

  it("members must be exactly what the manifest lists", () => {
    const found = new Map(manifest.members.map((m) => [m.path, { size: m.size, sha256: m.sha256 }]));
    expect(membersProblem(manifest, found)).toBeNull();
    expect(membersProblem(manifest, new Map([...found, ["extra", { size: 1, sha256: sha("c") }]]))).toBe("member extra is not listed in MANIFEST");
    expect(membersProblem(manifest, new Map([...found, ["store/lifeboat.db", { size: 4096, sha256: sha("c") }]]))).toMatch(/^member store\/lifeboat\.db: sha256 mismatch/);
    expect(membersProblem(manifest, new Map([...found, ["store/lifeboat.db", { size: 1, sha256: sha("a") }]]))).toBe("member store/lifeboat.db has 1 bytes, MANIFEST says 4096");
    found.delete("store/lifeboat.db");
    expect(membersProblem(manifest, found)).toBe("member store/lifeboat.db is listed in MANIFEST but missing");
  });

  it("bundle file names sort by time and match the pattern targets keep", () => {
    const name = bundleFileName(manifest.serverId, "2026-12-05T17:30:00.123Z", true);
    expect(name).toBe("lifeboat-0123456789abcdef0123456789abcdef-20261205T173000Z.bundle.gpg");
    expect(BUNDLE_FILE.test(name)).toBe(true);
    expect(BUNDLE_FILE.test("lifeboat-x-20261205T173000Z.bundle")).toBe(false);
  });

  it("the seal's place: SEAL last, files and directories only, whole records", () => {
    const listing = parseBlockListing(
      "block 0: -rw------- 0/0 386 2026-12-05 17:22 MANIFEST\nblock 2: drwx------ 0/0 0 2026-12-05 17:22 store/\nblock 3: -rw------- 0/0 72 2026-12-05 17:22 SEAL\nblock 5: ** Block of NULs **\n",
    );
    expect(sealOffset(listing, 10240)).toBe(4 * 512);
    expect(sealOffset(listing, 10240 - 512)).toMatch(/is not that of a whole tar archive/);
    expect(sealOffset(listing.slice(0, 2), 10240)).toMatch(/its last member is not SEAL/);
    expect(sealOffset(parseBlockListing("block 0: lrwxrwxrwx 0/0 0 2026-12-05 17:22 x -> /etc\nblock 1: -rw------- 0/0 72 2026-12-05 17:22 SEAL\n"), 10240)).toMatch(
      /neither a file nor a directory/,
    );
  });

  it("tells a tar from an OpenPGP message by its first bytes", () => {
    const tar = Buffer.alloc(512);
    tar.write("ustar", 257, "latin1");
    expect(bundleKind(tar)).toBe("tar");
    expect(bundleKind(Buffer.from([0x85, 0x01, 0x0c]))).toBe("openpgp");
    expect(bundleKind(Buffer.from("-----BEGIN PGP MESSAGE-----\n"))).toBe("openpgp");
    expect(bundleKind(Buffer.from("hello"))).toBe("unknown");
  });
});
