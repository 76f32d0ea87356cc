/**
 * Encrypted Amanda dumps (issue 23 item 4) on a real Amanda 3.5: a DLE encrypted server-side
 * with amcryptsimple and one client-side with amgpgcrypt (scripts/amanda-lab/build-crypt.sh).
 * With the config's key escrowed (`lifeboat amanda key set`), the server's dump stream is
 * byte-identical to what `amfetchdump` decrypts with the dump user's key files; without it the
 * chain (the planner's own restoreChains) and the stream are refused, naming the dump and the key.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { keyHolding } from "../../../server/amanda/decrypt.ts";
import type { CatalogDump } from "../../../server/amanda/model.ts";
import { loadConfig } from "../../../server/config/load.ts";
import { restoreChains } from "../../../server/jobs/job-plan.ts";
import { createLogger } from "../../../server/log.ts";
import { type RunningServer, startServer } from "../../../server/serve.ts";
import { type AmandaCryptLab, amandaCryptLab, amandaLabUnavailable } from "../../helpers/amanda-lab.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { tempDir } from "../../helpers/tmp.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describeNeeding(amandaLabUnavailable(), "encrypted Amanda dumps (amcryptsimple server-side, amgpgcrypt client-side)", () => {
  let lab: AmandaCryptLab;
  let server: RunningServer;
  let work: string;
  let cfg: string;
  let data: string;
  let dumps: CatalogDump[];
  const dump = (tag: "simple" | "gpg") => dumps.find((d) => d.disk === lab.dles.find((x) => x.tag === tag)!.disk)!;
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.httpUrl}${path}`, { headers: { authorization: `Bearer ${server.ctx.adminToken}`, ...headers } });
  /** amfetchdump -p: Amanda decrypts (with ~backup's .am_passphrase / .gnupg) and decompresses. */
  const amfetchdump = async (d: CatalogDump) => {
    // amgpgcrypt -d runs `gpg-agent --daemon -- gpg`, which fails while an earlier gpg's agent lives.
    await execa("runuser", ["-u", "backup", "--", "gpgconf", "--homedir", "/var/backups/.gnupg", "--kill", "gpg-agent"], { reject: false });
    const r = await lab.amanda(["amfetchdump", "-a", "-p", "--exact-match", lab.config, d.host, d.disk, d.datestamp, String(d.level)], { encoding: "buffer" });
    // amgpgcrypt -d passes gpg2 the obsolete --secret-keyring: gpg warns on stderr and amfetchdump exits 1
    // for that filter message alone (the data is whole); any other exit or message fails.
    const stderr = Buffer.from(r.stderr as unknown as Uint8Array).toString();
    const filterWarnings = stderr.split("\n").filter((l) => /^filter stderr:/.test(l));
    const onlyTheWarning = filterWarnings.length > 0 && filterWarnings.every((l) => l.includes('"--secret-keyring" is an obsolete option'));
    expect(r.exitCode === 0 || (r.exitCode === 1 && onlyTheWarning), stderr).toBe(true);
    return Buffer.from(r.stdout as unknown as Uint8Array);
  };
  const chainOf = async (d: CatalogDump) => restoreChains(dumps, d.host, { [d.disk]: "/srv" }, null, keyHolding(await server.ctx.store.amandaKeys.list()));

  beforeAll(async () => {
    lab = await amandaCryptLab();
    work = tempDir("lifeboat-crypt-it-");
    cfg = join(work, "lifeboat.yaml");
    data = join(work, "data");
    writeFileSync(cfg, `amanda:\n  - name: ${lab.config}\n    configDir: /etc/amanda/${lab.config}\ncatalog:\n  refreshMinutes: 0\n`);
    server = await startServer(loadConfig({ file: cfg, overrides: { dataDir: data, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } }), createLogger("silent", { pretty: false }));
    const r = await lifeboat(["catalog", "refresh", "--config", cfg, "--data-dir", data, "--server", server.httpUrl, "--json"]);
    expect(r.exitCode, r.stderr).toBe(0);
    dumps = await server.ctx.store.catalog.list({ amanda: lab.config });
  }, 180_000);
  afterAll(async () => {
    await server?.stop(100);
    await lab?.release();
  });

  it("catalogs both dumps as encrypted, with the side and program from their headers", () => {
    expect(dumps).toHaveLength(2);
    expect(dump("simple")).toMatchObject({ encrypted: true, encryption: { side: "server", program: "/usr/sbin/amcryptsimple" }, compression: "gzip" });
    expect(dump("gpg")).toMatchObject({ encrypted: true, encryption: { side: "client", program: "/usr/sbin/amgpgcrypt" }, compression: "none" });
  });

  it("without the key: the chain is refused naming the dump and the missing key, and the stream answers 422", async () => {
    await expect(chainOf(dump("simple"))).rejects.toThrow(
      `localhost:"crypt-simple" L0 ${dump("simple").datestamp} is encrypted server-side with /usr/sbin/amcryptsimple; Lifeboat holds no passphrase for Amanda config ${lab.config}: lifeboat amanda key set ${lab.config} --passphrase-file FILE`,
    );
    await expect(chainOf(dump("gpg"))).rejects.toThrow(`Lifeboat holds no OpenPGP secret key for Amanda config ${lab.config} (a client-side key, kept on host localhost)`);
    const r = await get(`/api/v1/dumps/${dump("gpg").id}/stream`);
    expect(r.status).toBe(422);
    expect(((await r.json()) as { message: string }).message).toContain("Lifeboat holds no OpenPGP secret key");
  });

  it("with the key escrowed: streams byte-identical to amfetchdump's decryption; the use is audited, the key never shown", async () => {
    const passphrase = readFileSync(lab.passphraseFile, "utf8").split("\n")[0]!;
    const set = await lifeboat([
      "amanda", "key", "set", lab.config, "--passphrase-file", lab.passphraseFile, "--gpg-secret-key", lab.secretKeyFile,
      "--config", cfg, "--data-dir", data, "--server", server.httpUrl, "--json",
    ]);
    expect(set.exitCode, set.stderr).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ amanda: lab.config, hasPassphrase: true, hasSecretKey: true });
    const list = await lifeboat(["amanda", "key", "list", "--config", cfg, "--data-dir", data, "--server", server.httpUrl]);
    expect(list.stdout).toMatch(new RegExp(`^${lab.config}: passphrase \\+ OpenPGP secret key \\(sealed, set `));
    expect(list.stdout).not.toContain(passphrase);
    expect(await chainOf(dump("simple"))).toMatchObject([{ dumps: [{ decrypt: { amanda: lab.config, side: "server", program: "amcryptsimple" } }] }]);

    // amgpgcrypt, client-side, no compression: the raw stream is the decrypted tar stream.
    const gpgRaw = await get(`/api/v1/dumps/${dump("gpg").id}/stream`);
    expect(gpgRaw.status).toBe(200);
    const gpgBytes = Buffer.from(await gpgRaw.arrayBuffer());
    expect(sha(gpgBytes)).toBe(sha(await amfetchdump(dump("gpg"))));
    // A resumed stream: decrypted from the start, the prefix skipped.
    const tail = await get(`/api/v1/dumps/${dump("gpg").id}/stream`, { range: "bytes=1000-" });
    expect(tail.status).toBe(206);
    expect(sha(Buffer.from(await tail.arrayBuffer()))).toBe(sha(gpgBytes.subarray(1000)));

    // amcryptsimple, server-side over client gzip: raw = the decrypted gzip stream, decompressed = amfetchdump -p.
    const simpleRaw = Buffer.from(await (await get(`/api/v1/dumps/${dump("simple").id}/stream`)).arrayBuffer());
    const simpleNative = Buffer.from(await (await get(`/api/v1/dumps/${dump("simple").id}/stream?decompress=1`)).arrayBuffer());
    const theirs = await amfetchdump(dump("simple"));
    expect(simpleNative.length).toBeGreaterThan(0);
    expect(sha(simpleNative)).toBe(sha(theirs));
    expect(sha(gunzipSync(simpleRaw))).toBe(sha(theirs));

    const audit = await server.ctx.store.audit.list({ limit: 100 });
    const used = audit.filter((a) => a.action === "amanda.key.used");
    expect(used.length).toBeGreaterThanOrEqual(4);
    expect(used[0]).toMatchObject({ target: `amanda:${lab.config}` });
    expect(audit.some((a) => a.action === "amanda.key.set")).toBe(true);
    expect(JSON.stringify(audit)).not.toContain(passphrase);
  }, 180_000);

  it("a wrong passphrase fails the stream; key remove refuses the plan again", async () => {
    const wrong = join(work, "wrong");
    writeFileSync(wrong, "not the passphrase\n", { mode: 0o600 });
    const set = await lifeboat(["amanda", "key", "set", lab.config, "--passphrase-file", wrong, "--config", cfg, "--data-dir", data, "--server", server.httpUrl]);
    expect(set.exitCode, set.stderr).toBe(0);
    const r = await get(`/api/v1/dumps/${dump("simple").id}/stream`);
    const got = await r.arrayBuffer().then((b) => b.byteLength, () => -1);
    // gpg fails before the first byte: an error answer, or (had the headers gone out) a body shorter than announced.
    expect(r.status !== 200 || got < Number(r.headers.get("content-length")), `status ${r.status}, ${got} bytes`).toBe(true);
    let failed;
    // The stream's audit entry is written as it ends: wait for it (at most 5 s).
    for (let i = 0; i < 50 && !failed; i++, await new Promise((ok) => setTimeout(ok, 100)))
      failed = (await server.ctx.store.audit.list({ target: `dump:${dump("simple").id}`, limit: 20 })).find((a) => a.action === "dump.stream.failed");
    expect(failed?.detail).toMatchObject({ error: expect.stringContaining("gpg cannot decrypt it") });
    const rm = await lifeboat(["amanda", "key", "remove", lab.config, "--config", cfg, "--data-dir", data, "--server", server.httpUrl]);
    expect([rm.exitCode, rm.stdout.trim()]).toEqual([0, `${lab.config}: key removed`]);
    await expect(chainOf(dump("simple"))).rejects.toThrow("Lifeboat holds no passphrase");
    const again = await lifeboat(["amanda", "key", "remove", lab.config, "--config", cfg, "--data-dir", data, "--server", server.httpUrl]);
    expect([again.exitCode, again.stderr.trim()]).toEqual([2, `lifeboat: DELETE /api/v1/amanda/keys/${lab.config}: 404 Lifeboat holds no key for Amanda config ${lab.config}`]);
  }, 120_000);
});
