/**
 * Secrets at rest: the LUKS passphrases the admin gives a job are sealed with AES-256-GCM
 * under a key kept in its own file beside the admin token, so a copy of `lifeboat.db` (or
 * of its WAL) alone reveals nothing. Each value is bound to its row (job and container
 * UUID): a sealed value moved to another row does not open.
 */
import { readFileSync } from "node:fs";
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { UserError } from "../errors.ts";
import { ensurePrivateFile } from "../private-file.ts";

/** Marks a sealed value (version 1: base64 of IV, tag, ciphertext); anything else is a plaintext row from before. */
const SEALED = "lbsec1:";
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error(`a secret key is ${KEY_BYTES} bytes, got ${key.length}`);
  }

  /** A box with a key that lives as long as the process (an in-memory store). */
  static ephemeral(): SecretBox {
    return new SecretBox(randomBytes(KEY_BYTES));
  }

  static isSealed(value: string): boolean {
    return value.startsWith(SEALED);
  }

  /** `context` names the row the value belongs to; `open` needs the same. */
  seal(plain: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv("aes-256-gcm", this.key, iv).setAAD(Buffer.from(context));
    const body = Buffer.concat([c.update(plain, "utf8"), c.final()]);
    return SEALED + Buffer.concat([iv, c.getAuthTag(), body]).toString("base64");
  }

  /** The plaintext, or a UserError when the value was altered, moved to another row or sealed under another key. */
  open(sealed: string, context: string): string {
    const raw = Buffer.from(sealed.slice(SEALED.length), "base64");
    try {
      if (!SecretBox.isSealed(sealed) || raw.length < IV_BYTES + TAG_BYTES) throw new Error("short");
      const d = createDecipheriv("aes-256-gcm", this.key, raw.subarray(0, IV_BYTES)).setAAD(Buffer.from(context));
      d.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([d.update(raw.subarray(IV_BYTES + TAG_BYTES)), d.final()]).toString("utf8");
    } catch {
      throw new UserError(`the stored secret for ${context} does not open: altered, or sealed under another key file`);
    }
  }
}

/** The store's secret key from `file` (64 hex digits), made at first start. */
export function loadSecretKey(file: string): Buffer {
  ensurePrivateFile(file, () => `${randomBytes(KEY_BYTES).toString("hex")}\n`);
  const text = readFileSync(file, "utf8").trim();
  if (!/^[0-9a-f]{64}$/.test(text)) throw new UserError(`${file}: not a Lifeboat secret key (expected 64 hex digits); restore it from a backup of the data dir`);
  return Buffer.from(text, "hex");
}
