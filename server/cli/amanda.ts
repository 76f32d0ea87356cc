import type { Command } from "commander";
import type { AmandaKeyInfo } from "../amanda/decrypt.ts";
import { UserError } from "../errors.ts";
import type { AmandaKeyBody } from "../http/api-schemas.ts";
import { cliContext, output, readPrivateFile, withGlobals, withServer } from "./common.ts";
import { readPasswordFile } from "./power.ts";

interface KeySetOptions {
  passphraseFile?: string;
  gpgSecretKey?: string;
}

/** The API body for `amanda key set`: the passphrase's first line and/or the armoured secret key, each from a 0600 file. */
export function amandaKeyBody(config: string, o: KeySetOptions): AmandaKeyBody {
  if (!o.passphraseFile && !o.gpgSecretKey) throw new UserError(`amanda key set ${config}: give --passphrase-file FILE, --gpg-secret-key FILE or both`, 2);
  return {
    ...(o.passphraseFile ? { passphrase: readPasswordFile(o.passphraseFile, "passphrase") } : {}),
    ...(o.gpgSecretKey ? { secretKey: readPrivateFile(o.gpgSecretKey, "secret key") } : {}),
  };
}

const describe = (k: AmandaKeyInfo) =>
  `${k.amanda}: ${[k.hasPassphrase && "passphrase", k.hasSecretKey && "OpenPGP secret key"].filter(Boolean).join(" + ")} (sealed, set ${k.updatedAt})`;

/**
 * `amanda key set|list|remove`: the keys of encrypted Amanda dumps, escrowed per Amanda config in
 * the server's sealed store (through the API: the server audits every change and every use).
 */
export function registerAmanda(program: Command): void {
  const amanda = program.command("amanda").description("Amanda configs' keys for encrypted dumps (amcryptsimple, amgpgcrypt)");
  const key = amanda
    .command("key")
    .description("escrow the passphrase or OpenPGP secret key of an Amanda config's encrypted dumps; the dump stream decrypts with it (audited)");
  withServer(
    withGlobals(
      key
        .command("set <config>")
        .description("store (or replace) the key of an Amanda config, sealed; it is never shown again")
        .option("--passphrase-file <file>", "amcryptsimple's passphrase (~amandabackup/.am_passphrase; its first line), or the one protecting the secret key; mode 0600")
        .option("--gpg-secret-key <file>", "amgpgcrypt's OpenPGP secret key, armoured (gpg --homedir ~amandabackup/.gnupg --export-secret-keys --armor); mode 0600")
        .addHelpText(
          "after",
          "\nExamples:\n  lifeboat amanda key set daily --passphrase-file /var/backups/.am_passphrase\n" +
            "  gpg --homedir /var/backups/.gnupg --export-secret-keys --armor > k.asc && chmod 600 k.asc\n" +
            "  lifeboat amanda key set daily --gpg-secret-key k.asc [--passphrase-file F]",
        ),
      { json: true },
    ),
  ).action(async (config: string, o: KeySetOptions, c: Command) => {
    const ctx = cliContext(c);
    const k = await ctx.api.request<AmandaKeyInfo>("PUT", `/api/v1/amanda/keys/${encodeURIComponent(config)}`, amandaKeyBody(config, o));
    output(ctx, k, () => describe(k));
  });
  withServer(withGlobals(key.command("list").description("which Amanda configs Lifeboat holds a key for (never the key)"), { json: true })).action(
    async (_o, c: Command) => {
      const ctx = cliContext(c);
      const keys = await ctx.api.request<AmandaKeyInfo[]>("GET", "/api/v1/amanda/keys");
      output(ctx, keys, () => (keys.length ? keys.map(describe).join("\n") : "no Amanda keys"));
    },
  );
  withServer(withGlobals(key.command("remove <config>").description("forget an Amanda config's key (plans needing it are refused again)"), { json: true })).action(
    async (config: string, _o, c: Command) => {
      const ctx = cliContext(c);
      await ctx.api.request<unknown>("DELETE", `/api/v1/amanda/keys/${encodeURIComponent(config)}`);
      output(ctx, { amanda: config, removed: true }, () => `${config}: key removed`);
    },
  );
}
