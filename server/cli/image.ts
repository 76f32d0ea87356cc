import type { Command } from "commander";
import { BuildError, DEFAULT_CACHE_DIR, buildImage, readImageInfo, type ImageInfo } from "../../rescue-image/build.ts";
import { SignedLoaderError, fetchSignedLoaders } from "../../rescue-image/signed-loaders.ts";
import { UserError } from "../errors.ts";
import { imageDir } from "../jobs/recoverability.ts";
import { cliContext, output, table, withGlobals } from "./common.ts";

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

export function registerImage(program: Command): Command {
  const image = program.command("image").description("the rescue kernel and initramfs");

  withGlobals(
    image
      .command("build")
      .description(
        "build the rescue kernel + initramfs from Debian packages (apt-get download; nothing is installed on this host),\n" +
          "and put Debian's signed shim and network GRUB beside them (for dhcp.uefiLoader: shim, Secure Boot machines).\n" +
          "A second build with nothing changed only checks the inputs and takes seconds.",
      )
      .option("--cache <dir>", "where downloaded packages and the staging root are kept", DEFAULT_CACHE_DIR)
      .option("--out <dir>", "output directory (default <dataDir>/image)")
      .option("--refresh", "ask apt for newer packages even when the cache is complete"),
    { json: true },
  ).action(async (opts: { cache: string; out?: string; refresh?: boolean }, cmd: Command) => {
    const ctx = cliContext(cmd);
    const started = Date.now();
    try {
      const progress = (line: string) => process.stderr.write(`image build: ${line}\n`);
      const outDir = opts.out ?? imageDir(ctx.config.dataDir);
      const r = await buildImage({ cacheDir: opts.cache, outDir, sshKeys: ctx.config.adminSshKeys, refresh: opts.refresh, progress });
      const signed = await fetchSignedLoaders({ cacheDir: opts.cache, outDir, refresh: opts.refresh, progress });
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      output(ctx, { ...r, signedLoaders: signed, seconds: Number(seconds) }, () => `${r.rebuilt ? "built" : "up to date"} in ${seconds} s: ${r.outDir} (signed loaders from ${signed.debs.join(", ")})`);
    } catch (err) {
      if (err instanceof BuildError || err instanceof SignedLoaderError) throw new UserError(`image build failed: ${err.message}`, 1);
      throw err;
    }
  });

  withGlobals(
    image
      .command("info")
      .description("kernel version, sizes, tool versions and build date of the built rescue image")
      .option("--out <dir>", "image directory (default <dataDir>/image)"),
    { json: true },
  ).action((opts: { out?: string }, cmd: Command) => {
    const ctx = cliContext(cmd);
    const dir = opts.out ?? imageDir(ctx.config.dataDir);
    const info = readImageInfo(dir);
    if (!info) throw new UserError(`no rescue image in ${dir}; run \`lifeboat image build\``);
    output(ctx, info, () => describe(dir, info));
  });
  return image;
}

function describe(dir: string, info: ImageInfo): string {
  return [
    `image:      ${dir}`,
    `kernel:     ${info.kernelVersion}`,
    `built:      ${info.builtAt}`,
    `vmlinuz:    ${mib(info.sizes.vmlinuz)}`,
    `initramfs:  ${mib(info.sizes.initramfs)} ${info.compression} (${mib(info.sizes.initramfsUncompressed)} unpacked)`,
    `modules:    ${info.drivers.modules} (${info.drivers.nic.length} NIC, ${info.drivers.storage.length} storage drivers)`,
    `ssh keys:   ${info.sshKeys}`,
    "",
    table(
      Object.entries(info.tools).map(([tool, version]) => ({ tool, version })),
      ["tool", "version"],
    ),
  ].join("\n");
}
