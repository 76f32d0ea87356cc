import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../../server/serve.ts";
import { SEAL_PLACEHOLDER, writeSealedTar } from "../../../server/bundle/tar.ts";
import { openBundle } from "../../../server/bundle/import.ts";
import { BundleError } from "../../../server/bundle/manifest.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { NEW_MAC, WEB1_MAC, populate, serveWith, writeLabConfig } from "./lab.ts";

/**
 * The recovery bundle through the real CLI (issue 23 item 1): a populated server is exported
 * while it runs, its data dir wiped, the bundle imported, and every listing is as before; a
 * changed byte or a cut anywhere is refused, and so is an encrypted bundle without its key.
 */

const PASSPHRASE = "luks-passphrase-that-must-not-travel";

describe("lifeboat store export / import", { timeout: 300_000 }, () => {
  const root = tempDir("lifeboat-bundle-");
  const { configFile, configDir, indexFile } = writeLabConfig(root);
  const dataDir = join(root, "data");
  const bundle = join(root, "web.bundle");
  let server: RunningServer;
  let jobId = "";
  const cli = (args: string[], env?: Record<string, string>) => lifeboat([...args, "--config", configFile], { env });

  beforeAll(async () => {
    server = await serveWith(configFile, dataDir);
    await populate(server, configFile, dataDir);
    jobId = (await server.ctx.store.jobs.list())[0]!.id;
    await server.ctx.store.jobs.setKey(jobId, "c0ffee00-0000-4000-8000-000000000001", PASSPHRASE);
  });
  afterAll(async () => server?.stop(0));

  /** What an admin sees, through the CLI: each listing's JSON. */
  async function listings(): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    // The first read the data dir themselves; the others ask the running server.
    for (const [args, api] of [
      [["hosts", "list"], false],
      [["hosts", "show", "web1"], false],
      [["hosts", "layout", "web1"], false],
      [["catalog", "list"], false],
      [["catalog", "chain", "web1", "/"], false],
      [["hosts", "assignments"], true],
      [["profiles", "list"], true],
      [["jobs", "list"], true],
    ] as const) {
      const r = await cli([...args, "--data-dir", dataDir, "--json", ...(api ? ["--server", server.httpUrl] : [])]);
      expect(r.exitCode, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      // The layout's age is the clock's, not the store's: compared without it.
      out[args.join(" ")] = JSON.parse(r.stdout, (key, value: unknown) => (key === "ageSeconds" ? undefined : value));
    }
    return out;
  }

  it("export while serving → wipe the data dir → import: every listing is equal; secrets stay behind", async () => {
    const before = await listings();
    expect((before["catalog chain web1 /"] as { dumps: unknown[] }).dumps).toHaveLength(2);
    expect(before["hosts assignments"]).toMatchObject([{ mac: NEW_MAC, profile: "web" }]);
    expect(before["jobs list"]).toMatchObject([{ mac: WEB1_MAC, state: "armed" }]);

    const ex = await cli(["store", "export", "--out", bundle, "--data-dir", dataDir, "--json"]);
    expect(ex.exitCode, ex.stderr).toBe(0);
    const written = JSON.parse(ex.stdout) as { file: string; bytes: number; encrypted: boolean; notes: string[]; serverId: string };
    expect(written).toMatchObject({ file: bundle, bytes: statSync(bundle).size, encrypted: false });
    // Amanda is not installed for this synthetic config: said, not hidden.
    expect(written.notes).toEqual([expect.stringMatching(/^amanda synth: amadmin export not run/)]);
    expect(statSync(bundle).mode & 0o777).toBe(0o600);

    const manifest = (await execa("tar", ["-xOf", bundle, "MANIFEST"])).stdout;
    expect(manifest).toMatch(/^lifeboat-bundle 1\nlifeboat \S+\ncreated-at \S+\nserver-id [0-9a-f]{32}\nschema 0001-init,.*\nsecrets dropped\n/);
    const paths = [...manifest.matchAll(/^member [0-9a-f]{64} \d+ (.+)$/gm)].map((m) => m[1]);
    const files = `amanda/synth/files${configDir}`;
    expect(paths).toEqual(
      expect.arrayContaining([
        "store/lifeboat.db",
        `${files}/amanda.conf`,
        `${files}/disklist`,
        `${files}/tapelist`,
        `amanda/synth/files${indexFile}`,
        "amanda/synth/setup.json",
        "hosts/web1/host.json",
        "hosts/web1/layout.json",
        "hosts/web1/packages.txt",
      ]),
    );
    expect(paths.some((p) => /\/log\.20261201020000\.0$/.test(p!))).toBe(true);
    expect(paths.some((p) => /\/vtapes\/state$/.test(p!))).toBe(true);
    // The store key never travels, nor the sealed passphrase (the copy's job_keys are empty and vacuumed).
    const raw = readFileSync(bundle);
    expect(raw.includes(PASSPHRASE)).toBe(false);
    const key = readFileSync(join(dataDir, "store-key"), "utf8").trim();
    expect(raw.includes(key) || raw.includes(Buffer.from(key, "hex"))).toBe(false);
    expect(raw.includes("lbsec1:")).toBe(false);

    await server.stop(0);
    rmSync(dataDir, { recursive: true });
    const im = await cli(["store", "import", bundle, "--data-dir", dataDir, "--json"]);
    expect(im.exitCode, im.stderr).toBe(0);
    const imported = JSON.parse(im.stdout) as { serverId: string; from: string; restored: string };
    expect(imported.from).toBe(written.serverId);
    expect(imported.serverId).toMatch(/^[0-9a-f]{32}$/);
    expect(imported.serverId).not.toBe(written.serverId);
    expect(readdirSync(dataDir).sort()).toEqual(["lifeboat.db", "restored", "store-key"]);
    expect(readFileSync(join(imported.restored, `amanda/synth/files${indexFile}`), "utf8")).toBe("index bytes");
    expect(JSON.parse(readFileSync(join(imported.restored, "hosts/web1/host.json"), "utf8"))).toMatchObject({ name: "web1", macs: [WEB1_MAC] });

    server = await serveWith(configFile, dataDir);
    expect(await listings()).toEqual(before);
    expect(await server.ctx.store.jobs.keyIds(jobId)).toEqual([]);
    const audit = await server.ctx.store.audit.list({ target: "store" });
    expect(audit[0]).toMatchObject({ actor: "cli", action: "store.import", detail: { from: written.serverId } });

    const again = await cli(["store", "import", bundle, "--data-dir", dataDir]);
    expect([again.exitCode, again.stderr.trim()]).toEqual([2, `lifeboat: ${dataDir}: the data dir is not empty; a bundle is imported only into an empty one (--data-dir DIR)`]);
  });

  it("a changed byte anywhere, or a cut, is refused in one line and nothing is written", async () => {
    const size = statSync(bundle).size;
    const raw = readFileSync(bundle);
    const dbAt = raw.indexOf("SQLite format 3");
    const manifestAt = raw.indexOf("server-id ");
    const sealAt = raw.lastIndexOf("sha256 ");
    // The zero tail starts after the SEAL member's one data block (the archive's last member).
    const tailAt = Math.ceil((sealAt + 1) / 512) * 512;
    expect(raw.subarray(tailAt).every((b) => b === 0)).toBe(true);
    const cases: Array<[string, (f: string) => void, RegExp]> = [
      ["a byte of the store", (f) => flip(f, dbAt + 5000), /member store\/lifeboat\.db: sha256 mismatch|seal does not match/],
      ["a byte of MANIFEST", (f) => flip(f, manifestAt + 12), /seal does not match/],
      ["a byte of the first header", (f) => flip(f, 100), /not a readable tar archive|not a Lifeboat bundle/],
      ["a byte of the seal", (f) => flip(f, sealAt + 20), /seal does not match|SEAL is not/],
      ["a byte of the zero tail", (f) => flip(f, tailAt + (size - tailAt) / 2), /after its SEAL are not zero|not a readable tar/],
      ["the last record cut", (f) => truncateSync(f, size - 10240), /cut short|not a readable tar/],
      ["cut in the store", (f) => truncateSync(f, dbAt + 8192), /cut short|not a readable tar|Unexpected EOF/],
    ];
    for (const [what, damage, reason] of cases) {
      const f = join(root, "damaged.bundle");
      copyFileSync(bundle, f);
      damage(f);
      const into = join(root, "into");
      const r = await cli(["store", "import", f, "--data-dir", into]);
      expect(r.exitCode, what).toBe(2);
      expect(r.stderr.trim().split("\n"), what).toHaveLength(1);
      expect(r.stderr, what).toMatch(new RegExp(`^lifeboat: ${f}: refused: `));
      expect(r.stderr, what).toMatch(reason);
      expect(existsSync(into), what).toBe(false);
    }
    // In-process over many places: each block's first byte, a byte inside each block, every byte of the seal's block and the tail.
    const positions = new Set<number>();
    for (let b = 0; b < size; b += 4096) positions.add(b).add(b + 157);
    for (let i = sealAt - 512; i < size; i += 37) positions.add(i);
    let refused = 0;
    for (const at of positions) {
      const f = join(root, "flipped.bundle");
      const copy = Buffer.from(raw);
      copy[at] = copy[at]! ^ 0x20;
      writeFileSync(f, copy);
      const work = join(root, "work");
      rmSync(work, { recursive: true, force: true });
      mkdirSync(work);
      await expect(openBundle(f, work), `byte ${at}`).rejects.toThrow(BundleError);
      refused++;
    }
    expect(refused).toBe(positions.size);
    const other = join(root, "not-a-bundle");
    writeFileSync(other, "hello\n");
    expect((await cli(["store", "import", other, "--data-dir", join(root, "into")])).stderr.trim()).toBe(
      `lifeboat: ${other}: refused: not a Lifeboat bundle (neither a tar archive nor OpenPGP-encrypted)`,
    );
  });

  it("a bundle from a newer format or schema is refused, naming it", async () => {
    const stage = join(root, "newer");
    mkdirSync(stage);
    await execa("tar", ["-xf", bundle, "-C", stage]);
    const original = readFileSync(join(stage, "MANIFEST"), "utf8");
    for (const [edit, reason] of [
      [(m: string) => m.replace("lifeboat-bundle 1\n", "lifeboat-bundle 2\n"), "refused: bundle format 2 comes from a newer Lifeboat (this one reads format 1 and older)"],
      [(m: string) => m.replace(/^schema (.*)$/m, "schema $1,9999-from-the-future"), "refused: its store comes from a newer Lifeboat (0.1.0): migration 9999-from-the-future unknown here"],
    ] as const) {
      writeFileSync(join(stage, "MANIFEST"), edit(original));
      writeFileSync(join(stage, "SEAL"), SEAL_PLACEHOLDER);
      const f = join(root, "newer.bundle");
      rmSync(f, { force: true });
      await writeSealedTar(stage, readdirSync(stage), f, new Date());
      const r = await cli(["store", "import", f, "--data-dir", join(root, "into")]);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain(reason);
    }
  });

  it("encrypted to an OpenPGP key: refused without the key, imported with it", async () => {
    const withKey = join(root, "gnupg-key");
    const without = join(root, "gnupg-empty");
    for (const d of [withKey, without]) mkdirSync(d, { mode: 0o700 });
    const gpg = (home: string, args: string[]) => execa("gpg", ["--batch", "--no-tty", ...args], { env: { GNUPGHOME: home } });
    try {
      await gpg(withKey, ["--passphrase", "", "--quick-gen-key", "Lifeboat Bundle Test <bundle@lifeboat.test>", "default", "default", "never"]);
      const fpr = /^fpr:+([0-9A-F]{40}):/m.exec((await gpg(withKey, ["--with-colons", "--list-keys"])).stdout)![1]!;
      const enc = join(root, "web.bundle.gpg");
      const ex = await cli(["store", "export", "--out", enc, "--recipient", "bundle@lifeboat.test", "--data-dir", dataDir, "--json"], { GNUPGHOME: withKey });
      expect(ex.exitCode, ex.stderr).toBe(0);
      expect(JSON.parse(ex.stdout)).toMatchObject({ encrypted: true });
      expect(readFileSync(enc).includes("SQLite format 3")).toBe(false);

      const into = join(root, "enc-into");
      const refused = await cli(["store", "import", enc, "--data-dir", into], { GNUPGHOME: without });
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr.trim()).toMatch(
        new RegExp(`^lifeboat: ${enc}: refused: it is encrypted to OpenPGP key [0-9A-F]{16}, whose secret key is not in this keyring \\(${without}\\)`),
      );
      // The key named is the encryption subkey of the key made here.
      const subkey = /^fpr:+([0-9A-F]{40}):$/gm;
      const fprs = [...(await gpg(withKey, ["--with-colons", "--list-keys", fpr])).stdout.matchAll(subkey)].map((m) => m[1]!);
      expect(fprs.some((f) => f.endsWith(/key ([0-9A-F]{16})/.exec(refused.stderr)![1]!))).toBe(true);
      expect(existsSync(into)).toBe(false);

      const ok = await cli(["store", "import", enc, "--data-dir", into, "--json"], { GNUPGHOME: withKey });
      expect(ok.exitCode, ok.stderr).toBe(0);
      const l = await lifeboat(["hosts", "list", "--json", "--config", configFile, "--data-dir", into]);
      expect((JSON.parse(l.stdout) as Array<{ name: string }>).map((h) => h.name)).toEqual(["web1"]);
    } finally {
      for (const d of [withKey, without]) await execa("gpgconf", ["--kill", "gpg-agent"], { env: { GNUPGHOME: d }, reject: false });
    }
  });
});

function flip(file: string, at: number): void {
  const b = readFileSync(file);
  b[at] = b[at]! ^ 0x01;
  writeFileSync(file, b);
}
