/**
 * QEMU for drills (and the tests' machines, test/helpers/qemu.ts): the accelerator, the firmware
 * arguments, OVMF's variable store, and a started machine whose serial console goes to a file.
 * The argument builders are pure; `startQemu` is the edge.
 */
import { accessSync, constants, copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ResultPromise, execa } from "execa";

export const QEMU = "/usr/bin/qemu-system-x86_64";
export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
export const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

export interface Accelerator {
  name: "kvm" | "tcg";
  args: string[];
}

/**
 * KVM where a hardware KVM module is loaded and /dev/kvm opens for this user, else TCG (on some
 * machines /dev/kvm is a software hypervisor on which iPXE crashes, and neither module is loaded).
 */
export function qemuAccelerator(): Accelerator {
  if (existsSync("/sys/module/kvm_intel") || existsSync("/sys/module/kvm_amd")) {
    try {
      accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
      return { name: "kvm", args: ["-accel", "kvm", "-cpu", "host"] };
    } catch {
      // not usable by this user: TCG
    }
  }
  return { name: "tcg", args: ["-accel", "tcg"] };
}

/** Secure Boot enforced: OVMF built with SMM and Secure Boot, and a variable store with Microsoft's keys enrolled (Debian's ovmf). */
export const OVMF_SB_CODE = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
const OVMF_SB_VARS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/** A fresh copy of OVMF's variable store (a machine's NVRAM: boot entries live there); with Microsoft's keys for Secure Boot. */
export function freshOvmfVars(workDir: string, name: string, secureBoot = false): string {
  const vars = join(workDir, `vars-${name}.fd`);
  copyFileSync(secureBoot ? OVMF_SB_VARS : OVMF_VARS, vars);
  return vars;
}

/**
 * QEMU's firmware arguments: SeaBIOS on `pc`, or OVMF on `q35` with the given variable store;
 * `secureBoot`: the Secure Boot OVMF, which needs SMM and a secure flash.
 */
export function firmwareArgs(firmware: "bios" | "uefi", vars: () => string, secureBoot = false): string[] {
  if (firmware === "bios") return ["-machine", "pc"];
  const code = ["-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${secureBoot ? OVMF_SB_CODE : OVMF_CODE}`, "-drive", `if=pflash,format=raw,unit=1,file=${vars()}`];
  if (!secureBoot) return ["-machine", "q35", ...code];
  return ["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on", ...code];
}

export interface Vm {
  proc: ResultPromise;
  serial(): string;
  /** Resolves when `re` shows up in the serial log; rejects on timeout or when QEMU exits first. */
  waitSerial(re: RegExp, timeoutMs: number): Promise<void>;
  kill(): Promise<void>;
}

/** The Vm handle of a started QEMU process whose serial console goes to `serialLog`. */
export function vmHandle(proc: ResultPromise, serialLog: string): Vm {
  const serial = () => (existsSync(serialLog) ? readFileSync(serialLog, "latin1") : "");
  return {
    proc,
    serial,
    waitSerial: async (re, timeoutMs) => {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (re.test(serial())) return;
        if (proc.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      if (re.test(serial())) return;
      throw new Error(`serial log never showed ${re} (${proc.exitCode !== null ? `QEMU exited ${proc.exitCode}` : "timeout"}); last lines:\n${serial().slice(-1500)}`);
    },
    kill: async () => {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      await Promise.race([proc, new Promise((r) => setTimeout(r, 3000))]);
    },
  };
}

/** Starts QEMU with `args`, its serial console (stdout under -nographic) into `serialLog`. */
export function startQemu(args: string[], serialLog: string): Vm {
  writeFileSync(serialLog, "");
  const proc = execa(QEMU, args, { reject: false, stdin: "ignore", stdout: { file: serialLog }, stderr: { file: `${serialLog}.stderr` } });
  return vmHandle(proc, serialLog);
}
