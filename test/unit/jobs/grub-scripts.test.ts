import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GRUB_ENTRY, GRUB_RESCUE_FILES, RESCUE_CONSOLE, grubConfigMac, grubEntry, machineScript } from "../../../server/jobs/boot-scripts.ts";
import { parseKernelArgs } from "../../../server/plan/cmdline.ts";
import { openSource } from "../../../server/tftp/files.ts";
import { agentSh } from "../rescue/agent-sh.ts";

const base = "http://10.231.7.1:8080";
const mac = "52:54:00:07:00:21";

describe("the signed GRUB's configurations (shim chain)", () => {
  it("an armed machine: Debian's signed kernel and the initramfs over TFTP, with the cmdline.ts arguments the agent reads", async () => {
    const cfg = machineScript({ base, mac, job: { id: "job-42" }, token: "tok_en-1", format: "grub" });
    const linux = /^linux (\S+) (.*)$/m.exec(cfg);
    expect(linux?.[1]).toBe("/lifeboat/vmlinuz");
    expect(cfg).toMatch(/^initrd \/lifeboat\/initramfs$/m);
    expect(cfg).toMatch(/^boot$/m);
    expect(cfg).not.toMatch(/lifeboat_local/);
    // GRUB adds BOOT_IMAGE= in front; the keys are those iPXE's rescue script carries.
    const line = `BOOT_IMAGE=${linux![1]} ${linux![2]}`;
    expect(parseKernelArgs(line)).toEqual({ server: base, job: "job-42", token: "tok_en-1", mac });
    expect(line).toContain(RESCUE_CONSOLE);
    const ipxe = machineScript({ base, mac, job: { id: "job-42" }, token: "tok_en-1" });
    expect(parseKernelArgs(/^kernel \S+ (.*)$/m.exec(ipxe)![1]!)).toEqual(parseKernelArgs(line));
    const sh = await agentSh(`lb_parse_cmdline "$1"; printf '%s\\n' "$LB_SERVER" "$LB_JOB" "$LB_TOKEN" "$LB_MAC"`, { shell: ["dash"], args: [line] });
    expect(sh.stdout.split("\n").slice(0, 4)).toEqual([base, "job-42", "tok_en-1", mac]);
  });

  it("a rescue network that names another URL for Lifeboat (HTTP on a tagged VLAN): both loaders give the rescue system that one, not the one the boot reached", () => {
    const net = { vlan: 20, address: "10.231.20.60/24", server: "http://10.231.20.1:8080" };
    for (const format of ["grub", "ipxe"] as const) {
      const cfg = machineScript({ base, mac, job: { id: "job-42" }, token: "t", net, format });
      const line = /^(?:linux|kernel) \S+ (.*)$/m.exec(cfg)![1]!;
      expect(parseKernelArgs(line), format).toEqual({ server: "http://10.231.20.1:8080", job: "job-42", token: "t", mac, vlan: "20", ip: "10.231.20.60/24" });
    }
  });

  it("any other machine: no kernel, lifeboat_local set, so grub.cfg goes on to the disk", () => {
    const cfg = machineScript({ base, mac, format: "grub" });
    expect(cfg).toMatch(/^set lifeboat_local=1$/m);
    expect(cfg).toContain(`no recovery job for ${mac}`);
    expect(cfg).not.toMatch(/^\s*(linux|initrd|boot)\b/m);
  });

  it("the entry configuration asks for the machine's file by $net_default_mac and chainloads the disk's removable loader otherwise", () => {
    const e = grubEntry();
    expect(e).toMatch(/^source \$\{prefix\}\/lifeboat\/\$\{net_default_mac\}\.cfg$/m);
    // chainloader takes the device path from $root: the search sets root itself.
    expect(e).toMatch(/search --no-floppy --file --set=root \/EFI\/BOOT\/BOOTX64\.EFI/);
    expect(e).toMatch(/^\s*chainloader \/EFI\/BOOT\/BOOTX64\.EFI$/m);
    expect(GRUB_ENTRY).toBe("grub/grub.cfg");
  });

  it("a machine's file name → its MAC; anything else is not one", () => {
    expect(grubConfigMac(`grub/lifeboat/${mac}.cfg`)).toBe(mac);
    expect(grubConfigMac("grub/lifeboat/52:54:00:AB:cd:EF.cfg")).toBe("52:54:00:AB:cd:EF");
    for (const bad of ["grub/lifeboat/52:54:00:07:00.cfg", "grub/lifeboat/52:54:00:07:00:21.cfg.x", "lifeboat/52:54:00:07:00:21.cfg", "grub/lifeboat/../x.cfg", "grub/grub.cfg"])
      expect(grubConfigMac(bad), bad).toBeUndefined();
  });

  it("the rescue files are sent from where the generator says (outside the TFTP root), a missing one is 'File not found'", () => {
    const dir = mkdtempSync(join(tmpdir(), "lbt-grubfiles-"));
    writeFileSync(join(dir, "vmlinuz"), "KERNEL");
    expect(Object.keys(GRUB_RESCUE_FILES)).toEqual(["lifeboat/vmlinuz", "lifeboat/initramfs"]);
    const gen = (name: string) => (GRUB_RESCUE_FILES[name] ? { path: join(dir, GRUB_RESCUE_FILES[name]!) } : undefined);
    const s = openSource(join(dir, "no-root"), "/lifeboat/vmlinuz", { address: "10.231.7.9" }, gen);
    expect(s).toMatchObject({ ok: true, size: 6 });
    if (s.ok) s.close();
    expect(openSource(join(dir, "no-root"), "lifeboat/initramfs", { address: "10.231.7.9" }, gen)).toMatchObject({ ok: false, code: 1, message: "File not found" });
  });
});
