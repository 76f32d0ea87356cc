/**
 * Who is asking: firmware identification from a DHCP request, and the one table that maps
 * a client's firmware to the boot loader it gets. Pure; unit-tested in test/unit/dhcp.
 */
import { type DhcpPacket, Opt, clientArch, macOf, optString, subOptions, userClasses } from "./codec.ts";
import { canonicalSmbiosUuid } from "../smbios-uuid.ts";
import type { DhcpMode, UefiLoader } from "../config/schema.ts";

/** A network-booting machine as seen in one DHCP request. */
export interface Machine {
  mac: string;
  /** Client architecture (RFC 4578 option 93, else the "Arch:NNNNN" in option 60). */
  arch: number | undefined;
  /** Option 60 as sent ("PXEClient:Arch:00000:UNDI:002001", "HTTPClient:…", "udhcp 1.35.0"). */
  vendorClass: string | undefined;
  /** A PXE ROM (option 60 starts with PXEClient). */
  pxe: boolean;
  /** UEFI HTTP boot (option 60 starts with HTTPClient). */
  http: boolean;
  /** Already iPXE: user class "iPXE" (option 77) or iPXE's encapsulated option 175. */
  ipxe: boolean;
  /** Option 97 as sent (17 bytes, type 0 + GUID), echoed back in proxy replies. */
  uuidOption: Buffer | undefined;
  /** The SMBIOS UUID in canonical (dmidecode) form, when sent and not all zeros. */
  smbiosUuid: string | undefined;
}

/** Parses "PXEClient:Arch:00007:UNDI:003000" → 7. */
function archFromVendorClass(vc: string | undefined): number | undefined {
  const m = /^(?:PXE|HTTP)Client:Arch:(\d{5})/.exec(vc ?? "");
  return m ? Number(m[1]) : undefined;
}

export function identify(p: DhcpPacket): Machine {
  const vendorClass = optString(p, Opt.VENDOR_CLASS);
  const a93 = clientArch(p);
  const a60 = archFromVendorClass(vendorClass);
  // Clients that lie: some UEFI boards send arch 0 in option 93 while option 60 names their
  // EFI arch (a BIOS ROM never claims EFI anywhere), so a non-zero arch from either wins.
  const arch = a93 === 0 && a60 !== undefined && a60 !== 0 ? a60 : (a93 ?? a60);
  const uuidOption = p.options.get(Opt.CLIENT_UUID);
  const uuidOk = uuidOption?.length === 17 && uuidOption[0] === 0;
  return {
    mac: macOf(p),
    arch,
    vendorClass,
    pxe: vendorClass?.startsWith("PXEClient") === true,
    http: vendorClass?.startsWith("HTTPClient") === true,
    ipxe: userClasses(p).includes("iPXE") || subOptions(p.options.get(Opt.IPXE_ENCAP)) !== undefined,
    uuidOption,
    smbiosUuid: uuidOk ? canonicalSmbiosUuid(uuidOption.subarray(1)) : undefined,
  };
}

export interface LoaderRow {
  firmware: string;
  /** Boot loader file name, in the TFTP root and under /boot/loaders/ over HTTP. */
  loader: string;
  via: "tftp" | "http";
}

/**
 * Boot loader by client architecture (RFC 4578 + IANA "Processor Architecture Types").
 * snponly.efi rather than ipxe.efi for UEFI: it drives the NIC through the firmware's own
 * SNP, so it works where ipxe.efi's native drivers hang (and was 4 s faster in the lab).
 * arm64 rows need an arm64 iPXE build in the TFTP root (Debian's amd64 `ipxe` has none):
 * without the file the client gets no answer and the miss is logged.
 */
export const BOOT_LOADERS: Readonly<Record<number, LoaderRow>> = {
  0: { firmware: "x86 BIOS", loader: "undionly.kpxe", via: "tftp" },
  7: { firmware: "x64 UEFI", loader: "snponly.efi", via: "tftp" },
  // 9 is "EFI BC" in RFC 4578 but every x64 firmware that sends it means x64 (edk2, Hyper-V).
  9: { firmware: "x64 UEFI", loader: "snponly.efi", via: "tftp" },
  11: { firmware: "arm64 UEFI", loader: "arm64/snponly.efi", via: "tftp" },
  16: { firmware: "x64 UEFI HTTP boot", loader: "snponly.efi", via: "http" },
  19: { firmware: "arm64 UEFI HTTP boot", loader: "arm64/snponly.efi", via: "http" },
};


/** Debian's Microsoft-signed shim; it loads SIGNED_GRUB from the same TFTP directory (shim's DEFAULT_LOADER). */
export const SHIM_LOADER = "shimx64.efi";
/** Debian's signed network GRUB (grubnetx64.efi.signed) under the name shim asks for. */
export const SIGNED_GRUB = "grubx64.efi";

/**
 * The signed chain, for dhcp.uefiLoader "shim": the x64 UEFI PXE rows only. HTTP boot (arch 16)
 * stays iPXE: Debian 12's signed network GRUB has TFTP but no HTTP module, so it could not
 * fetch its configuration or the kernel from an HTTP-booted start.
 */
export const SIGNED_BOOT_LOADERS: Readonly<Record<number, LoaderRow>> = {
  7: { firmware: "x64 UEFI (shim → GRUB)", loader: SHIM_LOADER, via: "tftp" },
  9: { firmware: "x64 UEFI (shim → GRUB)", loader: SHIM_LOADER, via: "tftp" },
};

/**
 * dhcp.uefiLoader for the DHCP mode: "auto" is iPXE in proxy mode, because Debian 12's signed
 * network GRUB takes its TFTP server from the LAN server's DHCP answer, never from a proxy
 * offer (under OVMF it never asked Lifeboat for grub/grub.cfg); the config refuses "shim" there.
 */
export function effectiveUefiLoader(mode: DhcpMode, loader: UefiLoader): UefiLoader {
  return mode === "proxy" && loader === "auto" ? "ipxe" : loader;
}

export type BootChoice =
  | { boot: true; firmware: string; file: string; via: "tftp" | "http" | "script"; loader?: string }
  | { boot: false; reason: string };

/**
 * What a network-booting client is told to load. iPXE (whatever the firmware) gets the HTTP
 * boot script, so it is never chain-loaded into itself; everyone else gets the iPXE build
 * for its firmware, or with `uefiLoader` "shim" (or "auto" and both signed files present) an
 * x64 UEFI PXE client gets Debian's signed shim (SIGNED_BOOT_LOADERS). `hasLoader` says
 * whether a loader file exists (the only outside fact).
 */
export function chooseBoot(
  m: Machine,
  httpBase: string,
  hasLoader: (name: string) => boolean,
  uefiLoader: UefiLoader,
): BootChoice {
  if (m.ipxe) return { boot: true, firmware: "iPXE", file: `${httpBase}/boot.ipxe`, via: "script" };
  if (m.arch === undefined) return { boot: false, reason: "no client architecture (option 93/60)" };
  const signed = uefiLoader === "shim" || (uefiLoader === "auto" && hasLoader(SHIM_LOADER) && hasLoader(SIGNED_GRUB));
  const row = (signed && !m.http ? SIGNED_BOOT_LOADERS[m.arch] : undefined) ?? BOOT_LOADERS[m.arch];
  if (!row) return { boot: false, reason: `unknown client architecture ${m.arch}` };
  if (m.http && row.via !== "http") return { boot: false, reason: `HTTPClient with non-HTTP architecture ${m.arch}` };
  if (!hasLoader(row.loader)) return { boot: false, reason: `boot loader ${row.loader} for ${row.firmware} is missing` };
  return row.via === "http"
    ? { boot: true, firmware: row.firmware, file: `${httpBase}/boot/loaders/${row.loader}`, via: "http", loader: row.loader }
    : { boot: true, firmware: row.firmware, file: row.loader, via: "tftp", loader: row.loader };
}
