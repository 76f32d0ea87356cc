import { describeRescueNet } from "../plan/cmdline.ts";
import { ChainError, selectChain } from "../amanda/chain.ts";
import type { CatalogDump } from "../amanda/model.ts";
import { type AmandaKeyHolding, type Decryption, decryptionFor, keyHolding } from "../amanda/decrypt.ts";
import type { HostRecord, JobRecord, ProfileRecord, Store } from "../store/types.ts";
import type { TargetDisk } from "../plan/agent-api.ts";
import { type Disk, type DiskLayout, parseLayout, removableOrUsb } from "../layout/layout.ts";
import { type RestoreChain, type ServedPlan, buildPlan } from "../plan/plan.ts";
import { storedMappingSchema } from "../plan/disks.ts";
import { DEFAULT_END_STATE } from "../plan/steps.ts";
import { remoteDumpUrls } from "./servers.ts";

/** What the planner returns for a job: the plan it would serve, or why there is none yet. */
export type JobPlanResult = ({ ok: true } & ServedPlan) | { ok: false; reason: string };

/** A plan's script as people read it (`jobs plan`, the page): its network, decryption and waiting lines first, as sh comments. */
export function planForPeople(plan: Pick<ServedPlan, "script" | "detail">): string {
  return [...[...(plan.detail.network ?? []), ...(plan.detail.decrypt ?? []), ...(plan.detail.waits ?? [])].map((l) => `# ${l}\n`), plan.script].join("");
}

/** Which dumps of the chains the server decrypts on their stream, and with which Amanda config's key (the plan's `detail.decrypt`). */
export function decryptLines(chains: RestoreChain[]): string[] {
  return chains.flatMap((c) =>
    c.dumps.flatMap((d) =>
      d.decrypt
        ? [`decrypts dump ${d.id} (DLE ${c.dle} L${d.level} ${d.datestamp}, encrypted ${d.decrypt.side}-side with ${d.decrypt.program}) with the key of Amanda config ${d.decrypt.amanda}`]
        : [],
    ),
  );
}

/**
 * Before the machine boots, a captured disk with nothing to match it by (no serial, WWN or
 * by-id, a virtio disk without a serial) stands for itself in the dry run, so the rest of the
 * plan can be read (and `jobs arm --power` can go on); the real plan, against the disks the
 * machine reports, still waits for the admin's mapping of it.
 */
export function dryRunStandIns(layout: DiskLayout, mapped: (d: Disk) => boolean): { mapping: Record<string, string>; waits: string[] } {
  // Removable and USB disks stay as the plan treats them (left out unless mapped or included).
  const bare = layout.disks.filter((d) => !d.serial && !d.wwn && !d.byId.length && !removableOrUsb(d.removable, d.transport) && !mapped(d));
  return {
    mapping: Object.fromEntries(bare.map((d) => [d.name, d.name])),
    waits: bare.map((d) => `waits for a mapping: captured disk ${d.name} has no serial, WWN or by-id; once the machine has reported its disks: lifeboat jobs map JOB ${d.name}=TARGET`),
  };
}

/**
 * Builds a job's plan from its profile, the host's layout, the disks the agent saw
 * (job.hello; null before boot: a dry run against the captured disks) and the catalog.
 */
export type Planner = (job: JobRecord, profile: ProfileRecord) => Promise<JobPlanResult>;

/** The stream's compression as the rescue side must undo it, or why it cannot (an encrypted dump's stream is decrypted by the server: its compression is what is inside). */
function streamCompression(d: CatalogDump): string {
  if (d.compression === "none" || d.compression === "gzip" || d.compression === "bzip2") return d.compression;
  if (d.compression === "custom") {
    const prog = d.compressProgram ?? "";
    for (const c of ["zstd", "xz", "bzip2", "gzip"]) if (prog.includes(c)) return c;
  }
  throw new ChainError(`dump ${d.id} (${d.host}:${d.disk} level ${d.level}): compression ${d.compression}${d.compressProgram ? ` (${d.compressProgram})` : ""} is not one the rescue agent can undo`);
}

function backupProgram(d: CatalogDump): "gtar" | "dump" {
  const p = d.program.toLowerCase();
  if (p.includes("gtar") || p.includes("gnutar") || p.endsWith("/tar")) return "gtar";
  if (p.includes("dump")) return "dump";
  throw new ChainError(`dump ${d.id} (${d.host}:${d.disk}): backup program ${d.program} is not GNU tar or dump`);
}

/** The DLEs a recovery of the host restores: the layout's, with the host's own mapping over them. */
export function hostDles(layout: DiskLayout, host: HostRecord): Record<string, string> {
  return { ...layout.dles, ...host.dleMap };
}

/** An encrypted dump's decryption with the keys Lifeboat holds, or the ChainError naming the dump and the missing key. */
function decryptionOf(d: CatalogDump, keys: AmandaKeyHolding): Decryption | undefined {
  const dec = decryptionFor(d, keys);
  if (dec && "refused" in dec) throw new ChainError(dec.refused);
  return dec ?? undefined;
}

/**
 * The restore chains of every DLE of the host, each mapped to its mount point. An encrypted
 * dump Lifeboat cannot decrypt (no key for its config in `keys`) refuses the chain, so no plan
 * is served and nothing is written.
 */
export function restoreChains(catalog: CatalogDump[], host: string, dles: Record<string, string>, at: string | null, keys: AmandaKeyHolding): RestoreChain[] {
  return Object.entries(dles)
    .sort(([, a], [, b]) => a.length - b.length || a.localeCompare(b))
    .map(([dle, mountpoint]) => {
      const chain = selectChain(catalog, host, dle, at ?? undefined);
      return {
        dle,
        mountpoint,
        program: backupProgram(chain.dumps[0]!),
        dumps: chain.dumps.map((d) => {
          const decrypt = decryptionOf(d, keys);
          return { id: d.id, level: d.level, datestamp: d.datestamp, sizeBytes: d.sizeBytes, compression: streamCompression(d), ...(decrypt ? { decrypt } : {}) };
        }),
      };
    });
}

/** Before the machine booted, a dry run takes the captured disks as the targets (same hardware assumed). */
export function capturedAsTargets(layout: DiskLayout): TargetDisk[] {
  return layout.disks.map((d) => ({
    name: d.name,
    path: d.path,
    sizeBytes: d.sizeBytes,
    serial: d.serial,
    wwn: d.wwn,
    model: d.model,
    bus: d.transport,
    byId: d.byId,
    logicalSectorSize: d.logicalSectorSize,
    signatures: ["(dry run: the captured disk itself)"],
    removable: d.removable,
  }));
}

/**
 * The planner `serve` gives the job service: host layout + the disks the agent reported +
 * the catalog's chains + the profile's and job's options → the plan builder.
 */
export function createPlanner(store: Store, self?: string): Planner {
  return async (job: JobRecord, profile: ProfileRecord): Promise<JobPlanResult> => {
    const host = await store.hosts.get(profile.host);
    if (!host) return { ok: false, reason: `profile ${profile.name}: no host named ${profile.host}` };
    const rec = await store.layouts.get(host.name, profile.layoutVersion ?? undefined);
    if (!rec) return { ok: false, reason: `host ${host.name} has no captured layout${profile.layoutVersion ? ` version ${profile.layoutVersion}` : ""}` };
    let layout: DiskLayout;
    let chains: RestoreChain[];
    let catalog: CatalogDump[];
    try {
      layout = parseLayout(rec.document, `host ${host.name} layout v${rec.version}`);
      const dles = hostDles(layout, host);
      catalog = await store.catalog.list(host.amandaConfig ? { amanda: host.amandaConfig } : {});
      chains = restoreChains(catalog, host.name, dles, job.at ?? profile.at, keyHolding(await store.amandaKeys.list()));
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
    const hello = job.hello;
    const endState = job.options.endState ?? profile.options.endState ?? DEFAULT_END_STATE;
    // Mappings are stored as identities; a kernel name saved by an older Lifeboat is not trusted.
    const mapping = storedMappingSchema.safeParse({ ...(profile.options.mapping ?? {}), ...(job.mapping ?? {}) });
    if (!mapping.success) return { ok: false, reason: `job ${job.id}: its disk mapping names disks by kernel name (saved by an older Lifeboat); map them again` };
    const standIns = hello ? { mapping: {}, waits: [] } : dryRunStandIns(layout, (d) => d.name in mapping.data || d.path in mapping.data);
    const r = buildPlan({
      layout,
      targets: hello ? hello.disks : capturedAsTargets(layout),
      chains,
      options: {
        mapping: { ...mapping.data, ...standIns.mapping },
        includeRemovable: profile.options.includeRemovable,
        migration: profile.options.migration,
        bootloader: profile.options.bootloader,
        // The job's choices win over the profile's, like its restore point.
        newUuids: job.options.newUuids ?? profile.options.newUuids,
        grow: job.options.grow ?? profile.options.grow,
        firmware: hello?.hardware.firmware,
        luksKeys: await store.jobs.keyIds(job.id),
        identity: job.kind === "clone" && job.hostname ? { hostname: job.hostname } : undefined,
        // The NICs it reported (none before it booted: a dry run only notes the captured ones).
        nics: hello ? { current: hello.hardware.macs, admin: job.options.nicMap ?? profile.options.nicMap } : undefined,
        endState,
        address: job.options.address ?? profile.options.address,
        // Several servers on one store: dumps only another server holds stream from it (self: this server's name).
        dumpUrls: self === undefined ? undefined : remoteDumpUrls(catalog.filter((d) => chains.some((c) => c.dumps.some((x) => x.id === d.id))), await store.servers.list(), self, Date.now()),
      },
    });
    if (!r.ok) return { ok: false, reason: r.reason };
    const bytesTotal = chains.flatMap((c) => c.dumps).reduce((n, d) => n + (d.sizeBytes ?? 0), 0);
    const decrypts = decryptLines(chains.filter((c) => r.dumps.some((id) => c.dumps.some((d) => d.id === id))));
    return {
      ok: true,
      script: r.script,
      steps: r.steps.length,
      bytesTotal,
      dumps: r.dumps,
      endState,
      detail: {
        mapping: r.mapping,
        notes: hello ? r.notes : ["dry run against the captured disks: the machine has not booted yet", ...r.notes],
        layoutVersion: rec.version,
        network: [`rescue network: ${describeRescueNet(job.options.rescueNet)}`, ...r.network],
        ...(standIns.waits.length ? { waits: standIns.waits } : {}),
        ...(decrypts.length ? { decrypt: decrypts } : {}),
      },
    };
  };
}
