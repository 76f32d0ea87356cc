/**
 * Restore rate in the rescue guest against `dd` of the same bytes (issue 19 goal 4), in one
 * QEMU boot (TCG here, KVM where usable) of the project's rescue image with one virtio disk,
 * against a real Lifeboat server streaming a real Amanda dump (bench/big-dump.ts: one gtar
 * level 0 of SIZE_MIB MiB of random data, compress none). Over the image's remote-help SSH,
 * with the admin token, the guest times on the same bytes onto the same disk:
 *   dd           curl | dd of=/dev/vda bs=1M conv=fsync          (the reference, first and last,
 *                after one such pass not counted: onto a disk image the host had not allocated
 *                or flushed, the first ran at a quarter of the rate)
 *   null         curl > /dev/null                                (the network and curl alone)
 *   sha          curl | sha256sum
 *   sha-local    head -c SIZE /dev/zero | sha256sum               (the hash alone, no network)
 *   tar          curl | tar -x onto a fresh ext4 on the disk, sync
 *   tee-sha-tar  curl | tee FIFO | tar -x, sha256sum < FIFO, sync (the agent's pipeline, bare)
 * then the agent runs a real plan from Lifeboat (check_disk … make_fs, mount_fs, restore_dump,
 * unmount_all): its restore_dump step, and with unmount_all (the flush to the disk), timed
 * from its step events. Every guest case starts with the guest's caches dropped and includes
 * writing the bytes to the disk. Run as root, alone:
 *   flock /tmp/lifeboat-heavy.lock npx tsx bench/restore-guest.ts [SIZE_MIB=300]
 * The image (with its own admin key) is cached under /var/cache/lifeboat/restore-bench.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { GPT_TYPES } from "../server/layout/layout.ts";
import { renderKernelArgs } from "../server/plan/cmdline.ts";
import { CONTRACT_VERSION, renderPlan, step, type Step } from "../server/plan/steps.ts";
import { startQemu } from "../server/drill/qemu.ts";
import { imageWithAdminKey } from "../test/helpers/admin-image.ts";
import { qemuAccel } from "../test/helpers/qemu.ts";
import { bootToken, seedHost, standInPlan, testServer } from "../test/helpers/server.ts";
import { gptOnePartition } from "../test/integration/rescue/plans.ts";
import { bigDump } from "./big-dump.ts";

const SIZE_MIB = Number(process.argv[2] ?? 300);
const CACHE = "/var/cache/lifeboat/restore-bench";
const MiB = 1 << 20;
const DISK_BYTES = 2 * SIZE_MIB * MiB + 256 * MiB;
const SERIAL = "LBBENCH1";
const MAC = "52:54:00:19:04:01";

/** The guest's cases: each prints `RESULT NAME EXIT START END` (guest /proc/uptime, seconds). */
const GUEST = String.raw`
dev=/dev/vda mnt=/mnt/bench
mkdir -p $mnt
get() { curl -sSf -H "Authorization: Bearer $TOKEN" "$URL"; }
untar() { (cd $mnt && tar --extract --listed-incremental=/dev/null --numeric-owner --preserve-permissions -f -); }
fresh_fs() { umount $mnt 2>/dev/null; mkfs.ext4 -q -F $dev && mount $dev $mnt; }
run() {
  sync; echo 3 >/proc/sys/vm/drop_caches
  read -r _s _ </proc/uptime; eval "$2" >/tmp/$1.out 2>&1; _rc=$?; read -r _e _ </proc/uptime
  echo "RESULT $1 $_rc $_s $_e"; [ "$_rc" = 0 ] || tail -n 5 /tmp/$1.out
}
for c in $CASES; do
  case $c in
    dd | warm) run $c 'get | dd of=$dev bs=1M conv=fsync status=none' ;;
    null) run null 'get >/dev/null' ;;
    sha) run sha 'get | sha256sum' ;;
    sha-local) run sha-local 'head -c $SIZE /dev/zero | sha256sum' ;;
    tar) fresh_fs; run tar 'get | untar && sync' ;;
    tee-sha-tar) fresh_fs; rm -f /tmp/h; mkfifo /tmp/h
      run tee-sha-tar '{ sha256sum </tmp/h & } && get | tee /tmp/h | untar && wait && sync' ;;
  esac
done
umount $mnt 2>/dev/null
true
`;

async function ssh(port: number, key: string, command: string, input?: string) {
  return execa(
    "ssh",
    ["-i", key, "-p", String(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "root@127.0.0.1", command],
    { reject: false, ...(input === undefined ? { stdin: "ignore" as const } : { input }) },
  );
}

/** Guest results by case name: seconds, or the failure. */
function results(out: string): Map<string, number | string> {
  const m = new Map<string, number | string>();
  for (const [, name, rc, s, e] of out.matchAll(/^RESULT (\S+) (\d+) (\S+) (\S+)$/gm)) m.set(name!, rc === "0" ? Number(e) - Number(s) : `exit ${rc}`);
  return m;
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error("run as root (Amanda, the image build)");
  const { image, key } = await imageWithAdminKey(CACHE, "lifeboat-restore-bench", (l) => console.error(l));
  const dump = await bigDump(SIZE_MIB);

  const work = mkdtempSync(join(tmpdir(), "lifeboat-bench-restore-"));
  let release = false;
  let plan: Step[] = [];
  let dumpId = "";
  let size = 0;
  const server = await testServer({
    dataDir: join(work, "data"),
    config: (c) => (c.amanda = [{ name: dump.conf, configDir: join(dump.root, "config"), holdingDirs: [] }]),
    // The plan is withheld (the agent asks again every 15 s) until the SSH cases are done.
    planner: async () => (release ? standInPlan(renderPlan(plan), plan.length, { dumps: [dumpId], bytesTotal: size, endState: "hold" }) : { ok: false, reason: "bench: guest cases first" }),
  });
  let vm: ReturnType<typeof startQemu> | undefined;
  try {
    const admin = server.ctx.adminToken;
    const auth = { authorization: `Bearer ${admin}` };
    await fetch(`${server.httpUrl}/api/v1/catalog/refresh`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: "{}" });
    const dumps = (await (await fetch(`${server.httpUrl}/api/v1/catalog/dumps`, { headers: auth })).json()) as Array<{ id: string; sizeBytes: number }>;
    const d = dumps.sort((a, b) => b.sizeBytes - a.sizeBytes)[0];
    if (!d) throw new Error("no dump in the bench catalog");
    dumpId = d.id;
    size = d.sizeBytes;
    const port = new URL(server.httpUrl).port;
    const path = `/api/v1/dumps/${d.id}/stream`;
    // The vtape files into the host's page cache, so the guest's first case pays no host disk.
    await execa("curl", ["-sSf", "-o", "/dev/null", "-H", `authorization: Bearer ${admin}`, `${server.httpUrl}${path}`]);
    const core: Step[] = [
      step("check_disk", { dev: "/dev/vda", serial: SERIAL, wwn: "", size_bytes: DISK_BYTES }),
      step("wipe_disk", { dev: "/dev/vda", label_id: "19B4C2D3-4A5E-4F60-8A7B-9C0D1E2F3A4B" }),
      step("partition", { dev: "/dev/vda", sfdisk_script: gptOnePartition("/dev/vda1", DISK_BYTES, GPT_TYPES.linux, "19B4C2D3-4A5E-4F60-8A7B-9C0D1E2F3A4B") }),
      step("make_fs", { fstype: "ext4", dev: "/dev/vda1", uuid: "19b4c2d3-4a5e-4f60-8a7b-9c0d1e2f3a4c", label: "bench" }),
      step("mount_fs", { dev: "/dev/vda1", mountpoint: "/", fstype: "ext4", options: "" }),
      step("restore_dump", { mountpoint: "/", program: "gtar", level: 0, compression: "none", size_bytes: size, url: path }),
      step("unmount_all", {}),
      step("plan_done", { end_state: "hold" }),
    ];
    plan = [step("plan_begin", { contract: CONTRACT_VERSION, host: "bench", steps: core.length + 1 }), ...core];

    await seedHost(server, "bench", MAC);
    const job = await server.ctx.jobs.arm({ mac: MAC, actor: "bench" });
    const token = await bootToken(server, job);
    const disk = join(work, "disk.img");
    // Written in full here: a sparse file would make the guest's first pass pay the host's block allocation.
    await execa("dd", ["if=/dev/zero", `of=${disk}`, "bs=1M", `count=${DISK_BYTES / MiB}`, "conv=fsync", "status=none"]);
    const sshPort = 20000 + (process.pid % 20000);
    const args = renderKernelArgs({ server: `http://10.0.2.2:${port}`, job: job.id, token, mac: MAC });
    const bootAt = Date.now();
    vm = startQemu(
      [
        ...qemuAccel(), "-m", "1024", "-smp", "2", "-nographic", "-vga", "none", "-no-reboot",
        "-kernel", join(image, "vmlinuz"), "-initrd", join(image, "initramfs"), "-append", `console=ttyS0 quiet ${args}`,
        "-netdev", `user,id=n0,hostfwd=tcp:127.0.0.1:${sshPort}-:22`, "-device", `virtio-net-pci,netdev=n0,mac=${MAC}`,
        "-drive", `file=${disk},format=raw,if=none,id=d0,cache=writeback`, "-device", `virtio-blk-pci,drive=d0,serial=${SERIAL}`,
      ],
      join(work, "serial.log"),
    );
    await vm.waitSerial(/remote help: ssh/, 300_000);
    console.log(`${qemuAccel().join(" ")}: rescue system up after ${((Date.now() - bootAt) / 1000).toFixed(0)} s; dump ${d.id}, ${(size / MiB).toFixed(0)} MiB`);
    const env = `URL='http://10.0.2.2:${port}${path}' TOKEN='${admin}' SIZE=${size}`;
    const first = await ssh(sshPort, key, `${env} CASES='warm dd null sha sha-local tar tee-sha-tar' sh -s`, GUEST);
    if (first.exitCode !== 0) throw new Error(`the guest cases: ssh exit ${first.exitCode}: ${first.stderr}`);
    // A failed case's last lines.
    const said = first.stdout.split("\n").filter((l) => l && !l.startsWith("RESULT "));
    if (said.length) console.error(said.join("\n"));

    release = true;
    const until = Date.now() + 1_800_000;
    while (!["done", "failed"].includes((await server.ctx.jobs.get(job.id)).state) && Date.now() < until) await new Promise((r) => setTimeout(r, 1000));
    const events = await server.ctx.jobs.events(job.id);
    const at = (name: string, type: string) => {
      const e = events.find((x) => x.type === type && (x.data as { name?: string }).name === name);
      if (!e) throw new Error(`no ${type} of ${name}; job ${(events.at(-1)?.data as { error?: string })?.error ?? ""}`);
      if (type === "step-end" && (e.data as { exitStatus: number }).exitStatus !== 0) throw new Error(`${name} failed: ${(e.data as { output: string }).output}`);
      return Date.parse(e.at) / 1000;
    };
    const restore = at("restore_dump", "step-end") - at("restore_dump", "step-start");
    const flushed = at("unmount_all", "step-end") - at("restore_dump", "step-start");
    const last = await ssh(sshPort, key, `${env} CASES=dd sh -s`, GUEST);

    const r = results(first.stdout);
    const dd2 = results(last.stdout).get("dd");
    const rate = (s: number | string | undefined) => (typeof s === "number" ? `${s.toFixed(1).padStart(6)} s ${(size / MiB / s).toFixed(1).padStart(6)} MiB/s` : `FAILED (${s ?? "no result"})`);
    const dd = [r.get("dd"), dd2].filter((x): x is number => typeof x === "number");
    const ref = dd.length ? dd.reduce((a, b) => a + b) / dd.length : NaN;
    const rows: Array<[string, number | string | undefined]> = [
      ["(a) curl | dd of=/dev/vda conv=fsync, warm-up (not counted)", r.get("warm")],
      ["(a) the same, first", r.get("dd")],
      ["(a) the same, after the agent's restore", dd2],
      ["(c) curl > /dev/null", r.get("null")],
      ["(c) curl | sha256sum", r.get("sha")],
      ["(c) sha256sum of SIZE bytes of /dev/zero", r.get("sha-local")],
      ["(c) curl | tar -x onto ext4, sync", r.get("tar")],
      ["(c) curl | tee FIFO | tar -x, sha256sum < FIFO, sync", r.get("tee-sha-tar")],
      ["(b) the agent's restore_dump step", restore],
      ["(b) restore_dump + unmount_all (flushed)", flushed],
    ];
    for (const [what, s] of rows) console.log(`${what.padEnd(60)} ${rate(s)}`);
    const ratio = (s: number | string | undefined) => (typeof s === "number" ? `${(ref / s).toFixed(2)}x` : "-");
    console.log(`ratio (b) flushed / (a) mean of ${dd.length}: ${ratio(flushed)} throughput (restore_dump step alone ${ratio(restore)})`);
    console.log(`ratio tar alone / (a): ${ratio(r.get("tar"))}; tee+sha+tar / (a): ${ratio(r.get("tee-sha-tar"))}; curl | sha256sum / (a): ${ratio(r.get("sha"))}`);
    // Numbers from a busy machine mean little: say how busy it was.
    console.log(`machine: ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")} at the end`);
  } finally {
    await vm?.kill();
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).message}`);
  process.exitCode = 1;
});
