/**
 * Encrypted Amanda dumps (issue 23 item 4). Amanda encrypts with a program named in the
 * dump's header: `encrypt server` (the taper side, `server_encrypt`) or `encrypt client`
 * (`client_encrypt`). Lifeboat decrypts the two OpenPGP ones Amanda ships:
 *   - amcryptsimple: gpg --symmetric with the passphrase in ~amandabackup/.am_passphrase;
 *   - amgpgcrypt: gpg --encrypt to the dump user's public key; decrypting needs its secret key
 *     (and the passphrase in .am_passphrase when that key is protected).
 * The passphrase or key is escrowed per Amanda config in Lifeboat's sealed secret store
 * (`lifeboat amanda key set`). Deciding whether a dump can be decrypted is pure
 * (`decryptionFor`); the stream's side (`gpgDecrypt`) spawns gpg with a private GNUPGHOME in a
 * temp dir, the secret key imported through stdin and the passphrase through a pipe on fd 3:
 * never on a command line, in the environment or in a log.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, type Readable, type Writable, pipeline } from "node:stream";
import { execa } from "execa";
import { type CatalogDump, dumpName } from "./model.ts";

/** The encryption programs Lifeboat decrypts (their output is OpenPGP), by base name. */
export const GPG_ENCRYPTORS = ["amcryptsimple", "amgpgcrypt"] as const;

/** What the store holds for a config (never the secret itself). */
export interface AmandaKeyInfo {
  amanda: string;
  hasPassphrase: boolean;
  hasSecretKey: boolean;
  updatedAt: string;
}

/** Which Amanda configs Lifeboat holds a key for, and what kind (store.amandaKeys.list()). */
export type AmandaKeyHolding = ReadonlyMap<string, Pick<AmandaKeyInfo, "hasPassphrase" | "hasSecretKey">>;

export const keyHolding = (keys: Array<Pick<AmandaKeyInfo, "amanda" | "hasPassphrase" | "hasSecretKey">>): AmandaKeyHolding => new Map(keys.map((k) => [k.amanda, k]));

/** The escrowed secret, opened: a passphrase (amcryptsimple; or the secret key's), an armoured OpenPGP secret key (amgpgcrypt). */
export interface AmandaKey {
  passphrase: string | null;
  secretKey: string | null;
}

/** A dump's decryption as a plan states it: with which config's key, for which side and program. */
export interface Decryption {
  amanda: string;
  side: "server" | "client";
  program: string;
}

/** Pure: the encryption program's base name when it is one Lifeboat decrypts, else null. */
export function gpgEncryptor(program: string | null): (typeof GPG_ENCRYPTORS)[number] | null {
  const m = /^(?:\/usr\/s?bin\/|\/usr\/local\/s?bin\/|\/s?bin\/)?([a-z]+)$/.exec(program ?? "");
  return m && (GPG_ENCRYPTORS as readonly string[]).includes(m[1]!) ? (m[1] as (typeof GPG_ENCRYPTORS)[number]) : null;
}

/**
 * Pure: how a dump is decrypted with the keys Lifeboat holds (`keys`: per Amanda config),
 * null for a dump that is not encrypted, or the one-line reason it cannot be, naming the
 * dump and the key that is missing.
 */
export function decryptionFor(d: CatalogDump, keys: AmandaKeyHolding): Decryption | { refused: string } | null {
  if (!d.encrypted) return null;
  const enc = d.encryption;
  if (!enc) return { refused: `${dumpName(d)} is encrypted, but its catalog row does not say how: run lifeboat catalog refresh` };
  const program = gpgEncryptor(enc.program);
  const by = `${enc.side}-side with ${enc.program ?? "an unnamed program"}`;
  if (!program) return { refused: `${dumpName(d)} is encrypted ${by}, which Lifeboat does not decrypt (${GPG_ENCRYPTORS.join(", ")})` };
  const key = keys.get(d.amanda);
  const need = program === "amcryptsimple" ? "passphrase" : "OpenPGP secret key";
  const where = enc.side === "client" ? ` (a client-side key, kept on host ${d.host})` : "";
  const set = program === "amcryptsimple" ? "--passphrase-file FILE" : "--gpg-secret-key FILE";
  if (!key || (program === "amcryptsimple" ? !key.hasPassphrase : !key.hasSecretKey))
    return { refused: `${dumpName(d)} is encrypted ${by}; Lifeboat holds no ${need} for Amanda config ${d.amanda}${where}: lifeboat amanda key set ${d.amanda} ${set}` };
  return { amanda: d.amanda, side: enc.side, program };
}

function lastLine(stderr: string): string {
  return (
    stderr
      .split("\n")
      .map((l) => l.replace(/^gpg: /, "").trim())
      .filter(Boolean)
      .pop() ?? ""
  );
}

/**
 * The edge: `src` (the encrypted bytes, already CRC-checked as they pass) through gpg
 * --decrypt. The returned stream carries the plaintext; any failure (wrong key, gpg missing,
 * a damaged message, an upstream CRC error) destroys it with one line, never the secret.
 * The private GNUPGHOME (and the gpg-agent gpg starts in it) goes when the stream ends.
 */
export function gpgDecrypt(src: Readable, key: AmandaKey, what: string): Readable {
  const out = new PassThrough();
  let home: string | null = null;
  const cleanup = async () => {
    if (!home) return;
    const h = home;
    home = null;
    await execa("gpgconf", ["--homedir", h, "--kill", "gpg-agent"], { reject: false });
    await rm(h, { recursive: true, force: true });
  };
  const fail = (err: Error) => {
    src.destroy();
    out.destroy(err);
    void cleanup();
  };
  void (async () => {
    home = await mkdtemp(join(tmpdir(), "lifeboat-gpg-"));
    const base = ["--homedir", home, "--batch", "--no-tty", "--quiet"];
    if (key.secretKey) {
      const r = await execa("gpg", [...base, "--import"], { input: key.secretKey, reject: false });
      if (r.exitCode !== 0) throw new Error(`${what}: the escrowed OpenPGP secret key does not import: ${lastLine(String(r.stderr))}`);
    }
    const args = [...base, "--pinentry-mode", "loopback", ...(key.passphrase !== null ? ["--passphrase-fd", "3"] : []), "--decrypt"];
    const gpg = execa("gpg", args, { stdio: ["pipe", "pipe", "pipe", "pipe"], reject: false, buffer: { stdout: false, stderr: true } });
    const fd3 = gpg.stdio[3] as unknown as Writable;
    fd3.end(key.passphrase !== null ? `${key.passphrase}\n` : "");
    pipeline(src, gpg.stdin!, (err) => {
      if (err) fail(err);
    });
    gpg.stdout!.pipe(out, { end: false });
    const r = await gpg;
    if (out.destroyed) return;
    if (r.exitCode !== 0) throw new Error(`${what}: gpg cannot decrypt it: ${lastLine(String(r.stderr)) || `exit ${r.exitCode}`}`);
    await cleanup();
    out.end();
  })().catch((err: Error) => fail((err as { code?: string }).code === "ENOENT" ? new Error(`${what}: gpg not found (Debian's gpg package)`) : err));
  out.on("close", () => void cleanup());
  return out;
}
