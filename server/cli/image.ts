import type { Command } from "commander";
import { BuildError, DEFAULT_CACHE_DIR, buildImage, readImageInfo, type ImageInfo } from "../../rescue-image/build.ts";
import { SignedLoaderError, fetchSignedLoaders } from "../../rescue-image/signed-loaders.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { IsoError, buildIso } from "../../rescue-image/iso.ts";
import { UserError } from "../errors.ts";
import { rescueNetSchema } from "../http/api-schemas.ts";
import type { JobView } from "../jobs/job-views.ts";
import { type KernelArgs, type RescueNet, describeRescueNet, rescueNetArgs } from "../plan/cmdline.ts";
import type { ProfileRecord } from "../store/types.ts";
import { imageDir } from "../jobs/recoverability.ts";
import { ONE_TIME_CODE_DEFAULT_HOURS } from "../jobs/boot-policy.ts";
import { type CliContext, cliContext, output, table, withGlobals, withServer } from "./common.ts";

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

  withServer(
    withGlobals(
      image
        .command("iso")
        .description(
          "write a hybrid ISO of the rescue system for machines that cannot network-boot: BIOS and UEFI (Secure Boot: Debian's\n" +
            "signed shim, GRUB and kernel), burn it, attach it as virtual media or dd it to a USB stick. The machine then runs its\n" +
            "job like a network-booted one, once its agent traded the job's one-time code for a boot token (no reusable secret on the medium).\n" +
            "With --host: the code of the host's active job goes on the medium (valid once, --valid-hours); without: the console asks for it.",
        )
        .option("--host <name>", "carry a one-time code for this host's active (armed) job; needs --server (asked there, and written on the medium)")
        .option("--net <spec>", "the rescue network: dhcp (default: DHCP on each NIC in turn) or static:ADDR/PREFIX[,GW[,DNS]] on the first NIC with a link")
        .option("--out <file>", "the image file to write", "lifeboat-rescue.iso")
        .option("--image <dir>", "the built rescue image (default <dataDir>/image)")
        .option("--valid-hours <n>", "with --host: hours the code may be used", String(ONE_TIME_CODE_DEFAULT_HOURS))
        .addHelpText(
          "after",
          "\nThe server URL (--server, default $LIFEBOAT_SERVER) is the one the machine will reach; without one the console asks for it.\n" +
            "Examples:\n  lifeboat image iso --server http://10.0.5.1:8080 --net static:10.0.5.20/24,10.0.5.1,10.0.5.2 --out rescue.iso\n" +
            "  lifeboat image iso --server http://10.0.5.1:8080 --host web1 --out web1.iso && dd if=web1.iso of=/dev/sdX bs=4M oflag=direct\n" +
            "  lifeboat jobs code JOB      # the code to type on a machine booted from a medium made without --host",
        ),
      { json: true },
    ),
  ).action(async (opts: { host?: string; net?: string; out: string; image?: string; validHours: string; server?: string }, cmd: Command) => {
    const ctx = cliContext(cmd);
    const server = (opts.server || process.env.LIFEBOAT_SERVER || "").replace(/\/+$/, "");
    if (server && !/^https?:\/\/[^\s/]+$/.test(server)) throw new UserError(`--server: expected http://HOST[:PORT] as the machine reaches Lifeboat, got ${JSON.stringify(server)}`, 2);
    if (opts.host && !server) throw new UserError("--host needs --server URL: where the code is asked for and what the machine reaches", 2);
    const net = parseMediaNet(opts.net ?? "dhcp");
    const validHours = Number(opts.validHours);
    const code = opts.host ? await hostCode(ctx, opts.host, validHours) : undefined;
    const args: KernelArgs = { ...(server ? { server } : {}), ...(code ? { code: code.code } : {}), ...rescueNetArgs(net) };
    const out = resolve(opts.out);
    const work = mkdtempSync(join(tmpdir(), "lifeboat-iso-"));
    try {
      await buildIso({ imageDir: opts.image ?? imageDir(ctx.config.dataDir), out, args, work });
    } catch (err) {
      if (err instanceof IsoError) throw new UserError(`image iso failed: ${err.message}`, 1);
      throw err;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    const result = { out, server: server || null, job: code?.job ?? null, codeExpiresAt: code?.expiresAt ?? null, network: describeRescueNet(net).replace("the NIC that booted", net?.address ? "the first NIC with a link" : "each NIC in turn") };
    output(ctx, result, () =>
      [
        `wrote ${out}: BIOS and UEFI (Secure Boot), CD or USB stick`,
        `server:  ${server || "asked on the console"}`,
        `job:     ${code ? `${code.job} (its one-time code is on the medium: valid once, until ${code.expiresAt})` : "asked on the console: the job's one-time code (lifeboat jobs code JOB)"}`,
        `network: ${result.network}`,
      ].join("\n"),
    );
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

/** --net: dhcp, or static:ADDR/PREFIX[,GW[,DNS]] checked by the API's own rescue network schema. Pure. */
export function parseMediaNet(spec: string): RescueNet | undefined {
  if (spec === "dhcp") return undefined;
  const m = /^static:([^,]+)(?:,([^,]*))?(?:,([^,]*))?$/.exec(spec);
  if (!m) throw new UserError(`--net: expected dhcp or static:ADDR/PREFIX[,GW[,DNS]], got ${JSON.stringify(spec)}`, 2);
  const r = rescueNetSchema.safeParse({ address: m[1], ...(m[2] ? { gateway: m[2] } : {}), ...(m[3] ? { dns: [m[3]] } : {}) });
  if (!r.success) throw new UserError(`--net: ${r.error.issues[0]?.message ?? "not a static network"}: ${JSON.stringify(spec)}`, 2);
  return r.data;
}

/** A one-time code for the host's one active job (not a drill), from the running server. */
async function hostCode(ctx: CliContext, host: string, validHours: number): Promise<{ code: string; job: string; expiresAt: string }> {
  const profiles = await ctx.api.request<ProfileRecord[]>("GET", "/api/v1/profiles");
  const hostOf = new Map(profiles.map((p) => [p.name, p.host]));
  const jobs = (await ctx.api.request<JobView[]>("GET", "/api/v1/jobs?active=true")).filter((j) => j.kind !== "drill" && hostOf.get(j.profile) === host);
  if (jobs.length === 0) throw new UserError(`--host ${host}: no active job for it; arm one first (lifeboat jobs arm MAC)`, 2);
  if (jobs.length > 1) throw new UserError(`--host ${host}: ${jobs.length} active jobs (${jobs.map((j) => j.id).join(", ")}): cancel all but one`, 2);
  return ctx.api.request("POST", `/api/v1/jobs/${encodeURIComponent(jobs[0]!.id)}/code`, { validHours });
}
