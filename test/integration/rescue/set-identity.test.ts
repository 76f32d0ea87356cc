/**
 * set_identity, the clone's step: on a real ext4 on a loop device mounted as the target
 * root (root; CI runs as root), it gives the restored system its own host name, an empty
 * machine-id and no template SSH host keys; its guard and the disk-write gate hold.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { loopUnavailable, makeLoop } from "../recovery/loopdev.ts";
import { stepHarness } from "./step-harness.ts";
import { describeNeeding } from "../../helpers/needs.ts";

const MiB = 1024 * 1024;
const why = loopUnavailable();

describeNeeding(why, "set_identity (clones)", () => {
  const { dir, target, arm, disarm, step } = stepHarness("identity");

  it("writes the new identity into the restored root, and only behind the gate", async () => {
    const disk = await makeLoop(dir, "identity", 64 * MiB);
    arm();
    expect((await step(`check_disk "$1" "" "" ${64 * MiB} && make_fs ext4 "$1" "" root && mount_fs "$1" / ext4 ""`, [disk])).exitCode).toBe(0);
    // The template's identity, as a restore leaves it.
    mkdirSync(join(target, "etc/ssh"), { recursive: true });
    writeFileSync(join(target, "etc/hostname"), "tmpl\n");
    writeFileSync(join(target, "etc/hosts"), "127.0.0.1\tlocalhost\n127.0.1.1\ttmpl.example.org tmpl\n10.0.0.9\ttmplother\n");
    writeFileSync(join(target, "etc/machine-id"), "0123456789abcdef0123456789abcdef\n");
    writeFileSync(join(target, "etc/ssh/ssh_host_ed25519_key"), "TEMPLATE KEY\n");

    disarm();
    const refused = await step("set_identity web-3");
    expect(refused.exitCode).toBe(1);
    expect(readFileSync(join(target, "etc/hostname"), "utf8")).toBe("tmpl\n");

    arm();
    expect((await step("guard_set_identity web-3")).exitCode).toBe(1);
    const r = await step("set_identity web-3");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(target, "etc/hostname"), "utf8")).toBe("web-3\n");
    expect(readFileSync(join(target, "etc/hosts"), "utf8")).toBe("127.0.0.1\tlocalhost\n127.0.1.1\ttmpl.example.org web-3\n10.0.0.9\ttmplother\n");
    expect(readFileSync(join(target, "etc/machine-id"), "utf8")).toBe("");
    expect(readdirSync(join(target, "etc/ssh")).filter((f) => f.startsWith("ssh_host_"))).toEqual([]);
    expect(existsSync(join(target, "etc/ssh/ssh_host_ed25519_key"))).toBe(false);
    expect((await step("guard_set_identity web-3")).exitCode).toBe(0);
    expect((await step("set_identity")).exitCode).toBe(2); // wrong arity is refused
  });
});
