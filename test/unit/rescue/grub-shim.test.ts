/**
 * install_bootloader uefi grub-shim (Secure Boot after the restore), its shell logic in dash:
 * the disk gate, the /dev /proc /sys binds and `chroot` are stand-ins defined over the
 * agent's (the real grub-install --uefi-secure-boot needs a restored Debian system with
 * shim-signed; the QEMU proof of that is not written yet). The stand-in grub-install writes
 * what Debian's does with --uefi-secure-boot into EFI/<id>/ and records its arguments.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { agentSh } from "./agent-sh.ts";

/** The target tree, with the signed packages' files when `signed`. */
function target(signed: boolean): string {
  const t = mkdtempSync(join(tmpdir(), "lbt-grubshim-"));
  mkdirSync(join(t, "boot/efi"), { recursive: true });
  if (signed) {
    mkdirSync(join(t, "usr/lib/shim"), { recursive: true });
    mkdirSync(join(t, "usr/lib/grub/x86_64-efi-signed"), { recursive: true });
    writeFileSync(join(t, "usr/lib/shim/shimx64.efi.signed"), "SHIM");
    writeFileSync(join(t, "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"), "GRUB");
  }
  return t;
}

// Stand-ins: no disk gate, no binds; chroot runs `command -v` as found and a grub-install that
// lays out EFI/<id> as Debian's does with --uefi-secure-boot (shim, signed GRUB, a grub.cfg).
const STANDINS = `
lb_gate() { return 0; }
lb_bind_system() { return 0; }
lb_uuid_links() { return 0; }
chroot() {
  _root=$1; shift
  case "$1" in
    sh) case "$3" in *grub-install*|*grub-mkconfig*) return 0;; *) return 1;; esac ;;
    grub-install)
      shift; echo "$*" > "$_root/grub-install.args"
      _id=; _efi=
      for _a in "$@"; do case $_a in --bootloader-id=*) _id=\${_a#*=};; --efi-directory=*) _efi=\${_a#*=};; esac; done
      case " $* " in *" --uefi-secure-boot "*) ;; *) return 1;; esac
      mkdir -p "$_root$_efi/EFI/$_id"
      cp "$_root/usr/lib/shim/shimx64.efi.signed" "$_root$_efi/EFI/$_id/shimx64.efi"
      cp "$_root/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" "$_root$_efi/EFI/$_id/grubx64.efi"
      echo "configfile (hd0,gpt2)/boot/grub/grub.cfg" > "$_root$_efi/EFI/$_id/grub.cfg" ;;
    grub-mkconfig) echo mkconfig > "$_root/mkconfig.ran" ;;
    *) return 1 ;;
  esac
}
`;

describe("install_bootloader uefi grub-shim", () => {
  it("runs grub-install --uefi-secure-boot and makes EFI/BOOT/BOOTX64.EFI shim, with the signed GRUB and its grub.cfg beside it", async () => {
    const t = target(true);
    const r = await agentSh(`${STANDINS}\nLB_TARGET="$1"; install_bootloader uefi grub-shim /dev/vda /boot/efi debian`, { args: [t] });
    expect(r.exitCode, r.stderr).toBe(0);
    const args = readFileSync(join(t, "grub-install.args"), "utf8");
    expect(args).toContain("--uefi-secure-boot");
    expect(args).toContain("--target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=debian");
    // No efivars (a BIOS-started system, as this test host may be): --no-nvram, as the agent decides.
    expect(args.includes("--no-nvram")).toBe(!existsSync("/sys/firmware/efi/efivars"));
    expect(readFileSync(join(t, "boot/efi/EFI/BOOT/BOOTX64.EFI"), "utf8")).toBe("SHIM");
    expect(readFileSync(join(t, "boot/efi/EFI/BOOT/grubx64.efi"), "utf8")).toBe("GRUB");
    expect(readFileSync(join(t, "boot/efi/EFI/BOOT/grub.cfg"), "utf8")).toContain("configfile");
    expect(existsSync(join(t, "mkconfig.ran"))).toBe(true);
  });

  it("a restored system without shim-signed and grub-efi-amd64-signed: one line naming the file, nothing installed", async () => {
    const t = target(false);
    const r = await agentSh(`${STANDINS}\nLB_TARGET="$1"; install_bootloader uefi grub-shim /dev/vda /boot/efi debian`, { args: [t] });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim()).toBe("install_bootloader: the restored system has no /usr/lib/shim/shimx64.efi.signed (shim-signed, grub-efi-amd64-signed)");
    expect(existsSync(join(t, "grub-install.args"))).toBe(false);
    expect(existsSync(join(t, "boot/efi/EFI/BOOT"))).toBe(false);
  });
});
