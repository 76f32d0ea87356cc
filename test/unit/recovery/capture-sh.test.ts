import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

/**
 * capture.sh's JSON string encoder (jstr), taken from the script itself and run by real
 * shells and awks: whatever a file or tool prints must come out as valid JSON that decodes
 * to the same text.
 */

const captureSh = fileURLToPath(new URL("../../../server/layout/capture.sh", import.meta.url));
const jstrSource = /^jstr\(\) \{\n[\s\S]*?\n\}\n/m.exec(readFileSync(captureSh, "utf8"))![0];

async function jstr(shell: string, input: Buffer | string): Promise<string> {
  const cmd = shell === "busybox" ? ["busybox", "sh"] : [shell];
  const r = await execa(cmd[0]!, [...cmd.slice(1), "-c", `LC_ALL=C\n${jstrSource}jstr`], { input, stripFinalNewline: false, encoding: "buffer" });
  return Buffer.from(r.stdout).toString("utf8");
}

const samples = [
  "",
  "plain",
  "trailing newline\n",
  "two\n\ntrailing\n\n",
  'quote " backslash \\ both \\"',
  "tab\tcr\rformfeed\fbell\u0007esc\u001b",
  "\u0001\u001f\u007f",
  "ünïcødé ☃ 𝄞",
  "$HOME `id` $(id) 'single'",
  "a=b\\040c",
  "x".repeat(5000),
];

describe("capture.sh jstr", () => {
  for (const shell of ["sh", "busybox"])
    it(`round-trips awkward text through ${shell}`, async () => {
      for (const s of samples) {
        const out = await jstr(shell, s);
        expect(JSON.parse(out), JSON.stringify(s)).toBe(s);
      }
    });

  it("drops NUL bytes and keeps every other byte sequence valid JSON", async () => {
    expect(JSON.parse(await jstr("sh", "a\u0000b"))).toBe("ab");
    // Invalid UTF-8 passes through as bytes; decoded (as the server does) it is still valid JSON.
    const raw = await jstr("sh", Buffer.from([0x61, 0xff, 0x62]));
    expect(() => JSON.parse(raw)).not.toThrow();
  });

  it("random text round-trips (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "binary", maxLength: 200 }).filter((s) => !s.includes("\0")), async (s) => {
        expect(JSON.parse(await jstr("sh", s))).toBe(s);
      }),
      { numRuns: 40 },
    );
  });
});

describe("capture.sh options", () => {
  it("--help exits 0; unknown arguments and a missing token exit 2 with one line", async () => {
    const help = await execa("sh", [captureSh, "--help"], { reject: false });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain("--devices");
    const bad = await execa("sh", [captureSh, "--frobnicate"], { reject: false });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim().split("\n").at(-1)).toBe("capture.sh: unknown argument: --frobnicate");
    const noToken = await execa("sh", [captureSh, "--server", "http://127.0.0.1:9", "--host", "h"], { reject: false, env: { LIFEBOAT_TOKEN: "" } });
    expect(noToken.exitCode).toBe(2);
    expect(noToken.stderr).toContain("give --stdout, or --server, --host and a token");
    const notDev = await execa("sh", [captureSh, "--stdout", "--devices", "/etc/hostname"], { reject: false });
    expect(notDev.exitCode).toBe(2);
    expect(notDev.stderr.trim()).toBe("capture.sh: --devices: /etc/hostname is not a block device");
  });
});

describe("capture.sh picks the disks (issue 15 item 5)", () => {
  // pick_disks, taken from the script itself, fed a stand-in for `lsblk -dnpo NAME,TYPE,RM,TRAN`
  // (no removable or USB disk can be made here): what a machine with a stick and a card reader prints.
  const pickSource = /^pick_disks\(\) \{\n[\s\S]*?\n\}\n/m.exec(readFileSync(captureSh, "utf8"))![0];
  const LSBLK = [
    "/dev/sda     disk 0 sata",
    "/dev/sdb     disk 1 usb",
    "/dev/sdc     disk 0 usb",
    "/dev/mmcblk0 disk 1 ",
    "/dev/nvme0n1 disk 0 nvme",
    "/dev/vda     disk 0 ",
    "/dev/xvda    disk 0 ",
    "/dev/zram0   disk 0 ",
    "/dev/nbd0    disk 0 ",
    "/dev/sr0     rom  1 sata",
    "/dev/loop0   loop 0 ",
    "",
  ].join("\n");
  const pick = async (includeRemovable: 0 | 1) =>
    (await execa("sh", ["-c", `include_removable=${includeRemovable}\n${pickSource}pick_disks`], { input: LSBLK })).stdout.split("\n");

  it("internal disks of the kinds Lifeboat recreates; removable and USB ones only with --include-removable", async () => {
    expect(await pick(0)).toEqual(["/dev/sda", "/dev/nvme0n1", "/dev/vda", "/dev/xvda"]);
    expect(await pick(1)).toEqual(["/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/mmcblk0", "/dev/nvme0n1", "/dev/vda", "/dev/xvda"]);
  });
});

describe("capture.sh finds the NIC of the default route without iproute2 (issue 21)", () => {
  // default_route_dev, taken from the script, reads the kernel's table (/proc/net/route): a
  // minimal system (the sample one) has no `ip`, and its NIC still carried the default route.
  const source = /^default_route_dev\(\) \{\n[\s\S]*?\n\}\n/m.exec(readFileSync(captureSh, "utf8"))![0];
  const HEAD = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT";
  const routeDev = async (table: string) => (await execa("sh", ["-c", `${source}default_route_dev /dev/stdin`], { input: table })).stdout;

  it("the interface of the default route with the lowest metric; none without one", async () => {
    const table = [
      HEAD,
      "ens3\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
      "ens4\t00000000\t0105000A\t0003\t0\t0\t200\t00000000\t0\t0\t0",
      "ens3\t00000000\t0202000A\t0003\t0\t0\t100\t00000000\t0\t0\t0",
      // A host route to 0.0.0.0 is not the default route (its mask is not 0).
      "ens5\t00000000\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0",
      "",
    ].join("\n");
    expect(await routeDev(table)).toBe("ens3");
    expect(await routeDev(`${HEAD}\nens3\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n`)).toBe("");
  });
});
