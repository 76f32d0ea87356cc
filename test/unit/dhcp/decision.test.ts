import { describe, expect, it } from "vitest";
import { MessageType, Opt, clientArch, ipBytes, optIp, optString, subOptions } from "../../../server/dhcp/codec.ts";
import { type DhcpEnv, fullAnswer, proxyAnswer, reservedSilence } from "../../../server/dhcp/decision.ts";
import { BOOT_LOADERS, SHIM_LOADER, SIGNED_GRUB, chooseBoot, effectiveUefiLoader, identify } from "../../../server/dhcp/firmware.ts";
import { configSchema } from "../../../server/config/schema.ts";
import { canonicalSmbiosUuid, canonicalUuidFromText, recognisedUuid } from "../../../server/smbios-uuid.ts";
import { arch, fixture, pxeDiscover, request } from "./packets.ts";

/** A TFTP root with iPXE's loaders only (no image build yet: no signed chain). */
const IPXE_ROOT = ["undionly.kpxe", "snponly.efi", "ipxe.efi"];
const env: DhcpEnv = { serverIp: "10.231.7.1", httpBase: "http://10.231.7.1:8080", hasLoader: (n) => IPXE_ROOT.includes(n), uefiLoader: "auto" };
const sent = (a: ReturnType<typeof proxyAnswer>) => {
  if (!a.send) throw new Error(`expected an answer, got: ${a.reason}`);
  return a;
};

describe("boot loader by firmware (the one table)", () => {
  const cases: Array<[string, number, string | undefined, string | undefined]> = [
    ["x86 BIOS PXE ROM", 0, "PXEClient:Arch:00000:UNDI:002001", "undionly.kpxe"],
    ["x64 UEFI", 7, "PXEClient:Arch:00007:UNDI:003000", "snponly.efi"],
    ["x64 UEFI (EFI BC)", 9, "PXEClient:Arch:00009:UNDI:003000", "snponly.efi"],
    ["x64 UEFI HTTP boot", 16, "HTTPClient:Arch:00016:UNDI:003000", "http://10.231.7.1:8080/boot/loaders/snponly.efi"],
    ["arm64 UEFI without an arm64 loader", 11, "PXEClient:Arch:00011:UNDI:003000", undefined],
    ["EFI IA32 (no Debian loader)", 6, "PXEClient:Arch:00006:UNDI:003000", undefined],
    ["unknown arch 99", 99, "PXEClient:Arch:00099:UNDI:003000", undefined],
  ];
  for (const [what, a, vc, file] of cases) {
    it(`${what} → ${file ?? "no answer"}`, () => {
      const m = identify(request(MessageType.DISCOVER, { [Opt.CLIENT_ARCH]: arch(a), ...(vc ? { [Opt.VENDOR_CLASS]: vc } : {}) }));
      const c = chooseBoot(m, env.httpBase, env.hasLoader, env.uefiLoader);
      if (file) expect(c).toMatchObject({ boot: true, file });
      else expect(c).toMatchObject({ boot: false, reason: expect.stringMatching(a === 11 ? /arm64\/snponly.efi .* missing/ : /unknown client architecture/) });
    });
  }

  it("arm64 is answered once its loader is in the TFTP root", () => {
    const m = identify(pxeDiscover(11));
    expect(chooseBoot(m, env.httpBase, () => true, env.uefiLoader)).toMatchObject({ boot: true, file: "arm64/snponly.efi", via: "tftp" });
  });

  it("any iPXE (user class or only option 175) gets the HTTP script, never iPXE again", () => {
    for (const extra of [{ [Opt.USER_CLASS]: "iPXE" }, { [Opt.IPXE_ENCAP]: Buffer.from([0xb1, 5, 1, 0x1a, 0xf4, 0x10, 0, 0xff]) }]) {
      for (const a of [0, 7, 9]) {
        const c = chooseBoot(identify(pxeDiscover(a, extra)), env.httpBase, env.hasLoader, env.uefiLoader);
        expect(c).toMatchObject({ boot: true, file: "http://10.231.7.1:8080/boot.ipxe", via: "script" });
      }
    }
  });

  it("the real captures land on the right rows", () => {
    const pick = (f: Parameters<typeof fixture>[0]) => chooseBoot(identify(fixture(f)), env.httpBase, env.hasLoader, env.uefiLoader);
    expect(pick("bios-ipxe-rom-discover")).toMatchObject({ via: "script" });
    expect(pick("uefi-pxe-discover")).toMatchObject({ file: "snponly.efi" });
    expect(pick("uefi-httpboot-discover")).toMatchObject({ via: "http" });
  });

  it("a client that lies (arch 0 in option 93, EFI in option 60) is taken as EFI", () => {
    const m = identify(request(1, { [Opt.CLIENT_ARCH]: arch(0), [Opt.VENDOR_CLASS]: "PXEClient:Arch:00007:UNDI:003016" }));
    expect(m.arch).toBe(7);
    expect(identify(request(1, { [Opt.VENDOR_CLASS]: "PXEClient:Arch:00009:UNDI:003016" })).arch).toBe(9);
  });

  it("every table row names a loader and a transport", () => {
    for (const row of Object.values(BOOT_LOADERS)) expect(row.loader).toMatch(/\.(kpxe|efi)$/);
  });
});

describe("dhcp.uefiLoader: the signed chain for x64 UEFI PXE", () => {
  const signedRoot = (n: string) => [...IPXE_ROOT, SHIM_LOADER, SIGNED_GRUB].includes(n);
  const shim = { ...env, hasLoader: signedRoot, uefiLoader: "shim" as const };

  it("auto (the default): shim once shimx64.efi and grubx64.efi are in the TFTP root, iPXE while either is missing; ipxe: always iPXE", () => {
    const m = identify(pxeDiscover(7));
    expect(chooseBoot(m, env.httpBase, signedRoot, "auto")).toMatchObject({ boot: true, file: SHIM_LOADER });
    expect(chooseBoot(m, env.httpBase, (n) => n !== SIGNED_GRUB && signedRoot(n), "auto")).toMatchObject({ boot: true, file: "snponly.efi" });
    expect(chooseBoot(m, env.httpBase, env.hasLoader, "auto")).toMatchObject({ boot: true, file: "snponly.efi" });
    expect(chooseBoot(m, env.httpBase, signedRoot, "ipxe")).toMatchObject({ boot: true, file: "snponly.efi" });
    expect(configSchema.parse({}).dhcp.uefiLoader).toBe("auto");
    expect(() => configSchema.parse({ dhcp: { uefiLoader: "grub" } })).toThrow(/uefiLoader/);
  });

  it("proxy mode: auto is iPXE and shim is refused (the signed GRUB asks the LAN server's next-server, not the proxy)", () => {
    expect(effectiveUefiLoader("proxy", "auto")).toBe("ipxe");
    expect(effectiveUefiLoader("full", "auto")).toBe("auto");
    expect(effectiveUefiLoader("off", "auto")).toBe("auto");
    expect(effectiveUefiLoader("proxy", "ipxe")).toBe("ipxe");
    const offer = sent(proxyAnswer(fixture("uefi-pxe-discover"), 67, { ...env, hasLoader: signedRoot, uefiLoader: effectiveUefiLoader("proxy", "auto") }));
    expect(offer.packet.file).toBe("snponly.efi");
    expect(() => configSchema.parse({ dhcp: { mode: "proxy", uefiLoader: "shim" } })).toThrow(/shim needs dhcp\.mode full/);
    expect(configSchema.parse({ dhcp: { mode: "full", uefiLoader: "shim", pool: { start: "10.231.7.100", end: "10.231.7.199" } } }).dhcp.uefiLoader).toBe("shim");
  });
  const choose = (m: ReturnType<typeof identify>, has = signedRoot) => chooseBoot(m, env.httpBase, has, "shim");

  it("arch 7 and 9 get shimx64.efi over TFTP; BIOS, HTTP boot and iPXE are as with ipxe", () => {
    for (const a of [7, 9]) expect(choose(identify(pxeDiscover(a)))).toMatchObject({ boot: true, file: SHIM_LOADER, via: "tftp", firmware: "x64 UEFI (shim → GRUB)" });
    expect(choose(identify(pxeDiscover(0)))).toMatchObject({ boot: true, file: "undionly.kpxe" });
    expect(choose(identify(fixture("uefi-httpboot-discover")))).toMatchObject({ via: "http", file: "http://10.231.7.1:8080/boot/loaders/snponly.efi" });
    expect(choose(identify(pxeDiscover(7, { [Opt.USER_CLASS]: "iPXE" })))).toMatchObject({ via: "script" });
    expect(SHIM_LOADER).toBe("shimx64.efi");
  });

  it("no shim in the TFTP root (no image build yet): no answer, and the reason names the file", () => {
    expect(choose(identify(pxeDiscover(7)), (n) => n !== SHIM_LOADER && signedRoot(n))).toEqual({ boot: false, reason: expect.stringMatching(/shimx64\.efi .*missing/) });
  });

  it("the real OVMF capture gets shim in the proxy offer (4011 too) and in a full-mode offer", () => {
    const offer = sent(proxyAnswer(fixture("uefi-pxe-discover"), 67, shim));
    expect(offer.packet.file).toBe(SHIM_LOADER);
    expect(offer.packet.sname).toBe("10.231.7.1");
    expect(sent(proxyAnswer(request(MessageType.REQUEST, { [Opt.CLIENT_ARCH]: arch(7), [Opt.VENDOR_CLASS]: "PXEClient:Arch:00007:UNDI:003000" }), 4011, shim)).packet.file).toBe(SHIM_LOADER);
    const lease = { ip: "10.231.7.100", leaseSeconds: 600, netmask: "255.255.255.0", router: "", dns: [] };
    expect(sent(fullAnswer(pxeDiscover(9), { kind: "offer", lease }, shim)).packet.file).toBe(SHIM_LOADER);
    expect(sent(fullAnswer(pxeDiscover(9), { kind: "offer", lease }, env)).packet.file).toBe("snponly.efi");
  });
});

describe("SMBIOS UUID byte order", () => {
  it("swaps the first three fields of option 97 / iPXE ${uuid} to the dmidecode form", () => {
    const raw = Buffer.from("33221100554477668899aabbccddeeff", "hex");
    expect(canonicalSmbiosUuid(raw)).toBe("00112233-4455-6677-8899-aabbccddeeff");
    expect(canonicalUuidFromText("33221100-5544-7766-8899-aabbccddeeff")).toBe("00112233-4455-6677-8899-aabbccddeeff");
    expect(recognisedUuid("33221100-5544-7766-8899-AABBCCDDEEFF")).toEqual([
      "00112233-4455-6677-8899-aabbccddeeff",
      "33221100-5544-7766-8899-aabbccddeeff",
    ]);
  });
  it("treats all-zero UUIDs (QEMU without -uuid) and junk as none", () => {
    expect(canonicalSmbiosUuid(Buffer.alloc(16))).toBeUndefined();
    expect(recognisedUuid("00000000-0000-0000-0000-000000000000")).toEqual([]);
    expect(recognisedUuid("not-a-uuid")).toEqual([]);
    expect(identify(fixture("uefi-pxe-discover")).smbiosUuid).toBeUndefined();
    const m = identify(request(1, { [Opt.CLIENT_UUID]: Buffer.concat([Buffer.from([0]), Buffer.from("33221100554477668899aabbccddeeff", "hex")]) }));
    expect(m.smbiosUuid).toBe("00112233-4455-6677-8899-aabbccddeeff");
  });
});

describe("proxyDHCP answers", () => {
  it("offers the BIOS PXE ROM undionly.kpxe with option 43 'boot the file, no discovery'", () => {
    const a = sent(proxyAnswer(pxeDiscover(0, { [Opt.CLIENT_UUID]: Buffer.alloc(17, 1).fill(0, 0, 1) }), 67, env));
    const r = a.packet;
    expect(a.kind).toBe("proxy-offer");
    expect(r.yiaddr).toBe("0.0.0.0");
    expect(r.siaddr).toBe("10.231.7.1");
    expect(r.file).toBe("undionly.kpxe");
    expect(optIp(r, Opt.SERVER_ID)).toBe("10.231.7.1");
    expect(optString(r, Opt.VENDOR_CLASS)).toBe("PXEClient");
    expect(subOptions(r.options.get(Opt.VENDOR_SPECIFIC))?.get(6)).toEqual(Buffer.from([8]));
    expect(r.options.get(Opt.CLIENT_UUID)?.length).toBe(17);
    expect(r.flags & 0x8000).toBe(0x8000);
    expect(a.to).toEqual({ address: "255.255.255.255", port: 68 });
  });

  it("echoes option 97 only when the client sent it", () => {
    const a = sent(proxyAnswer(pxeDiscover(0), 67, env));
    expect(a.packet.options.has(Opt.CLIENT_UUID)).toBe(false);
  });

  it("gives iPXE the script URL and no option 43 (iPXE would do PXE menu discovery instead)", () => {
    const a = sent(proxyAnswer(fixture("bios-ipxe-rom-discover"), 67, env));
    expect(a.packet.file).toBe("http://10.231.7.1:8080/boot.ipxe");
    // iPXE ignores a proxy reply without siaddr, even for an http:// file (found booting OVMF → snponly.efi).
    expect(a.packet.siaddr).toBe("10.231.7.1");
    expect(a.packet.options.has(Opt.VENDOR_SPECIFIC)).toBe(false);
    expect(a.packet.options.get(Opt.CLIENT_UUID)).toEqual(Buffer.alloc(17));
  });

  it("gives OVMF snponly.efi without option 43 and answers its follow-up on 4011 back to the source", () => {
    const offer = sent(proxyAnswer(fixture("uefi-pxe-discover"), 67, env));
    expect(offer.packet.file).toBe("snponly.efi");
    expect(offer.packet.options.has(Opt.VENDOR_SPECIFIC)).toBe(false);
    const req = fixture("uefi-pxe-discover");
    req.options.set(Opt.MESSAGE_TYPE, Buffer.from([MessageType.REQUEST]));
    req.ciaddr = "10.231.7.150";
    const ack = sent(proxyAnswer(req, 4011, env));
    expect(ack.kind).toBe("proxy-ack");
    expect(ack.to).toBe("source");
    expect(ack.packet.file).toBe("snponly.efi");
  });

  it("answers the BIOS iPXE ROM's 4011 REQUEST that carries only 'PXEClient' (no arch in option 60)", () => {
    const req = request(MessageType.REQUEST, { [Opt.VENDOR_CLASS]: "PXEClient", [Opt.CLIENT_ARCH]: arch(0), [Opt.USER_CLASS]: "iPXE" }, { ciaddr: "10.231.7.158" });
    expect(sent(proxyAnswer(req, 4011, env)).packet.file).toBe("http://10.231.7.1:8080/boot.ipxe");
    const noVc = request(MessageType.REQUEST, { [Opt.CLIENT_ARCH]: arch(7) }, { ciaddr: "10.231.7.158" });
    expect(sent(proxyAnswer(noVc, 4011, env)).packet.file).toBe("snponly.efi");
  });

  it("echoes HTTPClient and gives a URL to UEFI HTTP boot", () => {
    const a = sent(proxyAnswer(fixture("uefi-httpboot-discover"), 67, env));
    expect(optString(a.packet, Opt.VENDOR_CLASS)).toBe("HTTPClient");
    expect(a.packet.file).toBe("http://10.231.7.1:8080/boot/loaders/snponly.efi");
  });

  it("stays silent for non-boot clients, REQUESTs on 67 and unknown arches (the last one notable)", () => {
    const plain = proxyAnswer(request(MessageType.DISCOVER, { [Opt.VENDOR_CLASS]: "udhcp 1.35.0" }), 67, env);
    expect(plain).toMatchObject({ send: false, notable: false });
    const req67 = proxyAnswer(request(MessageType.REQUEST, { [Opt.VENDOR_CLASS]: "PXEClient:Arch:00000:UNDI:002001" }), 67, env);
    expect(req67).toMatchObject({ send: false, reason: /REQUEST on 67/ });
    expect(proxyAnswer(pxeDiscover(42), 67, env)).toMatchObject({ send: false, notable: true, reason: /unknown client architecture 42/ });
  });

  it("NAKs an OS client that took the empty proxy OFFER for a lease (REQUEST on 67 naming us, no address); stays out of every other REQUEST", () => {
    const took = (requested?: string, sid = "10.231.7.1") =>
      request(MessageType.REQUEST, { [Opt.VENDOR_CLASS]: "PXEClient:Arch:00000:UNDI:002001", [Opt.SERVER_ID]: ipBytes(sid), ...(requested ? { [Opt.REQUESTED_IP]: ipBytes(requested) } : {}) });
    for (const r of [took(), took("0.0.0.0")]) {
      const a = sent(proxyAnswer(r, 67, env));
      expect(a).toMatchObject({ kind: "proxy-nak", to: { address: "255.255.255.255", port: 68 } });
      expect(optIp(a.packet, Opt.SERVER_ID)).toBe("10.231.7.1");
      expect(optString(a.packet, Opt.MESSAGE)).toMatch(/PXE proxy/);
    }
    expect(proxyAnswer(took("10.231.7.170"), 67, env)).toMatchObject({ send: false });
    expect(proxyAnswer(took(undefined, "10.231.7.2"), 67, env)).toMatchObject({ send: false, reason: /for the LAN's DHCP server/ });
  });

  it("answers through a relay (giaddr) on port 67", () => {
    const a = sent(proxyAnswer(pxeDiscover(7, {}), 67, env));
    expect(a.to).toEqual({ address: "255.255.255.255", port: 68 });
    const relayed = pxeDiscover(7);
    relayed.giaddr = "10.9.0.1";
    const r = sent(proxyAnswer(relayed, 67, env));
    expect(r.to).toEqual({ address: "10.9.0.1", port: 67 });
    expect(r.packet.giaddr).toBe("10.9.0.1");
  });
});

describe("full DHCP answers", () => {
  const lease = { ip: "10.231.7.100", leaseSeconds: 600, netmask: "255.255.255.0", router: "10.231.7.1", dns: ["10.231.7.1"] };
  it("an OFFER carries the address, lease times and, for a PXE client, the boot file (no PXEClient echo)", () => {
    const a = sent(fullAnswer(pxeDiscover(0), { kind: "offer", lease }, env));
    const r = a.packet;
    expect(r.yiaddr).toBe("10.231.7.100");
    expect(r.options.get(Opt.LEASE_TIME)?.readUInt32BE(0)).toBe(600);
    expect(optIp(r, Opt.SUBNET_MASK)).toBe("255.255.255.0");
    expect(optIp(r, Opt.ROUTER)).toBe("10.231.7.1");
    expect(r.file).toBe("undionly.kpxe");
    expect(r.options.has(Opt.VENDOR_CLASS)).toBe(false);
  });
  it("a plain client gets an address and no boot file; a NAK is broadcast", () => {
    const a = sent(fullAnswer(request(MessageType.REQUEST, {}), { kind: "ack", lease }, env));
    expect(a.packet.file).toBe("");
    const n = sent(fullAnswer(request(MessageType.REQUEST, {}, { ciaddr: "10.1.1.1" }), { kind: "nak", message: "no" }, env));
    expect(n.to).toEqual({ address: "255.255.255.255", port: 68 });
  });
  it("INFORM is answered to the client's address without a lease", () => {
    const a = sent(fullAnswer(request(MessageType.INFORM, {}, { ciaddr: "10.231.7.50" }), { kind: "inform", lease }, env));
    expect(a.to).toEqual({ address: "10.231.7.50", port: 68 });
    expect(a.packet.options.has(Opt.LEASE_TIME)).toBe(false);
    expect(clientArch(a.packet)).toBeUndefined();
  });
});

describe("reserved mode: who is answered at all", () => {
  it("answers a MAC with an active job or a static lease, and is silent to any other with a reason", () => {
    expect(reservedSilence("52:54:00:07:00:01", { staticLease: false, job: "j1" })).toBeUndefined();
    expect(reservedSilence("52:54:00:07:00:01", { staticLease: true, job: undefined })).toBeUndefined();
    expect(reservedSilence("52:54:00:07:00:01", { staticLease: false, job: undefined })).toBe("reserved mode: 52:54:00:07:00:01 has no active job and no static lease");
    expect(reservedSilence("52:54:00:07:00:01", { staticLease: false, job: "" })).toBeDefined();
  });
});
