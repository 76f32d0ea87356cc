/** SMBIOS UUIDs as firmware sends them (DHCP option 97, iPXE's ${uuid}) and as hosts are registered. Pure. */

/**
 * SMBIOS stores the first three UUID fields little-endian (SMBIOS 2.6+); PXE option 97 and
 * iPXE's ${uuid} (Debian's 2019 build) give those raw bytes. dmidecode and
 * /sys/class/dmi/id/product_uuid print the canonical form, which is what hosts are registered
 * with: swap the first three fields. All zeros / all ones mean "no UUID" (QEMU without -uuid).
 */
export function canonicalSmbiosUuid(raw: Buffer): string | undefined {
  if (raw.length !== 16 || raw.every((b) => b === 0) || raw.every((b) => b === 0xff)) return undefined;
  const b = Buffer.concat([
    Buffer.from(raw.subarray(0, 4)).reverse(),
    Buffer.from(raw.subarray(4, 6)).reverse(),
    Buffer.from(raw.subarray(6, 8)).reverse(),
    raw.subarray(8, 16),
  ]);
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** iPXE's ${uuid} text (raw SMBIOS bytes printed in order) → canonical form; junk → undefined. */
export function canonicalUuidFromText(text: string | undefined): string | undefined {
  const hex = (text ?? "").toLowerCase().replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/.test(hex)) return undefined;
  return canonicalSmbiosUuid(Buffer.from(hex, "hex"));
}

/**
 * The UUID forms a host may be registered under for a UUID iPXE or option 97 reported: the
 * byte-swapped canonical one (what dmidecode prints) and, for iPXE builds that already swap,
 * the text as sent. Junk and all-zero UUIDs give none.
 */
export function recognisedUuid(text: string | undefined): string[] {
  const canonical = canonicalUuidFromText(text);
  if (!canonical) return [];
  const asSent = text!.toLowerCase();
  return canonical === asSent ? [canonical] : [canonical, asSent];
}
