import { z } from "zod";
import { everyProblem } from "../drill/every.ts";
import { STORE_LIMITS } from "../jobs/retention.ts";

/** The defaults of the `tftp` limit keys; a TftpServer built without them uses them too (tftp/transfer.ts DEFAULT_LIMITS). */
export const TFTP_DEFAULTS = {
  maxTimeoutSeconds: 10,
  maxTransfers: 128,
  maxTransfersPerClient: 8,
};

/** A PostgreSQL store's URL (config store.url, `lifeboat store migrate --to`). */
export function isStoreUrl(u: string): boolean {
  return /^postgres(ql)?:\/\/./.test(u);
}

/**
 * What an x64 UEFI PXE client is handed (dhcp.uefiLoader, server/dhcp/firmware.ts chooseBoot):
 * Debian's signed shim → GRUB chain, iPXE's snponly.efi, or (auto, the default) in full mode
 * the signed chain when its two files are in the TFTP root (`lifeboat image build` puts them
 * into the image), else iPXE. The signed GRUB cannot follow a proxy offer: proxy mode is iPXE.
 */
export const UEFI_LOADERS = ["auto", "shim", "ipxe"] as const;

const ipv4 = z.union([z.literal(""), z.ipv4()]);

export const amandaConfigSchema = z.strictObject({
  name: z.string().min(1),
  configDir: z.string().min(1),
  vtapeRoot: z.string().optional(),
  holdingDirs: z.array(z.string()).default([]),
  // Unset: DEFAULT_HELPER_SOCKET (filled in by readAmandaConfig); "": no dump-user helper.
  helperSocket: z.string().optional(),
});

export const staticLeaseSchema = z.strictObject({
  mac: z.string().min(1),
  ip: z.ipv4(),
  hostname: z.string().optional(),
});

/** Where scheduled bundles go (server/bundle/schedule.ts). sftp and rsync are not written yet: refused here, in one line. */
export const BUNDLE_TARGET_TYPES = ["directory", "lifeboat"] as const;

export const bundleTargetSchema = z
  .strictObject({
    /** The target's label on the page, in /metrics and in `store bundles`. */
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "expected letters, digits, '.', '_' or '-'"),
    type: z.string().refine((t) => (BUNDLE_TARGET_TYPES as readonly string[]).includes(t), "expected directory or lifeboat (sftp and rsync targets are not supported yet)"),
    /** directory: an absolute path (a mounted USB disk, an NFS mount). */
    path: z.string().optional(),
    /** lifeboat: the other server's base URL, and a file holding its admin token. */
    url: z.url().optional(),
    tokenFile: z.string().optional(),
  })
  .superRefine((t, ctx) => {
    const need = (key: "path" | "url" | "tokenFile", ok: boolean, what: string) => {
      if (!ok) ctx.addIssue({ code: "custom", path: [key], message: `a ${t.type} target needs ${what}` });
    };
    if (t.type === "directory") need("path", !!t.path?.startsWith("/"), "an absolute path");
    if (t.type === "lifeboat") {
      need("url", !!t.url, "the other server's url");
      need("tokenFile", !!t.tokenFile, "tokenFile (a file holding the other server's admin token)");
    }
  });

/**
 * The DHCP modes (README "DHCP modes"): proxy beside the LAN's server; full, Lifeboat hands out
 * addresses to anyone; reserved, full DHCP for armed machines and static leases only, silent to
 * everyone else; off, the LAN's own server chains to Lifeboat.
 */
export const DHCP_MODES = ["proxy", "full", "reserved", "off"] as const;
/** The modes in which Lifeboat hands out addresses from dhcp.pool. */
export const LEASING_MODES: readonly DhcpMode[] = ["full", "reserved"];

export const configSchema = z.strictObject({
  dataDir: z.string().default(""),
  // This server's name among the servers of one store (jobs say which server serves them); "": the host name.
  name: z.union([z.literal(""), z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "expected letters, digits, '.', '_' or '-' (at most 64)")]).default(""),
  // "": the embedded SQLite store in the data dir; postgres://…: one store shared by several servers (README, "Several servers").
  store: z
    .strictObject({
      url: z
        .string()
        .refine((u) => u === "" || isStoreUrl(u), "expected a postgres:// or postgresql:// URL, or \"\" for the embedded SQLite store")
        .default(""),
    })
    .prefault({}),
  listen: z
    .strictObject({
      interface: z.string().default(""),
      address: z.ipv4().default("0.0.0.0"),
    })
    .prefault({}),
  http: z
    .strictObject({
      port: z.number().int().min(0).max(65535).default(8080),
      publicUrl: z.union([z.literal(""), z.url()]).default(""),
    })
    .prefault({}),
  tftp: z
    .strictObject({
      enabled: z.boolean().default(true),
      port: z.number().int().min(0).max(65535).default(69),
      root: z.string().default(""),
      maxTimeoutSeconds: z.number().int().min(1).max(255).default(TFTP_DEFAULTS.maxTimeoutSeconds),
      maxTransfers: z.number().int().min(1).default(TFTP_DEFAULTS.maxTransfers),
      maxTransfersPerClient: z.number().int().min(1).default(TFTP_DEFAULTS.maxTransfersPerClient),
    })
    .prefault({}),
  dhcp: z
    .strictObject({
      mode: z.enum(DHCP_MODES).default("proxy"),
      // Kept under iPXE's 2 s wait for a proxy answer (pxe/README.md, "Proxy mode: the held offer").
      proxyOfferDelayMs: z.number().int().min(0).max(1500).default(500),
      // What x64 UEFI PXE clients load (server/dhcp/firmware.ts UEFI_LOADERS): Debian's signed shim →
      // network GRUB → signed kernel, which Secure Boot machines accept, or iPXE (snponly.efi, unsigned).
      uefiLoader: z.enum(UEFI_LOADERS).default("auto"),
      pool: z
        .strictObject({
          start: ipv4.default(""),
          end: ipv4.default(""),
          netmask: z.ipv4().default("255.255.255.0"),
          router: ipv4.default(""),
          dns: z.array(z.ipv4()).default([]),
          leaseSeconds: z.number().int().positive().default(3600),
        })
        .prefault({}),
      staticLeases: z.array(staticLeaseSchema).default([]),
    })
    .superRefine((d, ctx) => {
      // Debian 12's signed network GRUB takes its TFTP server from the LAN server's DHCP answer, not
      // from Lifeboat's proxy offer (seen under OVMF: it never asks Lifeboat for grub/grub.cfg).
      if (d.mode === "proxy" && d.uefiLoader === "shim")
        ctx.addIssue({ code: "custom", path: ["uefiLoader"], message: "shim needs dhcp.mode full (or off, with your DHCP server's next-server pointing at Lifeboat): the signed GRUB asks the LAN's DHCP server's next-server for its files, not Lifeboat's proxy offer" });
      if (!LEASING_MODES.includes(d.mode)) return;
      for (const key of ["start", "end"] as const)
        if (!d.pool[key]) ctx.addIssue({ code: "custom", path: ["pool", key], message: `dhcp.mode ${d.mode} hands out addresses: set dhcp.pool.start and dhcp.pool.end` });
    })
    .prefault({}),
  amanda: z.array(amandaConfigSchema).default([]),
  catalog: z
    .strictObject({ refreshMinutes: z.number().int().min(0).default(60) })
    .prefault({}),
  jobs: z
    .strictObject({
      expireHours: z.number().positive().default(24),
      heartbeatTimeoutSeconds: z.number().int().positive().default(60),
      stalledFailHours: z.number().positive().default(12),
      agentLogMaxBytes: z.number().int().min(1024).default(STORE_LIMITS.agentLogMaxBytes),
      agentLogJobMaxBytes: z.number().int().min(1024).default(STORE_LIMITS.agentLogJobMaxBytes),
    })
    .prefault({}),
  power: z
    .strictObject({
      // How many machines of batches armed with --power load the server at once (power/waves.ts).
      waveSize: z.number().int().min(1).max(1024).default(8),
    })
    .prefault({}),
  retention: z
    .strictObject({
      layoutVersions: z.number().int().min(1).default(STORE_LIMITS.layoutVersions),
      endedJobDays: z.number().min(0).default(STORE_LIMITS.endedJobDays),
    })
    .prefault({}),
  recoverability: z
    .strictObject({
      // A host whose layout is older than this is shown not recoverable (jobs/recoverability.ts).
      layoutMaxAgeDays: z.number().positive().default(8),
    })
    .prefault({}),
  drill: z
    .strictObject({
      // The throwaway machine of `lifeboat drill` (server/drill/): its memory and CPUs, and the most its
      // thin disk files (one per captured disk, at its captured size) may add up to.
      memoryMiB: z.number().int().min(256).max(262_144).default(1024),
      cpus: z.number().int().min(1).max(64).default(2),
      maxDiskGiB: z.number().positive().default(64),
      // Where the disk files live while a drill runs ("": <dataDir>/drills); removed afterwards.
      workDir: z.string().default(""),
      // The restore (rescue boot to the plan's end) and the restored system's boot, each at most this long.
      restoreTimeoutMinutes: z.number().positive().default(240),
      bootTimeoutSeconds: z.number().int().positive().default(900),
      // ssh:COMMAND checks log in as root with this private key ("": ssh checks are refused).
      sshKey: z.string().default(""),
      // How often `serve` drills each host (7d, 12h, 90m, 2w; "off": never), unless the host's own
      // profile says otherwise (profiles set --drill-every); the most overdue first, one at a time.
      every: z
        .string()
        .superRefine((e, ctx) => {
          const problem = everyProblem(e);
          if (problem) ctx.addIssue({ code: "custom", message: problem });
        })
        .default("off"),
      // What the restored system's console shows once it is up (a regular expression): a login prompt by default.
      readyPattern: z
        .string()
        .refine((p) => {
          try {
            new RegExp(p, "m");
            return true;
          } catch {
            return false;
          }
        }, "expected a regular expression")
        .default("\\S+ login:"),
    })
    .prefault({}),
  bundle: z
    .strictObject({
      everyHours: z.number().positive().default(24),
      keep: z.number().int().min(1).default(7),
      recipient: z.string().default(""),
      maxReceiveBytes: z.number().int().min(1024 * 1024).default(4 * 1024 ** 3),
      targets: z
        .array(bundleTargetSchema)
        .refine((ts) => new Set(ts.map((t) => t.name)).size === ts.length, "expected each target to have its own name")
        .default([]),
    })
    .prefault({}),
  adminTokenFile: z.string().default(""),
  adminSshKeys: z.array(z.string()).default([]),
  log: z
    .strictObject({
      level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    })
    .prefault({}),
});

export type RawConfig = z.infer<typeof configSchema>;
export type AmandaConfig = z.infer<typeof amandaConfigSchema>;
export type BundleTarget = z.infer<typeof bundleTargetSchema>;
export type DhcpMode = (typeof DHCP_MODES)[number];
export type UefiLoader = RawConfig["dhcp"]["uefiLoader"];

/** The config after defaults that depend on the machine (data dir, TFTP root, token file) are filled in. */
export type Config = RawConfig & { source: string };
