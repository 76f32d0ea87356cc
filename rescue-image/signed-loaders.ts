/**
 * Debian's signed UEFI boot chain for Secure Boot machines, taken from the packages at build
 * time like the rescue kernel (apt-get download into the cache, dpkg-deb -x; nothing is
 * installed on this host, where shim-signed's maintainer scripts would touch its own boot
 * loader): `shim-signed`'s Microsoft-signed shim and `grub-efi-amd64-signed`'s network GRUB,
 * written into the image directory next to vmlinuz (Debian's signed kernel) and initramfs.
 * `lifeboat serve` copies them into the TFTP root (server/tftp/loaders.ts).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { SHIM_LOADER, SIGNED_GRUB } from "../server/dhcp/firmware.ts";

/** Debian's signed GRUB for CDs and USB sticks, in the image directory (never on the TFTP root). */
export const SIGNED_CD_GRUB = "grubcdx64.efi";

/** Each signed file: its package, its path in the package, its name in the image directory and TFTP root. */
export const SIGNED_CHAIN = [
  { pkg: "shim-signed", path: "usr/lib/shim/shimx64.efi.signed", name: SHIM_LOADER },
  { pkg: "grub-efi-amd64-signed", path: "usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed", name: SIGNED_GRUB },
  // The CD GRUB: finds the medium by /.disk/info, reads /boot/grub/grub.cfg there (rescue-image/iso.ts).
  { pkg: "grub-efi-amd64-signed", path: "usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed", name: SIGNED_CD_GRUB },
] as const;


export class SignedLoaderError extends Error {}

export interface SignedLoaders {
  /** The package files the loaders came from, e.g. shim-signed_1.51~1+deb12u1+16.1-2~deb12u1_amd64.deb */
  debs: string[];
  files: string[];
  /** Where the packages are unpacked (their other files: the disk GRUB grubx64.efi.signed, for tests). */
  unpacked: string;
}

async function run(cmd: string, args: string[], cwd?: string): Promise<void> {
  const r = await execa(cmd, args, { reject: false, cwd, all: true, env: { LC_ALL: "C" } });
  if (r.failed) {
    const why = r.code === "ENOENT" ? "not found on PATH" : `exit ${r.exitCode}: ${String(r.all ?? "").trim().split("\n").slice(-2).join(" | ")}`;
    throw new SignedLoaderError(`${cmd} ${args.join(" ")}: ${why}`);
  }
}

/**
 * Downloads the current shim-signed and grub-efi-amd64-signed into `<cacheDir>/signed-loaders`
 * (again only when `refresh` or a package is missing) and copies the two signed files into `outDir`.
 */
export async function fetchSignedLoaders(o: { cacheDir: string; outDir: string; refresh?: boolean; progress: (line: string) => void }): Promise<SignedLoaders> {
  const dir = join(o.cacheDir, "signed-loaders");
  const debsDir = join(dir, "debs");
  mkdirSync(debsDir, { recursive: true });
  const debOf = (pkg: string) => readdirSync(debsDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  const pkgs = [...new Set(SIGNED_CHAIN.map((c) => c.pkg))];
  if (o.refresh || pkgs.some((p) => !debOf(p))) {
    o.progress(`signed loaders: apt-get download ${pkgs.join(" ")}`);
    for (const f of readdirSync(debsDir)) rmSync(join(debsDir, f), { force: true });
    await run("apt-get", ["-q", "-o", "DPkg::Lock::Timeout=600", "download", ...pkgs], debsDir);
  }
  const x = join(dir, "x");
  rmSync(x, { recursive: true, force: true });
  const debs: string[] = [];
  for (const p of pkgs) {
    const deb = debOf(p);
    if (!deb) throw new SignedLoaderError(`apt-get download ${p} left no ${p}_*.deb in ${debsDir}`);
    await run("dpkg-deb", ["-x", join(debsDir, deb), x]);
    debs.push(deb);
  }
  mkdirSync(o.outDir, { recursive: true });
  for (const c of SIGNED_CHAIN) {
    const src = join(x, c.path);
    if (!existsSync(src)) throw new SignedLoaderError(`${c.pkg} has no ${c.path} (has Debian moved it?)`);
    copyFileSync(src, join(o.outDir, c.name));
  }
  writeFileSync(join(o.outDir, "signed-loaders.json"), `${JSON.stringify({ debs }, null, 1)}\n`);
  o.progress(`signed loaders: ${SIGNED_CHAIN.map((c) => c.name).join(", ")} from ${debs.join(", ")}`);
  return { debs, files: SIGNED_CHAIN.map((c) => c.name), unpacked: x };
}
