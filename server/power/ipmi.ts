/**
 * IPMI over LAN through Debian's `ipmitool -I lanplus` (IPMI 2.0, RMCP+). The password goes
 * to ipmitool in its environment (`-E` reads IPMI_PASSWORD), never on its command line, where
 * `ps` would show it to every user; nothing here logs it. `-v` makes ipmitool say why a
 * session failed (a wrong password and a silent BMC otherwise print the same line).
 */
import { execa } from "execa";
import { type Firmware, type NetBoot, type PowerConfig, type PowerDriver, PowerError, type PowerState, powerTarget } from "./power.ts";

export type IpmiConfig = Extract<PowerConfig, { kind: "ipmi" }>;

/** How long ipmitool waits for an answer (-N seconds) and how often it asks again (-R). */
export interface IpmiTiming {
  timeoutSeconds: number;
  retries: number;
}
export const IPMI_TIMING: IpmiTiming = { timeoutSeconds: 2, retries: 2 };

/** ipmitool's arguments for one command (pure): no password among them. */
export function ipmitoolArgs(c: IpmiConfig, command: string[], t: IpmiTiming = IPMI_TIMING): string[] {
  return ["-I", "lanplus", "-H", c.address, "-p", String(c.port), "-U", c.user, "-E", "-C", String(c.cipherSuite), "-N", String(t.timeoutSeconds), "-R", String(t.retries), "-v", ...command];
}

/**
 * The one-time boot device (pure). `chassis bootdev pxe` sets boot flags (parameter 5) valid
 * for the next boot only; UEFI firmware needs the "BIOS boot type: EFI" bit too
 * (`options=efiboot`), or many boards ignore the flag or PXE-boot in legacy mode.
 */
export function ipmiBootdevCommand(via: NetBoot, firmware: Firmware): string[] {
  if (via !== "pxe") throw new PowerError("unsupported", `IPMI has no one-time ${via} boot device (only PXE): use Redfish for UEFI HTTP boot`);
  return ["chassis", "bootdev", "pxe", ...(firmware === "uefi" ? ["options=efiboot"] : [])];
}

/**
 * No boot override (pure): `chassis bootdev none` sets the boot flags valid with "no override",
 * so the next boot follows the machine's own boot order.
 */
export const IPMI_CLEAR_BOOT: readonly string[] = ["chassis", "bootdev", "none"];

/** "Chassis Power is on" → on (pure); anything else is not an answer. */
export function parsePowerStatus(stdout: string): PowerState | undefined {
  const m = /Chassis Power is (on|off)/i.exec(stdout);
  return m ? (m[1]!.toLowerCase() as PowerState) : undefined;
}

/** ipmitool's complaint as one line naming the BMC (pure). */
export function ipmiFailure(c: IpmiConfig, stderr: string): PowerError {
  const who = powerTarget(c);
  if (/RAKP 2 HMAC is invalid|unauthorized name|invalid user ?name|insufficient privilege|password/i.test(stderr))
    return new PowerError("auth", `${who} refused user ${c.user} or its password`);
  if (/invalid authentication algorithm|cipher suite/i.test(stderr)) return new PowerError("refused", `${who} refused cipher suite ${c.cipherSuite} (--cipher-suite)`);
  if (/Get Auth Capabilities error|Get Channel Authentication Capabilities|No response|timed? ?out|Unable to establish/i.test(stderr))
    return new PowerError("unreachable", `${who} does not answer`);
  const line = stderr.split("\n").map((l) => l.trim()).filter((l) => l && !/^Loading IANA/.test(l)).at(-1) ?? "no message";
  return new PowerError("refused", `${who}: ${line}`);
}

export class IpmiDriver implements PowerDriver {
  readonly kind = "ipmi";
  readonly can = { status: true, off: true, cycle: true, oneTimeBoot: true };

  constructor(
    private readonly config: IpmiConfig,
    private readonly password: string,
    private readonly timing: IpmiTiming = IPMI_TIMING,
  ) {}

  private async run(command: string[]): Promise<string> {
    let r;
    try {
      r = await execa("ipmitool", ipmitoolArgs(this.config, command, this.timing), {
        env: { IPMI_PASSWORD: this.password },
        stdin: "ignore",
        reject: false,
        timeout: (this.timing.timeoutSeconds * (this.timing.retries + 1) + 10) * 1000,
      });
    } catch (err) {
      throw new PowerError("unsupported", `ipmitool cannot run (${(err as Error).message}): install Debian's ipmitool`);
    }
    if ((r.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT") throw new PowerError("unsupported", "ipmitool is not installed (Debian package ipmitool)");
    if (r.timedOut) throw new PowerError("unreachable", `${powerTarget(this.config)} does not answer`);
    if (r.exitCode !== 0) throw ipmiFailure(this.config, `${r.stderr}\n${r.stdout}`);
    return r.stdout;
  }

  async status(): Promise<PowerState> {
    const out = await this.run(["chassis", "power", "status"]);
    const state = parsePowerStatus(out);
    if (!state) throw new PowerError("refused", `${powerTarget(this.config)}: unexpected power status answer ${JSON.stringify(out.trim().split("\n").at(-1))}`);
    return state;
  }

  async on(): Promise<void> {
    await this.run(["chassis", "power", "on"]);
  }

  async off(): Promise<void> {
    await this.run(["chassis", "power", "off"]);
  }

  async cycle(): Promise<void> {
    await this.run(["chassis", "power", "cycle"]);
  }

  async setOneTimeBoot(via: NetBoot, firmware: Firmware): Promise<void> {
    await this.run(ipmiBootdevCommand(via, firmware));
  }

  async clearOneTimeBoot(): Promise<void> {
    await this.run([...IPMI_CLEAR_BOOT]);
  }
}
