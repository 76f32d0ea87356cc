/**
 * The whole job for a real host (issue 18 §1), the same story `bash scripts/demo` tells
 * (demo/whole-job.ts), under UEFI with Secure Boot enforced (OVMF, Microsoft's keys): a Debian 12 server
 * booting through Debian's shim and signed GRUB backed up over the network by
 * a real Amanda (two DLEs, level 0 to vtape, level 1 on the holding disk), its layout
 * uploaded by capture.sh from its cron line, its disk destroyed; armed with `jobs arm --power`,
 * its BMC (OpenIPMI's ipmi_sim, whose chassis control runs web1's QEMU: the test never starts
 * or stops it from there on) sets a one-time network boot and powers it on; it network-boots
 * Lifeboat's rescue image through shim and the signed network GRUB (the rescue agent runs under
 * the kernel's lockdown), is restored (the plan installs shim again), reboots (the end state) and boots on its own from its
 * disk as itself; its disk is matched by serial, so nobody maps it. Prints the figures: time to
 * recover from `jobs arm --power` with nothing done in between, bytes, the guest's restore rate.
 */
import { expect, it } from "vitest";
import { type Story, runWholeJob } from "../../demo/whole-job.ts";
import { amandaLabUnavailable } from "../helpers/amanda-lab.ts";
import { describeNeeding } from "../helpers/needs.ts";
import { netnsUnavailable } from "../helpers/netns.ts";
import { qemuUnavailable } from "../helpers/qemu.ts";
import { sampleOsUnavailable } from "../helpers/sample-os.ts";
import { tempDir } from "../helpers/tmp.ts";

const skip = qemuUnavailable() ?? (await netnsUnavailable()) ?? amandaLabUnavailable() ?? sampleOsUnavailable() ?? undefined;
const MiB = 1024 * 1024;

describeNeeding(skip, "the whole job: a real Debian host backed up by Amanda dies and comes back as itself (UEFI, Secure Boot)", () => {
  const work = tempDir("lbwj-");
  const lines: string[] = [];

  it("backs up, captures, is destroyed, armed, restored over the network, and boots on its own as itself", async () => {
    let story: Story | undefined;
    try {
      story = await runWholeJob({
        firmware: "uefi",
        workDir: work,
        prefix: "lbwj",
        subnet: "10.231.60",
        mac: "52:54:00:3c:00:0a",
        drill: true,
        secureBoot: true,
        narrator: {
          stage: (t) => lines.push(`== ${t}`),
          say: (l) => lines.push(l),
          progress: () => undefined,
          detail: () => undefined,
          watch: "capture",
        },
      });
      const s = story;
      // 1. Amanda backed it up over the network: two DLEs, a level 0 on vtape and a level 1 on the holding disk.
      expect(s.dumps.map((d) => [d.disk, d.level, d.location.kind]).sort()).toEqual([
        ["/", 0, "vtape"],
        ["/", 1, "holding"],
        ["/home", 0, "vtape"],
        ["/home", 1, "holding"],
      ]);
      // 2. capture.sh uploaded the real layout: one GPT disk, ESP + / + /home, booted through shim under Secure Boot.
      expect(s.layout.disks.map((d) => [d.path, d.table?.label, d.table?.partitions.length])).toEqual([["/dev/vda", "gpt", 3]]);
      expect(s.before.secureBoot).toBe("SecureBoot enabled");
      expect(s.layout.boot).toMatchObject({ firmware: "uefi", shim: true, secureBoot: true });
      // 2b. Before the disaster, a drill proved it comes back: its chains restored through the rescue
      // image and plan into the server's throwaway machine, booted to its login prompt; every byte.
      expect(s.drill, s.tail()).toMatchObject({ host: "web1", passed: true, reason: null });
      expect(s.drill!.bytes).toBe(s.dumps.reduce((a, d) => a + d.sizeBytes, 0));
      for (const k of ["restoreSeconds", "bootSeconds", "recoverSeconds"] as const) expect(s.drill![k]).toBeGreaterThan(0);
      expect(s.recoverability).toMatchObject({ recoverable: true, reasons: [], lastDrill: { job: s.drill!.job, passed: true } });
      // 3. The disk was destroyed: no partition table left.
      expect(s.destroyedTable).toMatch(/does not contain a recognized partition table/);
      // 4. The plan recreated the disk and restored both chains; the job is done with every byte.
      expect(s.plan).toMatch(/^restore_dump \/ gtar 0 /m);
      expect(s.plan).toMatch(/^restore_dump \/home gtar 1 /m);
      expect(s.plan).toMatch(/^install_bootloader uefi grub-shim( |$)/m);
      expect(s.job.state).toBe("done");
      expect(s.job.bytesDone).toBe(s.job.bytesTotal);
      expect(s.figures.bytesRestored).toBe(s.dumps.reduce((a, d) => a + d.sizeBytes, 0));
      // 4b. Zero touch: from `jobs arm --power` on, only the BMC started it, once (one power-on, PXE
      // first as set), the reboot was the end state's, and the one-time boot was cleared after done.
      expect(s.bmcCalls).toEqual(["0x20 set boot pxe", "0x20 set power 1", "power-on 1: boot pxe", "0x20 set boot none"]);
      const power = s.events.filter((e) => e.type === "power").map((e) => (e.data as { step: string; error?: string }).step);
      expect(power).toEqual(["status", "set-boot", "on", "clear-boot"]);
      expect(s.events.some((e) => e.type === "done" && (e.data as { endState?: string }).endState === "reboot")).toBe(true);
      // 5. It booted on its own from its disk as itself (Secure Boot still enforced: identity's
      // secureBoot), reached over the LAN with its old host key.
      expect(s.after).toEqual({ ...s.before, level1: s.level1Written });
      expect(s.before.level1).toBe("");
      expect(Object.keys(s.after.uuids)).toEqual(["/", "/home", "/boot/efi"]);
      // Its reset booted the network first, as that power-on: shim and the signed network GRUB,
      // whose configuration from Lifeboat (no job) started the disk's \EFI\BOOT\BOOTX64.EFI, the
      // shim the recovery put there; so the firmware's entry in use stays its PXE one.
      expect(s.bootScriptAfter).toMatch(/^exit 1$/m);
      expect(s.sentToDisk).toBe(true);
      expect(s.efiEntry).toMatch(/PXEv4/);
      // The recovery's grub-install --uefi-secure-boot wrote the NVRAM entry "debian" → shim.
      expect(s.nvram).toMatch(/^Boot[0-9A-F]{4}\*? debian\s.*\\EFI\\debian\\shimx64\.efi/im);
      const f = s.figures;
      console.log(
        [
          `whole job (UEFI with Secure Boot, ${process.env.LIFEBOAT_ACCEL ?? "TCG"}): time to recover ${f.recoverSeconds.toFixed(0)} s (jobs arm --power → restored system answers, nothing done in between)`,
          `  restored ${(f.bytesRestored / MiB).toFixed(0)} MiB in ${f.restoreSeconds.toFixed(1)} s: ${f.restoreMiBs.toFixed(1)} MiB/s (curl → tar)`,
          `drill (${s.drill!.accel}): restore ${s.drill!.restoreSeconds} s, boot ${s.drill!.bootSeconds} s, time to recover ${s.drill!.recoverSeconds} s, ${(s.drill!.bytes / MiB).toFixed(0)} MiB`,
        ].join("\n"),
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- story ---\n${lines.join("\n")}`, { cause: err });
    } finally {
      await story?.cleanup();
    }
  }, 3_600_000);
});
