/**
 * Builds the rescue kernel + initramfs from Debian packages, without installing anything
 * on the host: `apt-get install --download-only` with a private (empty) dpkg status and a
 * private archive dir resolves and fetches the packages and their dependencies, each .deb is
 * unpacked with `dpkg-deb -x` into a staging root, and the initramfs gets the selected
 * modules (with modules.dep), the tools with their shared libraries (closure by the staged
 * dynamic loader's `--list`, i.e. ldd), busybox for everything else, and the agent.
 *
 * Cached and incremental: the downloaded packages and the staging root are kept in the
 * cache dir; the image is rebuilt only when the inputs' hash changes.
 */
import { createHash } from "node:crypto";
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, copyFileSync, chmodSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import {
  MAX_INITRAMFS_BYTES,
  MERGED_DIRS,
  MODULE_TREES,
  REQUIRED_NIC_DRIVERS,
  REQUIRED_STACK_MODULES,
  REQUIRED_STORAGE_DRIVERS,
  UDEV_RULES_LEFT_OUT,
  RESCUE_DIRS,
  RESCUE_PACKAGES,
  RESCUE_TOOLS,
  imagePath,
  missingDrivers,
  moduleClosure,
  moduleName,
  parseModulesDep,
  pickKernelVersion,
  type RescueTool,
} from "./manifest.ts";
import { libraryClosure, readElfInRoot } from "./elf.ts";
import { type NodeType, type Resolution, StageError, brokenLinks, describeMissing, resolveInRoot } from "./stage-root.ts";

export const DEFAULT_CACHE_DIR = "/var/cache/lifeboat/rescue-debs";
const AGENT_DIR = fileURLToPath(new URL("./agent/", import.meta.url));
const AGENT_FILES = ["init", "lib.sh", "steps.sh", "udhcpc.sh"] as const;
const BUILDER_FILES = [import.meta.url, ...["./manifest.ts", "./elf.ts", "./stage-root.ts"].map((f) => new URL(f, import.meta.url).href)].map((u) => fileURLToPath(u));

export interface BuildOptions {
  cacheDir: string;
  outDir: string;
  /** Public keys put into the image for remote help (dropbear); from config adminSshKeys. */
  sshKeys: readonly string[];
  /** Re-run apt even when the cache holds a complete package set. */
  refresh?: boolean;
  progress: (line: string) => void;
}

export interface ImageInfo {
  kernelVersion: string;
  builtAt: string;
  inputHash: string;
  compression: "zstd";
  sizes: { vmlinuz: number; initramfs: number; initramfsUncompressed: number };
  packages: string[];
  tools: Record<string, string>;
  drivers: { nic: string[]; storage: string[]; modules: number };
  sshKeys: number;
}

export interface BuildResult {
  info: ImageInfo;
  rebuilt: boolean;
  outDir: string;
}

export class BuildError extends Error {}

async function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  const r = await execa(cmd, args, { reject: false, cwd: opts.cwd, env: { LC_ALL: "C", ...opts.env }, all: true });
  if (r.failed) {
    const why = r.code === "ENOENT" ? "not found on PATH" : `exit ${r.exitCode}: ${String(r.all ?? "").trim().split("\n").slice(-3).join(" | ")}`;
    throw new BuildError(`${cmd} ${args.slice(0, 3).join(" ")}…: ${why}`);
  }
  return r.stdout;
}

/** Step 1: the .deb files, reused from the cache when the package list is unchanged. */
async function fetchPackages(opts: BuildOptions): Promise<string[]> {
  const archives = join(opts.cacheDir, "archives");
  const marker = join(opts.cacheDir, "packages.json");
  const listHash = sha256(RESCUE_PACKAGES.join("\n"));
  const debsNow = () => readdirSync(archives).filter((f) => f.endsWith(".deb")).sort();
  if (!opts.refresh && existsSync(marker)) {
    const m = JSON.parse(readFileSync(marker, "utf8")) as { listHash: string; debs: string[] };
    if (m.listHash === listHash && m.debs.every((d) => existsSync(join(archives, d)))) {
      opts.progress(`packages: ${m.debs.length} cached in ${archives}`);
      return m.debs;
    }
  }
  mkdirSync(join(archives, "partial"), { recursive: true });
  const status = join(opts.cacheDir, "empty-dpkg-status");
  writeFileSync(status, "");
  // A private status file makes apt resolve every dependency as if nothing were installed;
  // a private archive dir keeps the host's cache and dpkg state untouched.
  const aptOpts = ["-o", `Dir::State::status=${status}`, "-o", `Dir::Cache::archives=${archives}`, "-o", "Debug::NoLocking=1"];
  opts.progress(`packages: apt-get install --download-only ${RESCUE_PACKAGES.length} packages and their dependencies into ${archives}`);
  await run("apt-get", ["install", "-y", "-q", "--download-only", "--no-install-recommends", ...aptOpts, ...RESCUE_PACKAGES]);
  await run("apt-get", ["autoclean", "-q", ...aptOpts]);
  const debs = debsNow();
  writeFileSync(marker, JSON.stringify({ listHash, debs }, null, 1));
  opts.progress(`packages: ${debs.length} .deb files`);
  return debs;
}

/** Step 2: the packages unpacked into a staging root (kept per package set), with modules.dep. */
async function stagePackages(opts: BuildOptions, debs: string[]): Promise<{ stage: string; kernel: string }> {
  const key = sha256(debs.join("\n")).slice(0, 16);
  const stage = join(opts.cacheDir, `stage-${key}`);
  const done = join(stage, ".lifeboat-staged");
  if (!existsSync(done)) {
    for (const old of readdirSync(opts.cacheDir)) if (old.startsWith("stage-")) rmSync(join(opts.cacheDir, old), { recursive: true, force: true });
    mkdirSync(stage, { recursive: true });
    let i = 0;
    for (const deb of debs) {
      if (++i % 40 === 0 || i === debs.length) opts.progress(`unpack: ${i}/${debs.length} packages`);
      await run("dpkg-deb", ["-x", join(opts.cacheDir, "archives", deb), stage]);
    }
    const k = pickKernelVersion(readdirSync(stagedModules(stage)));
    opts.progress(`depmod: ${k}`);
    await run("depmod", ["-b", stage, k]);
    writeFileSync(done, new Date().toISOString());
  }
  return { stage, kernel: pickKernelVersion(readdirSync(stagedModules(stage))) };
}

/** The stage's lib/modules, found inside the stage. */
function stagedModules(stage: string): string {
  const r = resolveInRoot(stage, "lib/modules", { mergedUsr: MERGED_DIRS });
  if (!r.found || r.type !== "dir") throw new BuildError("no lib/modules in the staged packages (is linux-image-amd64 in RESCUE_PACKAGES?)");
  return join(stage, r.path);
}

function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Copies staged paths into the image tree (usr-merged): the links on the way as they are, then what they lead to. */
export class TreeBuilder {
  private readonly added = new Set<string>();
  /** Starts an empty image tree: the usr-merged top level and the directories the agent uses. */
  constructor(
    readonly stage: string,
    readonly tree: string,
  ) {
    for (const d of ["usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "dev", "proc", "sys", "run", "tmp", "mnt/target", "root/.ssh", "etc/ssl/certs", "var/log", "lifeboat"])
      mkdirSync(join(tree, d), { recursive: true });
    for (const d of MERGED_DIRS) symlinkSync(`usr/${d}`, join(tree, d));
    symlinkSync("/run", join(tree, "var/run"));
  }

  /** A staged path resolved inside the stage (never through the host), or a BuildError naming what is missing. */
  resolve(stagePath: string): Extract<Resolution, { found: true }> {
    const r = resolveInRoot(this.stage, stagePath, { mergedUsr: MERGED_DIRS });
    if (!r.found) throw new BuildError(`${describeMissing(this.stage, stagePath, r)} in the staged packages`);
    return r;
  }

  /** The host path of a staged file or directory, found inside the stage. */
  staged(stagePath: string): string {
    return join(this.stage, this.resolve(stagePath).path);
  }

  add(stagePath: string): void {
    const r = this.resolve(stagePath);
    for (const link of r.links) this.copy(link, "link");
    this.copy(r.path, r.type);
  }

  /** Copies one link-free staged path to its place in the tree (a directory with all it holds). */
  private copy(path: string, type: NodeType): void {
    if (this.added.has(path)) return;
    this.added.add(path);
    const src = join(this.stage, path);
    const dest = this.place(path, type);
    if (type === "link") symlinkSync(readlinkSync(src), dest);
    else if (type === "dir") {
      mkdirSync(dest, { recursive: true });
      for (const e of readdirSync(src)) this.add(posix.join(path, e));
    } else if (type === "file") {
      copyFileSync(src, dest);
      chmodSync(dest, lstatSync(src).mode & 0o7777);
    } else throw new BuildError(`${path}: neither a file, a directory nor a link in the staged packages`);
  }

  /**
   * Where a staged path goes in the tree, its parent directories made; refused when another
   * staged path already took that place (bin/x and usr/bin/x both shipped) or when the way
   * there passes a link in the tree (which could lead anywhere, the host included).
   */
  private place(path: string, type: NodeType): string {
    const rel = imagePath(path);
    const names = rel.split("/");
    for (let i = 1; i < names.length; i++) {
      const dir = join(this.tree, ...names.slice(0, i));
      const st = lstatSync(dir, { throwIfNoEntry: false });
      if (!st) mkdirSync(dir);
      else if (!st.isDirectory()) throw new BuildError(`${path}: ${names.slice(0, i).join("/")} is not a directory in the image`);
    }
    const dest = join(this.tree, rel);
    const there = lstatSync(dest, { throwIfNoEntry: false });
    if (there && !(type === "dir" && there.isDirectory()))
      throw new BuildError(`${path}: ${rel} is already in the image from another staged path (both halves of a merged /usr ship it)`);
    return dest;
  }

  /** Adds an ELF program or library with its interpreter and its shared-library closure (found in the stage only). */
  addProgram(stagePath: string): void {
    this.add(stagePath);
    const { interp, libs } = libraryClosure(this.stage, stagePath, { mergedUsr: MERGED_DIRS });
    if (interp) this.add(interp);
    for (const lib of libs) this.add(lib);
  }
}

function inputHash(debs: string[], sshKeys: readonly string[]): string {
  const h = createHash("sha256");
  h.update(debs.join("\n"));
  for (const f of [...AGENT_FILES.map((a) => join(AGENT_DIR, a)), ...BUILDER_FILES]) h.update(readFileSync(f));
  h.update(sshKeys.join("\n"));
  return h.digest("hex");
}

export function readImageInfo(outDir: string): ImageInfo | undefined {
  const p = join(outDir, "info.json");
  return existsSync(p) ? (JSON.parse(readFileSync(p, "utf8")) as ImageInfo) : undefined;
}

export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  // The CLI runs under umask 077, but the image is for others to read: the server's user
  // serves what a root build wrote, and cpio keeps the tree's modes for the booted system.
  const umask = process.umask(0o022);
  try {
    return await build(opts);
  } catch (err) {
    // The stage is not what the image needs (a link loop, a malformed ELF): a build error too.
    if (err instanceof StageError) throw new BuildError(err.message);
    throw err;
  } finally {
    process.umask(umask);
  }
}

async function build(opts: BuildOptions): Promise<BuildResult> {
  mkdirSync(opts.cacheDir, { recursive: true });
  mkdirSync(opts.outDir, { recursive: true });
  const debs = await fetchPackages(opts);
  const { stage, kernel } = await stagePackages(opts, debs);
  const hash = inputHash(debs, opts.sshKeys);
  const previous = readImageInfo(opts.outDir);
  if (previous?.inputHash === hash && existsSync(join(opts.outDir, "vmlinuz")) && existsSync(join(opts.outDir, "initramfs"))) {
    opts.progress(`image: up to date (kernel ${kernel})`);
    printSizes(opts, previous);
    return { info: previous, rebuilt: false, outDir: opts.outDir };
  }

  const tree = join(opts.cacheDir, "tree");
  rmSync(tree, { recursive: true, force: true });
  const t = new TreeBuilder(stage, tree);

  opts.progress(`tools: ${RESCUE_TOOLS.length} programs with their libraries`);
  addTools(t, RESCUE_TOOLS);
  // udev's helpers are run by its rules, not linked: add them with their libraries.
  for (const extra of ["lib/udev/ata_id", "lib/udev/scsi_id"]) t.addProgram(extra);
  // glibc loads libgcc_s with dlopen when a thread exits (cryptsetup's argon2 threads): no
  // loader listing shows it, and without it luksFormat aborts ("libgcc_s.so.1 must be installed").
  t.addProgram("lib/x86_64-linux-gnu/libgcc_s.so.1");
  for (const d of RESCUE_DIRS) t.add(d);
  // udev must not assemble MD arrays or activate LVM on its own: that would hold the disks
  // the plan is about to wipe.
  for (const r of UDEV_RULES_LEFT_OUT) rmSync(join(tree, "usr/lib/udev/rules.d", r), { force: true });

  // busybox for everything else (sh, udhcpc, ip, awk, sed…); real tools win over applets.
  const applets = (await run(t.staged("bin/busybox"), ["--list-full"])).split("\n").filter(Boolean);
  for (const a of applets) {
    const name = posix.basename(a);
    if (["usr/bin", "usr/sbin"].some((d) => lstatSync(join(tree, d, name), { throwIfNoEntry: false }))) continue;
    const dest = join(tree, imagePath(a));
    if (lstatSync(dest, { throwIfNoEntry: false })) continue;
    mkdirSync(dirname(dest), { recursive: true });
    symlinkSync("/usr/bin/busybox", dest);
  }
  // /bin/sh is dash: busybox's sh would run its own applets (tar, mount…) before the real tools.
  rmSync(join(tree, "usr/bin/sh"), { force: true });
  symlinkSync("dash", join(tree, "usr/bin/sh"));

  opts.progress("modules: selecting drivers and their dependencies");
  const modRoot = `lib/modules/${kernel}`;
  const deps = parseModulesDep(readFileSync(t.staged(`${modRoot}/modules.dep`), "utf8"));
  const modules = moduleClosure(deps, MODULE_TREES);
  for (const m of modules) t.add(posix.join(modRoot, m));
  for (const f of ["modules.builtin", "modules.builtin.modinfo", "modules.order"]) t.add(posix.join(modRoot, f));
  await run("depmod", ["-b", tree, kernel]);
  const builtin = readFileSync(t.staged(`${modRoot}/modules.builtin`), "utf8").split("\n").filter(Boolean);
  const missing = [
    ...missingDrivers(REQUIRED_NIC_DRIVERS, modules, builtin),
    ...missingDrivers(REQUIRED_STORAGE_DRIVERS, modules, builtin),
    ...missingDrivers(REQUIRED_STACK_MODULES, modules, builtin),
  ];
  if (missing.length) throw new BuildError(`required kernel modules missing from ${kernel}: ${missing.join(", ")}`);
  const names = modules.map(moduleName);
  const nic = names.filter((n) => modules.some((m) => moduleName(m) === n && /\/drivers\/net\//.test(m))).sort();
  const storage = modules
    .filter((m) => /\/drivers\/(ata|nvme|scsi|block|usb\/storage|virtio)\//.test(m))
    .map(moduleName)
    .sort();
  const lost = previous ? [...previous.drivers.nic, ...previous.drivers.storage].filter((d) => !nic.includes(d) && !storage.includes(d)) : [];
  if (lost.length) throw new BuildError(`driver coverage dropped since the last build: ${lost.join(", ")}`);

  // CA bundle (what update-ca-certificates would write), users, the agent.
  const certDir = t.staged("usr/share/ca-certificates/mozilla");
  const bundle = readdirSync(certDir).sort().map((c) => readFileSync(join(certDir, c), "utf8")).join("");
  writeFileSync(join(tree, "etc/ssl/certs/ca-certificates.crt"), bundle);
  writeFileSync(join(tree, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(tree, "etc/group"), "root:x:0:\n");
  writeFileSync(join(tree, "etc/shells"), "/bin/sh\n");
  writeFileSync(join(tree, "root/.ssh/authorized_keys"), opts.sshKeys.map((k) => `${k.trim()}\n`).join(""), { mode: 0o600 });
  chmodSync(join(tree, "root/.ssh"), 0o700);
  cpSync(join(AGENT_DIR, "init"), join(tree, "init"));
  chmodSync(join(tree, "init"), 0o755);
  for (const f of ["lib.sh", "steps.sh", "udhcpc.sh"]) cpSync(join(AGENT_DIR, f), join(tree, "lifeboat", f));

  opts.progress("tools: recording versions");
  const tools: Record<string, string> = {};
  for (const tool of RESCUE_TOOLS) tools[tool.name] = await toolVersion(tree, tool);

  // Every link in the image must lead somewhere inside it, as the booted system resolves it.
  const broken = brokenLinks(tree);
  if (broken.length) throw new BuildError(`${broken.length} link(s) in the image lead nowhere inside it: ${broken.slice(0, 5).join("; ")}`);

  opts.progress("initramfs: cpio | zstd");
  const tmpOut = join(opts.outDir, "initramfs.tmp");
  await run("sh", ["-c", `cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | zstd -q -T0 -6 -f -o "$2"`, "sh", tree, tmpOut]);
  const initramfsBytes = statSync(tmpOut).size;
  if (initramfsBytes > MAX_INITRAMFS_BYTES)
    throw new BuildError(`initramfs is ${mib(initramfsBytes)} compressed, over the ${mib(MAX_INITRAMFS_BYTES)} limit real firmware boots`);
  const uncompressed = Number((await run("du", ["-sb", tree])).split(/\s/)[0]);
  rmSync(tree, { recursive: true, force: true });
  renameSync(tmpOut, join(opts.outDir, "initramfs"));
  copyFileSync(t.staged(`boot/vmlinuz-${kernel}`), join(opts.outDir, "vmlinuz"));
  const info: ImageInfo = {
    kernelVersion: kernel,
    builtAt: new Date().toISOString(),
    inputHash: hash,
    compression: "zstd",
    sizes: { vmlinuz: statSync(join(opts.outDir, "vmlinuz")).size, initramfs: initramfsBytes, initramfsUncompressed: uncompressed },
    packages: debs,
    tools,
    drivers: { nic, storage, modules: modules.length },
    sshKeys: opts.sshKeys.length,
  };
  writeFileSync(join(opts.outDir, "info.json"), `${JSON.stringify(info, null, 2)}\n`);
  opts.progress(`drivers (NIC, ${nic.length}): ${nic.join(" ")}`);
  opts.progress(`drivers (storage, ${storage.length}): ${storage.join(" ")}`);
  printSizes(opts, info);
  return { info, rebuilt: true, outDir: opts.outDir };
}

/**
 * Adds each tool (its path resolved inside the stage: links, merged /usr) with its libraries
 * and the other names the agent calls it by. A missing tool fails the build, naming the link
 * that led nowhere.
 */
export function addTools(t: TreeBuilder, tools: readonly RescueTool[]): void {
  for (const tool of tools) {
    const r = resolveInRoot(t.stage, tool.path, { mergedUsr: MERGED_DIRS });
    if (!r.found) throw new BuildError(`required tool ${tool.name} is missing from the staged packages: ${describeMissing(t.stage, tool.path, r)}`);
    t.addProgram(tool.path);
    for (const alias of tool.aliases ?? []) t.add(posix.join(posix.dirname(tool.path), alias));
  }
}

/**
 * Runs a tool from the assembled tree with the tree's own loader and libraries (no chroot,
 * no root needed) and keeps its version line. A tool that cannot start there fails the build.
 */
export async function toolVersion(tree: string, tool: RescueTool): Promise<string> {
  const program = imagePath(tool.path);
  const { path: bin, info } = readElfInRoot(tree, program, {});
  if (!info) return "(script)";
  const { interp, libs } = libraryClosure(tree, program);
  const opts = { reject: false, all: true, env: { LC_ALL: "C" }, timeout: 10_000 } as const;
  let r;
  if (!interp) r = await execa(join(tree, bin), tool.versionArgs, opts);
  else {
    const inTree = (p: string) => join(tree, readElfInRoot(tree, p, {}).path);
    // Every directory the closure found a library in, as link-free paths in the tree: the
    // loader looks there before its built-in (host) paths, and finds everything there.
    const dirs = [...new Set(libs.map((l) => posix.dirname(inTree(l))))];
    r = await execa(inTree(interp), ["--library-path", dirs.join(":"), join(tree, bin), ...tool.versionArgs], opts);
  }
  const out = String(r.all ?? "").replaceAll(tree, "");
  if (r.exitCode === undefined || r.exitCode === 126 || r.exitCode === 127 || /error while loading shared libraries/.test(out))
    throw new BuildError(`${tool.name} (${program}) does not start in the image: ${(out.trim() || (r.message ?? "")).split("\n")[0]}`);
  return versionLine(out);
}

/** The line of a tool's output that names its version. */
export function versionLine(out: string): string {
  const lines = out.split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /version/i.test(l)) ?? lines.find((l) => /\d+\.\d+/.test(l)) ?? lines[0] ?? "(unknown)";
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function printSizes(opts: BuildOptions, info: ImageInfo): void {
  opts.progress(
    `image: ${opts.outDir}: vmlinuz ${mib(info.sizes.vmlinuz)}, initramfs ${mib(info.sizes.initramfs)} (${mib(info.sizes.initramfsUncompressed)} unpacked), kernel ${info.kernelVersion}`,
  );
}
