import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { powerActionBodySchema, powerConfigBodySchema, splitPowerConfig } from "../../../server/http/api-schemas.ts";
import { powerConfigBody, readPasswordFile } from "../../../server/cli/power.ts";
import { IPMI_CLEAR_BOOT, ipmiBootdevCommand, ipmiFailure, ipmitoolArgs, parsePowerStatus } from "../../../server/power/ipmi.ts";
import { POWER_ACTIONS, describePowerSteps, normalizeFingerprint, planAfterEnd, planArmPower } from "../../../server/power/power.ts";
import { powerHistory } from "../../../server/power/power-service.ts";
import { REDFISH_CLEAR_BOOT, cycleResetType, redfishBootPatch, redfishPowerState } from "../../../server/power/redfish.ts";
import { magicPacket } from "../../../server/power/wol.ts";
import { tempDir } from "../../helpers/tmp.ts";

const BMC = { host: "web1", can: { status: true, off: true, cycle: true, oneTimeBoot: true } };
const WOL = { host: "web1", can: { status: false, off: false, cycle: false, oneTimeBoot: false } };
const ipmi = { kind: "ipmi" as const, address: "10.0.0.5", port: 623, user: "admin", cipherSuite: 3 };

describe("what jobs arm --power does (pure)", () => {
  it("a machine that is off: one-time network boot, then on", () => {
    expect(planArmPower({ ...BMC, state: "off", force: false })).toEqual({ ok: true, steps: ["set-boot", "on"], notes: [] });
  });
  it("a machine that is on is refused without --force, in one line", () => {
    const p = planArmPower({ ...BMC, state: "on", force: false });
    expect(p).toEqual({ ok: false, reason: "web1 is on: not power-cycled without --force" });
  });
  it("forced: off, confirmed off, the boot flag last (BMCs clear it after 60 s), then on", () => {
    expect(planArmPower({ ...BMC, state: "on", force: true })).toMatchObject({ ok: true, steps: ["off", "confirm-off", "set-boot", "on"] });
  });
  it("Wake-on-LAN only wakes, and says the firmware must boot from the network itself", () => {
    const p = planArmPower({ ...WOL, state: "unknown", force: false });
    expect(p).toMatchObject({ ok: true, steps: ["wake"] });
    expect(p.ok && p.notes[0]).toMatch(/cannot set a one-time network boot/);
  });
  it("says the steps in words", () => {
    expect(describePowerSteps(["off", "confirm-off", "set-boot", "on"], "pxe", "uefi")).toBe("power off, then confirm it is off, then set a one-time PXE boot (UEFI), then power on");
  });
});

describe("after the job ended: the one-time boot override is never left behind (pure)", () => {
  const armed = [{ step: "status" as const }, { step: "set-boot" as const }, { step: "on" as const }];
  it("a job armed with --power that ended (done, failed, cancelled or expired alike): clear-boot, once", () => {
    expect(planAfterEnd({ ended: true, history: armed, can: BMC.can })).toEqual(["clear-boot"]);
    expect(planAfterEnd({ ended: true, history: [...armed, { step: "clear-boot" }], can: BMC.can })).toEqual([]);
    // A failed clear is in the history for the admin, not retried on every change of the job.
    expect(planAfterEnd({ ended: true, history: [...armed, { step: "clear-boot", error: "IPMI BMC 10.0.0.5:623 does not answer" }], can: BMC.can })).toEqual([]);
  });
  it("nothing while the job is active, when no boot flag was set (or setting it failed), or for Wake-on-LAN", () => {
    expect(planAfterEnd({ ended: false, history: armed, can: BMC.can })).toEqual([]);
    expect(planAfterEnd({ ended: true, history: [{ step: "status" }, { step: "set-boot", error: "refused" }], can: BMC.can })).toEqual([]);
    expect(planAfterEnd({ ended: true, history: [{ step: "status" }, { step: "wake" }], can: WOL.can })).toEqual([]);
    expect(planAfterEnd({ ended: true, history: armed, can: WOL.can })).toEqual([]);
  });
  it("a second arm --power after a clear: cleared again", () => {
    expect(planAfterEnd({ ended: true, history: [...armed, { step: "clear-boot" }, ...armed], can: BMC.can })).toEqual(["clear-boot"]);
  });
  it("reads the steps from the job's power events, errors kept, other events left out", () => {
    const ev = (type: string, data: unknown) => ({ id: 1, job: "j", at: "t", type, data });
    expect(powerHistory([ev("armed", {}), ev("power", { via: "ipmi", step: "status", state: "off" }), ev("power", { step: "set-boot", netBoot: "pxe" }), ev("power", { step: "on", error: "x" }), ev("done", {})])).toEqual([
      { step: "status" },
      { step: "set-boot" },
      { step: "on", error: "x" },
    ]);
  });
  it("IPMI clears with bootdev none, Redfish with BootSourceOverrideEnabled Disabled; the words for it", () => {
    expect(IPMI_CLEAR_BOOT).toEqual(["chassis", "bootdev", "none"]);
    expect(REDFISH_CLEAR_BOOT).toEqual({ Boot: { BootSourceOverrideEnabled: "Disabled" } });
    expect(describePowerSteps(["clear-boot"], "pxe", null)).toBe("clear the one-time boot override");
  });
});

describe("IPMI (ipmitool lanplus) arguments and answers (pure)", () => {
  it("never puts the password on the command line (-E: from the environment)", () => {
    const args = ipmitoolArgs(ipmi, ["chassis", "power", "status"]);
    expect(args).toEqual(["-I", "lanplus", "-H", "10.0.0.5", "-p", "623", "-U", "admin", "-E", "-C", "3", "-N", "2", "-R", "2", "-v", "chassis", "power", "status"]);
    expect(args).not.toContain("-P");
  });
  it("UEFI one-time PXE carries the efiboot flag, BIOS does not; no HTTP boot over IPMI", () => {
    expect(ipmiBootdevCommand("pxe", "uefi")).toEqual(["chassis", "bootdev", "pxe", "options=efiboot"]);
    expect(ipmiBootdevCommand("pxe", "bios")).toEqual(["chassis", "bootdev", "pxe"]);
    expect(() => ipmiBootdevCommand("uefi-http", "uefi")).toThrow(/IPMI has no one-time uefi-http boot device/);
  });
  it("reads the power status", () => {
    expect(parsePowerStatus("Chassis Power is on\n")).toBe("on");
    expect(parsePowerStatus("Chassis Power is off")).toBe("off");
    expect(parsePowerStatus("")).toBeUndefined();
  });
  it("tells a wrong password, a refused cipher suite and a silent BMC apart, each in one line naming the BMC", () => {
    const wrong = ipmiFailure(ipmi, "Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n");
    expect([wrong.failure, wrong.message]).toEqual(["auth", "IPMI BMC 10.0.0.5:623 refused user admin or its password"]);
    expect(ipmiFailure(ipmi, "RAKP 2 message indicates an error : unauthorized name").failure).toBe("auth");
    expect(ipmiFailure(ipmi, "Error in open session response message : invalid authentication algorithm").message).toBe("IPMI BMC 10.0.0.5:623 refused cipher suite 3 (--cipher-suite)");
    const silent = ipmiFailure(ipmi, "Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n");
    expect([silent.failure, silent.message]).toEqual(["unreachable", "IPMI BMC 10.0.0.5:623 does not answer"]);
    expect(ipmiFailure(ipmi, "Loading IANA PEN Registry...\nSet Chassis Power Control to Cycle failed: Command not supported in present state\n").message).toBe(
      "IPMI BMC 10.0.0.5:623: Set Chassis Power Control to Cycle failed: Command not supported in present state",
    );
  });
});

describe("Redfish request bodies (pure)", () => {
  it("a one-time override: Pxe or UefiHttp, Once, in the firmware's mode", () => {
    expect(redfishBootPatch("pxe", "uefi")).toEqual({ Boot: { BootSourceOverrideTarget: "Pxe", BootSourceOverrideEnabled: "Once", BootSourceOverrideMode: "UEFI" } });
    expect(redfishBootPatch("uefi-http", "uefi").Boot.BootSourceOverrideTarget).toBe("UefiHttp");
    expect(redfishBootPatch("pxe", "bios").Boot.BootSourceOverrideMode).toBe("Legacy");
  });
  it("power states and the cycle reset type", () => {
    expect([redfishPowerState("On"), redfishPowerState("PoweringOff"), redfishPowerState("Weird")]).toEqual(["on", "off", undefined]);
    expect(cycleResetType(["On", "ForceOff", "PowerCycle"])).toBe("PowerCycle");
    expect(cycleResetType(["On", "ForceOff", "ForceRestart"])).toBe("ForceRestart");
  });
});

describe("Wake-on-LAN magic packet (pure)", () => {
  it("is 6 bytes of ff and the MAC 16 times", () => {
    const p = magicPacket("52-54-00-AB-CD-EF");
    expect(p.length).toBe(102);
    expect(p.subarray(0, 6).toString("hex")).toBe("ffffffffffff");
    for (let i = 0; i < 16; i++) expect(p.subarray(6 + 6 * i, 12 + 6 * i).toString("hex")).toBe("525400abcdef");
  });
});

describe("the power config contract: what the CLI builds, the API schema takes", () => {
  const dir = tempDir();
  const pw = join(dir, "bmc");
  writeFileSync(pw, "s3cret\nignored\n", { mode: 0o600 });

  it("builds IPMI, Redfish and WoL bodies the server's schema accepts, the password apart from the stored config", () => {
    for (const o of [{ ipmi: "10.0.0.5", user: "admin", passwordFile: pw, port: "6230", cipherSuite: "17" }, { redfish: "https://10.0.0.6", user: "root", passwordFile: pw, netBoot: "uefi-http" as const }, { wol: true }]) {
      const body = powerConfigBodySchema.parse(powerConfigBody(o));
      const { config, password } = splitPowerConfig(body);
      expect(JSON.stringify(config)).not.toContain("s3cret");
      expect(password).toBe(o.wol ? null : "s3cret");
    }
    expect(splitPowerConfig(powerConfigBodySchema.parse(powerConfigBody({ ipmi: "10.0.0.5", user: "admin", passwordFile: pw }))).config).toEqual({ kind: "ipmi", address: "10.0.0.5", port: 623, user: "admin", cipherSuite: 3 });
    for (const action of POWER_ACTIONS) expect(powerActionBodySchema.parse({ action })).toEqual({ action });
  });
  it("refuses a wrong mix, a password file others can read, and HTTP boot over IPMI, each in one line", () => {
    expect(() => powerConfigBody({ ipmi: "h", wol: true })).toThrow(/give one of --ipmi HOST, --redfish URL or --wol/);
    expect(() => powerConfigBody({ ipmi: "h", user: "u" })).toThrow(/--ipmi needs --user USER and --password-file FILE/);
    expect(() => powerConfigBody({ ipmi: "h", user: "u", passwordFile: pw, netBoot: "uefi-http" })).toThrow(/IPMI has no one-time HTTP boot device/);
    const open = join(dir, "open");
    writeFileSync(open, "x\n");
    chmodSync(open, 0o644);
    expect(() => readPasswordFile(open)).toThrow(`${open}: readable by others (mode 0644): chmod 600 ${open}`);
    expect(() => powerConfigBodySchema.parse({ kind: "redfish", url: "ftp://x", user: "u", password: "p" })).toThrow();
  });
});

describe("normalizeFingerprint: a pinned certificate's SHA-256 as openssl and Node print it", () => {
  const f = "F1:A3:3E:BE:88:6A:89:1B:38:73:FC:DB:55:ED:C7:BA:E4:47:B1:40:12:71:31:ED:1D:78:DA:DD:20:FF:D1:55";
  it("takes openssl's line, the colon form in any case, or bare hex", () => {
    expect(normalizeFingerprint(`sha256 Fingerprint=${f}`)).toBe(f);
    expect(normalizeFingerprint(f.toLowerCase())).toBe(f);
    expect(normalizeFingerprint(f.replace(/:/g, ""))).toBe(f);
  });
  it("refuses anything else: SHA-1 length, stray characters, empty", () => {
    expect(normalizeFingerprint(f.slice(0, 59))).toBeNull();
    expect(normalizeFingerprint(`${f.slice(0, -2)}ZZ`)).toBeNull();
    expect(normalizeFingerprint("")).toBeNull();
  });
});
