/**
 * The Amanda reader against a real Amanda 3.5 (test/helpers/amanda-lab.ts: three amdumps
 * of sample trees, cached between runs): catalog from logs, media and amadmin; `catalog
 * cat` byte-identical to amfetchdump; chains as amadmin find implies them; restoring a
 * chain with tar -xpG gives the tree as it was; the HTTP stream; bad input.
 */
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAmadminFind } from "../../../server/amanda/amadmin.ts";
import { selectChain } from "../../../server/amanda/chain.ts";
import { crc32c } from "../../../server/amanda/crc32c.ts";
import { openDumpStream } from "../../../server/amanda/stream.ts";
import type { DumpSummary } from "../../../server/amanda/dump-views.ts";
import { loadConfig } from "../../../server/config/load.ts";
import { createLogger } from "../../../server/log.ts";
import { type RunningServer, startServer } from "../../../server/serve.ts";
import { type AmandaLab, amandaLab, amandaLabUnavailable, treeManifest } from "../../helpers/amanda-lab.ts";
import { lifeboat, lifeboatBin } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { describeNeeding } from "../../helpers/needs.ts";

const unavailable = amandaLabUnavailable();

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** `lifeboat catalog cat` into a file (binary stdout), returning its bytes. */
async function cat(args: string[], out: string): Promise<{ exitCode: number; stderr: string; data: Buffer }> {
  const r = await execa(lifeboatBin, ["catalog", "cat", ...args], { reject: false, stdin: "ignore", stdout: { file: out }, env: { NO_COLOR: "1" } });
  return { exitCode: r.exitCode ?? 1, stderr: String(r.stderr), data: readFileSync(out) };
}

/** Runs tasks at most `n` at a time (Amanda's Perl tools are slow to start). */
async function limited<T>(n: number, tasks: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = [];
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < tasks.length) {
        const k = i++;
        out[k] = await tasks[k]!();
      }
    }),
  );
  return out;
}

describeNeeding(unavailable, "Amanda reader on a real Amanda 3.5", () => {
  let lab: AmandaLab;
  let dumps: DumpSummary[];
  let work: string;
  const dataDir = () => join(work, "data");

  beforeAll(async () => {
    lab = await amandaLab();
    work = tempDir("lifeboat-amanda-it-");
    const r = await lifeboat(["catalog", "list", "--amanda-dir", `/etc/amanda/${lab.config}`, "--data-dir", dataDir(), "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    dumps = JSON.parse(r.stdout) as DumpSummary[];
  });
  afterAll(() => lab?.release());

  it("catalogs every dump of every run: vtape parts, holding chunks, compression, and no warnings from logs, media or amadmin find", async () => {
    expect(dumps).toHaveLength(lab.runs.length * lab.dles.length);
    for (const dle of lab.dles)
      for (const run of lab.runs) {
        const d = dumps.find((x) => x.disk === dle.disk && x.datestamp === run.datestamp);
        expect(d, `${dle.disk} run ${run.run}`).toMatchObject({ host: "localhost", level: run.level, program: "amgtar", compression: dle.compressed ? "gzip" : "none", problem: null });
        expect(Object.keys(d!)).toEqual(expect.arrayContaining(["id", "host", "disk", "level", "datestamp", "program", "compression", "sizeBytes", "location"]));
        expect(d!.location.kind).toBe(run.taped ? "vtape" : "holding");
      }
    const plain0 = dumps.find((d) => d.disk === lab.dles[0]!.disk && d.level === 0)!;
    expect(plain0.location.parts!.length).toBeGreaterThan(1);
    const plain2 = dumps.find((d) => d.disk === lab.dles[0]!.disk && d.level === 2)!;
    expect(plain2.location.parts!.length).toBeGreaterThan(2);
  });

  it("catalog cat is byte-identical to amfetchdump -p -l (raw) and amfetchdump -p (decompressed) for every dump", async () => {
    const cases = dumps.flatMap((d) => [false, true].map((decompress) => ({ d, decompress })));
    // Ours (CLI, a few at a time) and Amanda's (one at a time: the vtape changer is one drive,
    // lab.amanda serialises across processes) side by side.
    const amfetchdumpAll = async () => {
      const out: Array<Awaited<ReturnType<AmandaLab["amanda"]>>> = [];
      for (const { d, decompress } of cases)
        out.push(await lab.amanda(["amfetchdump", "-a", "-p", ...(decompress ? [] : ["-l"]), "--exact-match", lab.config, d.host, d.disk, d.datestamp, String(d.level)], { encoding: "buffer" }));
      return out;
    };
    const [mine, theirs] = await Promise.all([
      limited(
        3,
        cases.map(({ d, decompress }) => () =>
          cat([d.id, "--amanda-dir", `/etc/amanda/${lab.config}`, "--data-dir", dataDir(), ...(decompress ? ["--decompress"] : [])], join(work, `${d.id}${decompress ? ".native" : ".raw"}`)),
        ),
      ),
      amfetchdumpAll(),
    ]);
    const results = cases.map((c, i) => ({ ...c, mine: mine[i]!, theirs: theirs[i]!.stdout as unknown as Uint8Array, theirsCode: theirs[i]!.exitCode, theirsErr: String(theirs[i]!.stderr) }));
    for (const r of results) {
      const what = `${r.d.disk} L${r.d.level} ${r.decompress ? "decompressed" : "raw"}`;
      expect(r.mine.stderr, what).toBe("");
      expect(r.mine.exitCode, what).toBe(0);
      expect(r.theirsCode, `${what}: amfetchdump: ${r.theirsErr}`).toBe(0);
      expect(r.mine.data.length, what).toBeGreaterThan(0);
      expect(sha(r.mine.data), what).toBe(sha(Buffer.from(r.theirs)));
    }
    // A raw stream is exactly the dump's recorded size (a decompressed one has no recorded size).
    const raw = results.filter((r) => !r.decompress);
    expect(raw.length).toBeGreaterThan(0);
    for (const r of raw) expect(r.mine.data.length, `${r.d.disk} L${r.d.level} raw`).toBe(r.d.sizeBytes);
  }, 240_000);

  it("the chain at each run equals what amadmin find implies, and restoring it with tar -xpG gives the tree as it was then", async () => {
    const find = parseAmadminFind(String((await lab.amanda(["amadmin", lab.config, "find"])).stdout)).filter((r) => r.status.startsWith("OK"));
    const cases = lab.dles.flatMap((dle) => lab.runs.map((run) => ({ dle, run })));
    const chains = await limited(
      4,
      cases.map(({ dle, run }) => () =>
        lifeboat(["catalog", "chain", dle.host, dle.disk, "--at", run.datestamp, "--amanda-dir", `/etc/amanda/${lab.config}`, "--data-dir", dataDir(), "--json"]),
      ),
    );
    for (const [i, { dle, run }] of cases.entries()) {
      {
        // What amadmin find implies: for each level up to this run's, the newest dump of that level at or before it.
        const mine = find.filter((r) => r.disk === dle.disk && r.datestamp <= run.datestamp);
        const expected = [...new Set(mine.map((r) => r.level))]
          .sort()
          .map((lv) => mine.filter((r) => r.level === lv).sort((a, b) => b.datestamp.localeCompare(a.datestamp))[0]!)
          .map((r) => ({ level: r.level, datestamp: r.datestamp, label: r.storage === "HOLDING" ? "HOLDING" : r.label, fileNo: r.fileNo }));
        const c = chains[i]!;
        expect(c.exitCode, c.stderr).toBe(0);
        const chain = JSON.parse(c.stdout) as { host: string; disk: string; dumps: DumpSummary[] };
        expect(chain).toMatchObject({ host: dle.host, disk: dle.disk });
        expect(chain.dumps.map((d) => ({ level: d.level, datestamp: d.datestamp, label: d.location.label, fileNo: d.location.fileNo }))).toEqual(expected);

        const dest = join(work, `restore-${dle.tag}-${run.run}`);
        mkdirSync(dest);
        for (const d of chain.dumps) {
          const tar = await execa("tar", ["-xpG", "--numeric-owner", "-f", join(work, `${d.id}.native`), "-C", dest], { reject: false });
          expect(tar.exitCode, tar.stderr).toBe(0);
        }
        const strip = (m: string) => m.split("\n").filter((l) => l && !l.startsWith(".|d|")).join("\n");
        expect(strip(await treeManifest(dest)), `${dle.disk} at run ${run.run}`).toBe(strip(lab.manifest(dle.tag, run.run)));
      }
    }
    // the deleted file really is gone after L1, and the hard link survives a restore
    const at2 = await treeManifest(join(work, "restore-plain-2"));
    expect(at2).not.toContain("dollar $name.txt");
    expect(await treeManifest(join(work, "restore-plain-1"))).toContain("./dollar $name.txt|f");
    expect(at2).toMatch(/\.\/sub dir\/hardlink-b\.txt\|f\|.*hardlink-group=\.\/hardlink-a\.txt/);
    expect(at2).toMatch(/\.\/owned-by-12345\|f\|0644\|u12345\|g54321/);
    expect(at2).toMatch(/\.\/sparse\.img\|f\|.*\|sparse/);
  }, 180_000);

  it("dumps on a physical tape go through amfetchdump -p, byte-identical; its stderr is kept in the error", async () => {
    const { catalogFromLogs } = await import("../../../server/amanda/catalog.ts");
    const { readAmandaConfig } = await import("../../../server/amanda/conf.ts");
    // The same config read as if its volumes were real tapes: no vtape root, so no file paths.
    const setup = { ...readAmandaConfig(`/etc/amanda/${lab.config}`), vtapeRoot: null };
    const onTape = (await catalogFromLogs(setup)).dumps.filter((d) => d.location.kind === "tape");
    expect(onTape).toHaveLength(4);
    const d = onTape.find((x) => x.disk === "Lab Docs $HOME" && x.level === 1)!;
    for (const decompress of [false, true]) {
      // Another test file may hold the lab's one vtape drive for a moment: try up to 3 times.
      let got: Buffer | null = null;
      for (let attempt = 0; attempt < 3 && !got; attempt++) {
        const s = openDumpStream(d, { decompress });
        expect(s.via).toBe("amfetchdump");
        const chunks: Buffer[] = [];
        try {
          for await (const c of s.stream) chunks.push(c as Buffer);
          got = Buffer.concat(chunks);
        } catch (err) {
          console.warn(`amfetchdump attempt ${attempt + 1}: ${(err as Error).message}`);
        }
      }
      expect(sha(got ?? Buffer.alloc(0))).toBe(sha(readFileSync(join(work, `${d.id}${decompress ? ".native" : ".raw"}`))));
    }
    const missing = openDumpStream({ ...d, datestamp: "20010101000000", crc: { native: null, client: null, server: null } });
    const err = await (async () => {
      try {
        for await (const _ of missing.stream) void _;
      } catch (e) {
        return (e as Error).message;
      }
      return "no error";
    })();
    expect(err).toMatch(/amfetchdump/);
    expect(err).toMatch(/No matching dumps found|no dumps|not found/i);
  }, 120_000);

  it("catalog refresh (through the running server) keeps Lifeboat's own copy: list and chain then work from the store alone", async () => {
    const cfg = join(work, "cli.yaml");
    writeFileSync(cfg, `amanda:\n  - name: ${lab.config}\n    configDir: /etc/amanda/${lab.config}\ncatalog:\n  refreshMinutes: 0\n`);
    const data = join(work, "cli-data");
    const server = await startServer(loadConfig({ file: cfg, overrides: { dataDir: data, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } }), createLogger("silent", { pretty: false }));
    try {
      const common = ["--config", cfg, "--data-dir", data];
      const r = await lifeboat(["catalog", "refresh", ...common, "--server", server.httpUrl, "--json"]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual([{ amanda: lab.config, dumps: 6, warnings: [], error: null }]);
      const list = await lifeboat(["catalog", "list", "--host", "localhost", ...common, "--json"]);
      expect(JSON.parse(list.stdout)).toEqual(dumps);
      const chain = await lifeboat(["catalog", "chain", "localhost", "Lab Docs $HOME", ...common, "--json"]);
      expect((JSON.parse(chain.stdout) as { dumps: DumpSummary[] }).dumps.map((d) => [d.level, d.location.kind])).toEqual([[0, "vtape"], [1, "vtape"], [2, "holding"]]);
      const bad = await lifeboat(["catalog", "refresh", "--amanda", "nope", ...common, "--server", server.httpUrl]);
      expect([bad.exitCode, bad.stderr.trim()]).toEqual([2, "lifeboat: POST /api/v1/catalog/refresh: 404 no Amanda config named nope in the Lifeboat config"]);
    } finally {
      await server.stop(100);
    }
  });

  it("the catalog from a media scan alone equals the one from logs, tapelist and amadmin", async () => {
    const scan = await lifeboat(["catalog", "scan", lab.vtapes, lab.holding, "--data-dir", dataDir(), "--json"]);
    expect(scan.exitCode, scan.stderr).toBe(0);
    expect(scan.stderr).toBe("");
    const strip = (ds: DumpSummary[]) => ds.map(({ amanda: _a, ...rest }) => rest);
    expect(strip(JSON.parse(scan.stdout) as DumpSummary[])).toEqual(strip(dumps));
  });

  describe("through the server", () => {
    let server: RunningServer;
    let token: string;
    let broken: string;
    const get = (path: string, headers: Record<string, string> = {}, method = "GET") =>
      fetch(`${server.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...headers } });

    beforeAll(async () => {
      // A damaged copy of the media (the lab itself stays intact): logs from the lab, media from the copy.
      broken = join(work, "broken");
      cpSync(lab.vtapes, join(broken, "vtapes"), { recursive: true });
      cpSync(lab.holding, join(broken, "holding"), { recursive: true });
      const cfg = join(work, "lifeboat.yaml");
      writeFileSync(
        cfg,
        [
          "amanda:",
          `  - name: ${lab.config}`,
          `    configDir: /etc/amanda/${lab.config}`,
          `  - name: broken`,
          `    configDir: /etc/amanda/${lab.config}`,
          `    vtapeRoot: ${join(broken, "vtapes")}`,
          `    holdingDirs: [${join(broken, "holding")}]`,
          "  - name: gone",
          `    configDir: ${join(work, "no-such-config")}`,
          "catalog:",
          "  refreshMinutes: 0",
        ].join("\n"),
      );
      const config = loadConfig({ file: cfg, overrides: { dataDir: join(work, "srv"), listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
      server = await startServer(config, createLogger("silent", { pretty: false }));
      token = server.ctx.adminToken;
    });
    afterAll(async () => server?.stop(100));

    it("refresh stores the catalog; a config dir that is gone is an error naming it and keeps the server up", async () => {
      const r = await fetch(`${server.httpUrl}/api/v1/catalog/refresh`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "{}" });
      expect(r.status).toBe(200);
      const res = (await r.json()) as Array<{ amanda: string; dumps: number; warnings: string[]; error: string | null }>;
      expect(res.find((x) => x.amanda === lab.config)).toMatchObject({ dumps: 6, warnings: [], error: null });
      expect(res.find((x) => x.amanda === "gone")!.error).toBe(`${join(work, "no-such-config")}: not an Amanda config directory (ENOENT); expected a directory with amanda.conf`);
      const list = (await (await get(`/api/v1/catalog/dumps?host=localhost&disk=${encodeURIComponent("Lab Docs $HOME")}`)).json()) as DumpSummary[];
      expect(list.map((d) => d.level).sort()).toEqual([0, 0, 1, 1, 2, 2]);
      const chain = await get(`/api/v1/catalog/chain?host=localhost&disk=${encodeURIComponent(lab.dles[0]!.disk)}&at=${lab.runs[1]!.datestamp}`);
      expect(((await chain.json()) as { dumps: DumpSummary[] }).dumps.map((d) => d.level)).toEqual([0, 1]);
      expect((await fetch(`${server.httpUrl}/api/v1/catalog/dumps`)).status).toBe(401);
    });

    it("streams raw and decompressed dumps with Content-Length, Range (206) and HEAD; the checked CRC-32C recorded in the audit log", async () => {
      const d = dumps.find((x) => x.disk === lab.dles[0]!.disk && x.level === 0)!;
      const raw = readFileSync(join(work, `${d.id}.raw`));
      const full = await get(`/api/v1/dumps/${d.id}/stream`);
      expect(full.status).toBe(200);
      expect(full.headers.get("content-length")).toBe(String(raw.length));
      expect(full.headers.get("accept-ranges")).toBe("bytes");
      expect(sha(Buffer.from(await full.arrayBuffer()))).toBe(sha(raw));
      const part = await get(`/api/v1/dumps/${d.id}/stream`, { range: "bytes=65000-140000" });
      expect(part.status).toBe(206);
      expect(part.headers.get("content-range")).toBe(`bytes 65000-140000/${raw.length}`);
      expect(Buffer.from(await part.arrayBuffer()).equals(raw.subarray(65000, 140001))).toBe(true);
      const head = await get(`/api/v1/dumps/${d.id}/stream`, {}, "HEAD");
      expect([head.status, head.headers.get("content-length")]).toEqual([200, String(raw.length)]);
      const gz = dumps.find((x) => x.disk === "Lab Docs $HOME" && x.level === 0)!;
      const dec = await get(`/api/v1/dumps/${gz.id}/stream?decompress=1`);
      expect(dec.status).toBe(200);
      expect(sha(Buffer.from(await dec.arrayBuffer()))).toBe(sha(readFileSync(join(work, `${gz.id}.native`))));
      await new Promise((r) => setTimeout(r, 100));
      const audit = await server.ctx.store.audit.list({ target: `dump:${d.id}` });
      expect(audit.some((a) => a.action === "dump.stream" && (a.detail as { crc32c: string }).crc32c === `${crc32c(raw)}:${raw.length}`)).toBe(true);
      expect((await fetch(`${server.httpUrl}/api/v1/dumps/${d.id}/stream`)).status).toBe(401);
    });

    it("bad media: truncated header, garbage in a slot, missing part, missing tape — clear errors, the server stays up", async () => {
      const plain = lab.dles[0]!;
      const byLevel = (disk: string, lv: number) => dumps.find((x) => x.disk === disk && x.level === lv)!;
      const slotOf = (label: string) => readdirSync(join(broken, "vtapes")).filter((s) => /^slot\d+$/.test(s)).find((s) => readdirSync(join(broken, "vtapes", s)).some((f) => f === `00000.${label}`))!;
      const l0 = byLevel(plain.disk, 0);
      const s1 = join(broken, "vtapes", slotOf(l0.location.label));
      const parts = readdirSync(s1).filter((f) => !f.startsWith("00000.") && f.includes("plain")).sort();
      rmSync(join(s1, parts[2]!)); // missing part 3 of the split level 0
      writeFileSync(join(s1, "00042.garbage"), "not an Amanda file"); // garbage file in a slot
      const gz1 = byLevel("Lab Docs $HOME", 1);
      rmSync(join(broken, "vtapes", slotOf(gz1.location.label)), { recursive: true }); // tape gone
      const hold = byLevel("Lab Docs $HOME", 2);
      const holdFile = join(broken, "holding", hold.datestamp, `localhost.Lab Docs $HOME.2`);
      writeFileSync(holdFile, readFileSync(holdFile).subarray(0, 5000)); // truncated header

      const r = (await (
        await fetch(`${server.httpUrl}/api/v1/catalog/refresh`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ amanda: "broken" }) })
      ).json()) as Array<{ warnings: string[]; error: string | null }>;
      expect(r[0]!.error).toBeNull();
      expect(r[0]!.warnings).toEqual(
        expect.arrayContaining([
          `${join(s1, "00042.garbage")}: bad Amanda header at byte 18: truncated: 18 bytes, expected 32768`,
          `${holdFile}: bad Amanda header at byte 5000: truncated: 5000 bytes, expected 32768`,
        ]),
      );
      const brokenDumps = await server.ctx.store.catalog.list({ amanda: "broken" });
      const problem = (id: string) => brokenDumps.find((d) => d.id === id)?.problem;
      expect(problem(l0.id)).toBe(`part 3 of ${"localhost:" + JSON.stringify(plain.disk)} L0 ${l0.datestamp} (file ${l0.location.parts![2]!.fileNo} of ${l0.location.label}) is missing`);
      expect(problem(gz1.id)).toBe(`tape ${gz1.location.label} (part 1 of localhost:"Lab Docs $HOME" L1 ${gz1.datestamp}) is not in any slot of ${join(broken, "vtapes")}`);
      expect(brokenDumps.some((d) => d.id === hold.id)).toBe(false);

      // The stream refuses before sending a byte (the store lookup finds the first config's copy by id, so ask the broken one directly).
      expect(() => openDumpStream(brokenDumps.find((d) => d.id === l0.id)!)).toThrow(/part 3 of .* is missing/);
      // a chain through the lost tape names it, never a partial chain
      expect(() => selectChain(brokenDumps, "localhost", "Lab Docs $HOME", gz1.datestamp)).toThrow(
        `chain of localhost:"Lab Docs $HOME" at ${gz1.datestamp} needs localhost:"Lab Docs $HOME" L1 ${gz1.datestamp}, which cannot be read: tape ${gz1.location.label}`,
      );
      const ok = (await (await get("/healthz")).json()) as { status: string };
      expect(ok.status).toBe("ok");
    });

    it("wrong config dir and unknown dump ids are one-line errors", async () => {
      const bad = await lifeboat(["catalog", "list", "--amanda-dir", join(work, "nope"), "--data-dir", dataDir()]);
      expect(bad.exitCode).toBe(2);
      expect(bad.stderr.trim()).toBe(`lifeboat: ${join(work, "nope")}: not an Amanda config directory (ENOENT); expected a directory with amanda.conf`);
      const notConf = await lifeboat(["catalog", "list", "--amanda-dir", lab.vtapes, "--data-dir", dataDir()]);
      expect(notConf.stderr.trim()).toBe(`lifeboat: ${lab.vtapes}/amanda.conf: not an Amanda config directory (ENOENT); expected a directory with amanda.conf`);
      expect((await get("/api/v1/dumps/0000000000000000/stream")).status).toBe(404);
      const noId = await cat(["0000000000000000", "--amanda-dir", `/etc/amanda/${lab.config}`, "--data-dir", dataDir()], join(work, "none"));
      expect([noId.exitCode, noId.stderr.trim()]).toEqual([2, "lifeboat: no dump 0000000000000000 in the catalog (see `lifeboat catalog list`)"]);
    });
  });
});
