import { describe, expect, it } from "vitest";
import {
  MAX_OPTION_PARTS, MessageType, Opt, clientArch, decode, encode, encodeSubOptions, macOf, messageType, optString, replyTo, subOptions, userClasses,
} from "../../../server/dhcp/codec.ts";
import { fixture, fixtureBytes, request } from "./packets.ts";

describe("DHCP codec on real captured packets", () => {
  it("decodes the SeaBIOS iPXE ROM DISCOVER", () => {
    const p = fixture("bios-ipxe-rom-discover");
    expect(messageType(p)).toBe(MessageType.DISCOVER);
    expect(macOf(p)).toBe("52:54:00:07:00:01");
    expect(clientArch(p)).toBe(0);
    expect(optString(p, Opt.VENDOR_CLASS)).toBe("PXEClient:Arch:00000:UNDI:002001");
    expect(userClasses(p)).toContain("iPXE");
    // iPXE's option 175 is itself a list of sub-options (feature flags, bus id).
    expect(subOptions(p.options.get(Opt.IPXE_ENCAP))?.size).toBeGreaterThan(5);
    expect(p.options.get(Opt.CLIENT_UUID)).toEqual(Buffer.alloc(17));
    expect(p.flags).toBe(0);
  });

  it("decodes OVMF's PXE DISCOVER (arch 7, broadcast flag) and its HTTP-boot DISCOVER (arch 16)", () => {
    const pxe = fixture("uefi-pxe-discover");
    expect(clientArch(pxe)).toBe(7);
    expect(optString(pxe, Opt.VENDOR_CLASS)).toBe("PXEClient:Arch:00007:UNDI:003000");
    expect(userClasses(pxe)).toEqual([]);
    expect(pxe.flags).toBe(0x8000);
    const http = fixture("uefi-httpboot-discover");
    expect(clientArch(http)).toBe(16);
    expect(optString(http, Opt.VENDOR_CLASS)).toBe("HTTPClient:Arch:00016:UNDI:003000");
  });

  it("re-encodes each capture to the same fields and options", () => {
    for (const f of ["bios-ipxe-rom-discover", "uefi-pxe-discover", "uefi-httpboot-discover"] as const) {
      const p = fixture(f);
      const again = decode(encode(p));
      expect(again.ok).toBe(true);
      if (!again.ok) continue;
      expect(again.packet).toEqual(p);
      // The option area is byte-identical up to END (captures carry trailing padding).
      const orig = fixtureBytes(f);
      const enc = encode(p);
      const end = enc.indexOf(255, 240);
      expect(enc.subarray(0, end + 1)).toEqual(orig.subarray(0, end + 1));
    }
  });
});

describe("DHCP codec edge cases", () => {
  it("splits options longer than 255 bytes and joins them again (RFC 3396)", () => {
    const long = Buffer.alloc(600, 7);
    const p = request(MessageType.DISCOVER, { 224: long });
    const d = decode(encode(p));
    expect(d.ok && d.packet.options.get(224)).toEqual(long);
  });

  it("reads options overloaded into file and sname (option 52)", () => {
    const b = encode(request(MessageType.DISCOVER, { [Opt.OVERLOAD]: Buffer.from([3]) }));
    Buffer.from([Opt.HOSTNAME, 3, 0x61, 0x62, 0x63, 255]).copy(b, 108);
    Buffer.from([Opt.VENDOR_CLASS, 2, 0x78, 0x79, 255]).copy(b, 44);
    const d = decode(b);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(optString(d.packet, Opt.HOSTNAME)).toBe("abc");
    expect(optString(d.packet, Opt.VENDOR_CLASS)).toBe("xy");
    expect(d.packet.file).toBe("");
  });

  it("returns errors, not exceptions, for malformed packets", () => {
    const good = encode(request(MessageType.DISCOVER));
    expect(decode(Buffer.alloc(10))).toMatchObject({ ok: false, error: /too short/ });
    const noMagic = Buffer.from(good);
    noMagic.writeUInt32BE(0, 236);
    expect(decode(noMagic)).toMatchObject({ ok: false, error: /magic/ });
    const overrun = Buffer.concat([good.subarray(0, 240), Buffer.from([60, 200, 1, 2])]);
    expect(decode(overrun)).toMatchObject({ ok: false, error: /option 60 length 200 runs past the end/ });
    const badHlen = Buffer.from(good);
    badHlen[2] = 40;
    expect(decode(badHlen)).toMatchObject({ ok: false, error: /hlen/ });
  });

  it("reads RFC 3004 user classes as well as iPXE's bare string", () => {
    expect(userClasses(request(1, { [Opt.USER_CLASS]: Buffer.from("\x04iPXE\x03foo", "latin1") }))).toEqual(
      expect.arrayContaining(["iPXE", "foo"]),
    );
    expect(userClasses(request(1, { [Opt.USER_CLASS]: "iPXE" }))).toContain("iPXE");
  });

  it("joins repeated options once and refuses more than MAX_OPTION_PARTS repeats of one code", () => {
    const head = encode(request(MessageType.DISCOVER)).subarray(0, 240);
    const parts = (n: number) => Buffer.concat([head, Buffer.from(Array.from({ length: n }, (_, i) => [0xe0, 1, i & 255]).flat())]);
    const ok = decode(parts(MAX_OPTION_PARTS));
    expect(ok.ok && ok.packet.options.get(0xe0)).toEqual(Buffer.from(Array.from({ length: MAX_OPTION_PARTS }, (_, i) => i & 255)));
    expect(decode(parts(MAX_OPTION_PARTS + 1))).toMatchObject({ ok: false, error: `options: option 224 repeated more than ${MAX_OPTION_PARTS} times` });
  });

  it("a 64 KB datagram of one repeated option (e0 01 41) decodes in under 20 ms (was 258 ms, quadratic)", () => {
    const head = encode(request(MessageType.DISCOVER)).subarray(0, 240);
    const hostile = Buffer.concat([head, Buffer.alloc(65_507 - 240 - 2, Buffer.from([0xe0, 1, 0x41]))]);
    // The cap is what makes it cheap; the same datagram with the repeats spread over every code is also linear.
    const spread = Buffer.concat([head, Buffer.from(Array.from({ length: 21_000 }, (_, i) => [1 + (i % 250), 1, 0x41]).flat())]);
    for (const b of [hostile, spread]) {
      // The best of five: the machine is shared, a CPU cost is what is measured (the quadratic decoder took 258 ms every time).
      const times = Array.from({ length: 5 }, () => {
        const t = performance.now();
        decode(b);
        return performance.now() - t;
      });
      const ms = Math.min(...times);
      expect(ms, `decode took ${ms.toFixed(1)} ms`).toBeLessThan(20);
      expect(decode(b).ok).toBe(b === spread);
    }
  });

  it("replies echo the client identifier (option 61, RFC 6842) and only when sent", () => {
    const id = Buffer.from("ff00000001000100022a", "hex");
    expect(replyTo(request(MessageType.DISCOVER, { [Opt.CLIENT_ID]: id }), MessageType.OFFER).options.get(Opt.CLIENT_ID)).toEqual(id);
    expect(replyTo(request(MessageType.DISCOVER), MessageType.OFFER).options.has(Opt.CLIENT_ID)).toBe(false);
  });

  it("encodes sub-options with an END", () => {
    expect(encodeSubOptions(new Map([[6, Buffer.from([8])]]))).toEqual(Buffer.from([6, 1, 8, 255]));
  });
});
