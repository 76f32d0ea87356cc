/**
 * Power control of a machine through its management controller (IPMI, Redfish) or its NIC
 * (Wake-on-LAN): the one driver interface, the per-host config, and the pure decision of
 * what `jobs arm --power` does. The drivers (ipmi.ts, redfish.ts, wol.ts) are the edges;
 * power-service.ts joins them to the store, the jobs and the audit log.
 *
 * Known pitfalls this follows: MAAS's IPMI "power on" was a hard cycle that reset healthy
 * nodes (so a machine that is on is never cycled unless the admin says --force); UEFI
 * one-time PXE over IPMI needs the `efiboot` flag (ipmitool `options=efiboot`); BMCs clear a
 * boot flag about 60 s after it was set (IPMI 2.0 §28.12, "boot flag valid bit clearing"),
 * so the flag is set right before the power-on, after the machine was confirmed off.
 */
import { UserError } from "../errors.ts";

/** The drivers, in one list (CLI, API and store name them the same). */
export const POWER_KINDS = ["ipmi", "redfish", "wol"] as const;
export type PowerKind = (typeof POWER_KINDS)[number];

/** What `hosts power NAME ACTION` does. */
export const POWER_ACTIONS = ["status", "on", "off", "cycle"] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];

/** How the one-time network boot goes: PXE (DHCP + TFTP), or UEFI HTTP boot (Redfish only: IPMI has no such boot device). */
export const NET_BOOTS = ["pxe", "uefi-http"] as const;
export type NetBoot = (typeof NET_BOOTS)[number];

export type Firmware = "bios" | "uefi";
/** "unknown": the driver cannot tell (Wake-on-LAN has no way to ask). */
export type PowerState = "on" | "off" | "unknown";

export type PowerConfig =
  | { kind: "ipmi"; address: string; port: number; user: string; cipherSuite: number }
  | { kind: "redfish"; url: string; user: string; netBoot: NetBoot; tlsFingerprint?: string }
  | { kind: "wol" };

/** Where the power goes, in words for a person: "IPMI BMC 10.0.0.5:623". */
export function powerTarget(c: PowerConfig): string {
  switch (c.kind) {
    case "ipmi":
      return `IPMI BMC ${c.address}:${c.port}`;
    case "redfish":
      return `Redfish service ${c.url}`;
    case "wol":
      return "Wake-on-LAN";
  }
}

/**
 * A certificate's SHA-256 fingerprint as Node and `openssl x509 -fingerprint -sha256` print it
 * (upper case, colon-separated), from that form or 64 bare hex digits; null when it is neither.
 */
export function normalizeFingerprint(s: string): string | null {
  const hex = s.trim().replace(/^sha256\s*fingerprint\s*=\s*/i, "").replace(/:/g, "");
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return null;
  return hex.toUpperCase().match(/../g)!.join(":");
}

/** The one-time boot a driver sets: always a network boot, PXE unless the config says UEFI HTTP boot. */
export function netBootOf(c: PowerConfig): NetBoot {
  return c.kind === "redfish" ? c.netBoot : "pxe";
}

/** The one interface every driver implements. */
export interface PowerDriver {
  readonly kind: PowerKind;
  /** What it can do: Wake-on-LAN can only power on, and cannot tell the state. */
  readonly can: { status: boolean; off: boolean; cycle: boolean; oneTimeBoot: boolean };
  status(): Promise<PowerState>;
  on(): Promise<void>;
  off(): Promise<void>;
  cycle(): Promise<void>;
  /** The next boot (only) goes to the network, the way `firmware` boots (UEFI needs its own flag). */
  setOneTimeBoot(via: NetBoot, firmware: Firmware): Promise<void>;
  /** No boot override left: the next boot is the machine's own (its disk). */
  clearOneTimeBoot(): Promise<void>;
}

/** Why a driver failed, for one line: the peer did not answer, refused the credentials, refused the request, or cannot do it. */
export type PowerFailure = "unreachable" | "auth" | "refused" | "unsupported";

/** A power action that failed; the message is one line naming the BMC (or interface). */
export class PowerError extends UserError {
  constructor(
    readonly failure: PowerFailure,
    message: string,
  ) {
    super(message, 1);
    this.name = "PowerError";
  }
}

/** One step of `jobs arm --power`, in the order it runs, and the one after its job ended (clear-boot). */
export type PowerStep = "off" | "confirm-off" | "set-boot" | "on" | "wake" | "clear-boot";

export type PowerPlan = { ok: true; steps: PowerStep[]; notes: string[] } | { ok: false; reason: string };

/**
 * What `jobs arm --power` does to a machine in `state` (pure). Off: set the one-time network
 * boot, power on. On: refused unless `force`; forced, it is powered off, confirmed off, then
 * given the boot flag and powered on (the flag last: BMCs clear it after about 60 s). A
 * driver that cannot tell the state (Wake-on-LAN) only wakes: a machine that is on ignores
 * a magic packet, so nothing healthy is reset; its firmware must boot from the network itself.
 */
export function planArmPower(o: { host: string; state: PowerState; force: boolean; can: PowerDriver["can"] }): PowerPlan {
  if (o.state === "unknown") {
    if (o.can.status) return { ok: false, reason: `${o.host}: the power state is unknown; nothing done` };
    return { ok: true, steps: ["wake"], notes: [`Wake-on-LAN cannot set a one-time network boot: ${o.host}'s firmware must boot from the network first`] };
  }
  const boot: PowerStep[] = o.can.oneTimeBoot ? ["set-boot"] : [];
  if (o.state === "off") return { ok: true, steps: [...boot, "on"], notes: [] };
  if (!o.force) return { ok: false, reason: `${o.host} is on: not power-cycled without --force` };
  if (!o.can.off) return { ok: false, reason: `${o.host} is on and its driver cannot power it off` };
  return { ok: true, steps: ["off", "confirm-off", ...boot, "on"], notes: [] };
}

/** The steps in words, for the plan shown before they run. */
export function describePowerSteps(steps: PowerStep[], via: NetBoot, firmware: Firmware | null): string {
  const words: Record<PowerStep, string> = {
    off: "power off",
    "confirm-off": "confirm it is off",
    "set-boot": `set a one-time ${via === "pxe" ? "PXE" : "UEFI HTTP"} boot (${firmware === "uefi" ? "UEFI" : "BIOS"})`,
    on: "power on",
    wake: "send a Wake-on-LAN magic packet",
    "clear-boot": "clear the one-time boot override",
  };
  return steps.map((s) => words[s]).join(", then ");
}

/** A power step as a job's history holds it (its "power" events): the step, and the error when it failed. */
export interface RecordedPowerStep {
  step: PowerStep | "status";
  error?: string;
}

/**
 * What is done to the machine once its job has ended (pure), whatever the end (done, failed,
 * cancelled, expired): the one-time network boot `jobs arm --power` set is cleared, so the next
 * boot is the disk's. BMCs should drop the flag once used or after 60 s, but not every one does,
 * and a machine that never booted from it would keep it. Cleared once: nothing when no set-boot
 * succeeded, or a clear-boot was already tried after it (a failed one is in the history for the
 * admin, not retried on every change), or the driver sets no boot override.
 */
export function planAfterEnd(o: { ended: boolean; history: RecordedPowerStep[]; can: PowerDriver["can"] }): PowerStep[] {
  if (!o.ended || !o.can.oneTimeBoot) return [];
  const set = o.history.findLastIndex((s) => s.step === "set-boot" && s.error === undefined);
  if (set < 0 || o.history.slice(set + 1).some((s) => s.step === "clear-boot")) return [];
  return ["clear-boot"];
}
