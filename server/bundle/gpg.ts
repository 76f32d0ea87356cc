/**
 * OpenPGP encryption of a bundle with Debian's gpg (the keyring of $GNUPGHOME, or ~/.gnupg).
 * Encrypting needs only the recipient's public key; decrypting needs its secret key, which
 * gpg-agent unlocks (on a terminal it asks for the passphrase).
 */
import { closeSync, openSync, readSync } from "node:fs";
import { execa } from "execa";
import { BundleError } from "./manifest.ts";

/** Pure: what a bundle file's first bytes say it is. A tar has "ustar" at 257; OpenPGP starts with a packet tag (bit 7) or ASCII armour. */
export function bundleKind(head: Buffer): "tar" | "openpgp" | "unknown" {
  if (head.length >= 262 && head.subarray(257, 262).toString("latin1") === "ustar") return "tar";
  if (head.subarray(0, 27).toString("latin1") === "-----BEGIN PGP MESSAGE-----") return "openpgp";
  if (head.length > 0 && (head[0]! & 0x80) !== 0) return "openpgp";
  return "unknown";
}

/** What a file is, by its first 512 bytes (bundleKind). */
export function fileKind(file: string): ReturnType<typeof bundleKind> {
  const fd = openSync(file, "r");
  try {
    const b = Buffer.alloc(512);
    return bundleKind(b.subarray(0, readSync(fd, b, 0, 512, 0)));
  } finally {
    closeSync(fd);
  }
}

function lastLine(stderr: unknown): string {
  return (
    String(stderr ?? "")
      .split("\n")
      .map((l) => l.replace(/^gpg: /, "").trim())
      .filter(Boolean)
      .pop() ?? ""
  );
}

async function gpg(args: string[]) {
  const r = await execa("gpg", [...(process.stdin.isTTY ? [] : ["--batch"]), "--no-tty", ...args], { reject: false, stdin: process.stdin.isTTY ? "inherit" : "ignore" });
  if ((r as { code?: string }).code === "ENOENT") throw new BundleError("gpg not found on PATH (Debian's gpg package)");
  return r;
}

/** Encrypts `file` to `recipient` (a key id, fingerprint or user id in the keyring) into `out`. */
export async function encryptTo(file: string, out: string, recipient: string): Promise<void> {
  const r = await gpg(["--yes", "--trust-model", "always", "--encrypt", "--recipient", recipient, "--output", out, "--", file]);
  if (r.exitCode !== 0) throw new BundleError(`cannot encrypt to ${recipient}: ${lastLine(r.stderr) || `gpg exit ${r.exitCode}`}`);
}

/** Decrypts an encrypted bundle into `out`; without the secret key, one line naming the key it was encrypted to. */
export async function decryptTo(file: string, out: string): Promise<void> {
  const r = await gpg(["--yes", "--output", out, "--decrypt", "--", file]);
  if (r.exitCode === 0) return;
  const err = String(r.stderr ?? "");
  const to = /encrypted with .*?, ID ([0-9A-F]{8,40})/.exec(err)?.[1] ?? /public key is ([0-9A-F]{8,40})/.exec(err)?.[1];
  if (/No secret key|decryption failed: No secret key/.test(err))
    throw new BundleError(`it is encrypted to OpenPGP key ${to ?? "(unknown)"}, whose secret key is not in this keyring (${process.env.GNUPGHOME ?? "~/.gnupg"}): import it with gpg --import, or set GNUPGHOME`);
  throw new BundleError(`gpg cannot decrypt it: ${lastLine(err) || `exit ${r.exitCode}`}`);
}
