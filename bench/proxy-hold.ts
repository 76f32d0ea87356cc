/**
 * The proxy OFFER hold (dhcp.proxyOfferDelayMs) against real PXE firmware: QEMU machines
 * (SeaBIOS + the NIC's iPXE ROM, and OVMF's own PXE → snponly.efi → iPXE) boot an unarmed
 * MAC in proxy mode beside dnsmasq (the LAN's DHCP server, no ping check: it answers at
 * once) with each hold given, and this prints, per DHCP exchange of each firmware stage,
 * when Lifeboat's OFFER went out, when the firmware sent its REQUEST to dnsmasq (the end
 * of its wait for proxy offers), whether it took Lifeboat's boot file, and the time from
 * power-on to the `exit` script. Also whether the console shows the :failed branch of
 * pxe/boot.ipxe after the `exit` script (issue 27 item 7). Heavy: run it alone,
 *   flock /tmp/lifeboat-heavy.lock npx tsx bench/proxy-hold.ts [holds=0,500,1500] [firmware=bios,uefi]
 * Namespace LAN 10.231.42.0/24 (prefix lbdh-bench); needs root, QEMU, OVMF, ipxe-qemu, dnsmasq.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLan, netnsUnavailable } from "../test/helpers/netns.ts";
import { bootVm, qemuUnavailable } from "../test/helpers/qemu.ts";
import { startRouter } from "../test/helpers/router.ts";
import { serveInNs } from "../test/integration/netboot/lifeboat-ns.ts";

const holds = (process.argv[2] ?? "0,500,1500").split(",").map(Number);
const firmwares = (process.argv[3] ?? "bios,uefi").split(",") as Array<"bios" | "uefi">;
const why = (await netnsUnavailable()) ?? qemuUnavailable();
if (why) {
  console.error(`bench/proxy-hold: ${why}`);
  process.exit(1);
}
const NET = "10.231.42";
const work = mkdtempSync(join(tmpdir(), "lifeboat-bench-hold-"));
const lan = await createLan({ prefix: "lbdh-bench", subnet: NET, members: { srv: 1, router: 2 } });
await lan.exec("router", ["ip", "-6", "addr", "add", "fd31:42:42::2/64", "dev", "eth0", "nodad"]);
await lan.addTap("tap0");

interface Exchange { stage: string; discovers: number; offerMs: number; requestMs?: number; ackMs?: number }

/** DHCP exchanges of `mac` from the server's debug log: one per firmware stage (the boot file it was offered). */
function exchanges(lines: Array<Record<string, unknown>>, mac: string, hold: number): Exchange[] {
  const out: Array<Exchange & { t0: number }> = [];
  let cur: (Exchange & { t0: number }) | undefined;
  for (const l of lines.filter((x) => x.svc === "dhcp" && x.mac === mac)) {
    const t = Number(l.time);
    if (l.kind === "proxy-offer") {
      const stage = String(l.file);
      if (cur?.stage === stage && cur.requestMs === undefined) cur.discovers++;
      else out.push((cur = { stage, discovers: 1, offerMs: hold, t0: t }));
    } else if (cur && /^ignored: REQUEST on 67/.test(String(l.msg)) && cur.requestMs === undefined) cur.requestMs = t - cur.t0;
    else if (cur && l.kind === "proxy-ack" && cur.ackMs === undefined) cur.ackMs = t - cur.t0;
  }
  return out.map(({ t0: _t0, ...e }) => e);
}

const rows: string[] = [];
try {
  for (const firmware of firmwares) {
    for (const hold of holds) {
      const name = `${firmware}-${hold}`;
      const mac = `52:54:00:29:42:${(rows.length + 16).toString(16)}`;
      const router = startRouter(lan, "router", work, name, `${NET}.160,${NET}.199`);
      const srv = await serveInNs(lan, "srv", join(work, name), { listen: { interface: "eth0" }, http: { port: 8080 }, dhcp: { mode: "proxy", proxyOfferDelayMs: hold } }, ["http", "tftp", "dhcp"]);
      const vm = bootVm({ lan, tap: "tap0", mac, firmware, serialLog: join(work, `${name}.serial`), workDir: work });
      const started = Date.now();
      let booted: number | undefined;
      let afterExit = "";
      try {
        await vm.waitSerial(new RegExp(`no recovery job for ${mac}, booting from local disk`), 240_000);
        booted = (Date.now() - started) / 1000;
        // What the console shows next: iPXE giving the machine back to the firmware, and no :failed branch.
        await vm.waitSerial(/No more network devices/, 30_000).catch(() => undefined);
        const serial = vm.serial();
        afterExit = serial.slice(serial.indexOf(`no recovery job for ${mac}`)).split(/\r?\n/).slice(1, 6).join(" | ").replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").slice(0, 160);
      } catch (err) {
        afterExit = `did not reach the exit script: ${(err as Error).message.split("\n")[0]}`;
      } finally {
        await vm.kill();
        await srv.stop();
        router.kill();
        await Promise.race([router, new Promise((r) => setTimeout(r, 2000))]);
      }
      const ex = exchanges(srv.lines(), mac, hold);
      const desc = ex.map((e) => `${e.stage.replace(/^http:\/\/[^/]+\//, "")}: ${e.discovers} DISCOVER, REQUEST to dnsmasq at ${e.requestMs ?? "-"} ms${e.ackMs !== undefined ? `, 4011 at ${e.ackMs} ms` : ""}`).join("; ");
      const failedBranch = /could not be fetched|no boot script/.test(afterExit);
      rows.push(`${firmware}\thold ${hold} ms\t${booted === undefined ? "NOT BOOTED" : `exit script after ${booted.toFixed(1)} s`}\t${desc}\t:failed branch shown: ${failedBranch ? "YES" : "no"}\tnext: ${afterExit}`);
      console.log(rows.at(-1));
    }
  }
} finally {
  await lan.down();
  rmSync(work, { recursive: true, force: true });
}
console.log(`\n${rows.join("\n")}`);
