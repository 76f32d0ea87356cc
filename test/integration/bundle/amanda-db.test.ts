import { cpSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { execa } from "execa";
import { afterAll, beforeAll, expect } from "vitest";
import { type AmandaLab, amandaLab, amandaLabUnavailable } from "../../helpers/amanda-lab.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { describeNeeding, itNeeding } from "../../helpers/needs.ts";
import { tempDir } from "../../helpers/tmp.ts";

/**
 * The Amanda server lost (issue 23 item 3): a copy of the real Amanda 3.5 lab under its own
 * config name (the lab itself stays read-only) is exported in a bundle; then its config, trace
 * logs, curinfo and index are moved away and /etc/amanda/NAME is gone. `store import` into a
 * new data dir and `store amanda-db NAME` put them back: `amadmin NAME find`, `amadmin NAME
 * info` (the curinfo database) and amrecover's listing of a DLE equal their output before.
 */
describeNeeding(amandaLabUnavailable(), "the Amanda server's database put back from a recovery bundle", () => {
  let lab: AmandaLab;
  const root = tempDir("lifeboat-amanda-db-");
  const name = `lbdb-${process.pid}`;
  const srv = join(root, "srv");
  const etc = `/etc/amanda/${name}`;
  const asBackup = (argv: string[]) => execa("runuser", ["-u", "backup", "--", ...argv], { reject: false, stdin: "ignore" });
  const state = async () => {
    const find = await asBackup(["amadmin", name, "find"]);
    const info = await asBackup(["amadmin", name, "info"]);
    const disk = lab.dles.find((d) => d.tag === "plain")!.disk;
    // auth=local: amrecover starts the index server itself, no inetd needed.
    const recover = await execa("amrecover", [name, "-s", "localhost", "-t", "localhost", "-o", "auth=local"], {
      reject: false,
      cwd: root,
      input: `sethost localhost\nsetdisk ${disk}\nls\ncd data\nls\nquit\n`,
    });
    return { find: `${find.exitCode}\n${find.stdout}${find.stderr}`, info: `${info.exitCode}\n${info.stdout}${info.stderr}`, recover: `${recover.exitCode}\n${recover.stdout}` };
  };

  beforeAll(async () => {
    lab = await amandaLab();
    mkdirSync(srv);
    for (const d of ["config", "state", "vtapes", "holding"]) cpSync(join(lab.root, d), join(srv, d), { recursive: true, preserveTimestamps: true });
    const conf = join(srv, "config", "amanda.conf");
    writeFileSync(conf, readFileSync(conf, "utf8").replaceAll(`${lab.root}/`, `${srv}/`));
    await execa("chown", ["-R", "backup:backup", srv]);
    await execa("chmod", ["755", root]);
    rmSync(etc, { force: true });
    await execa("ln", ["-s", join(srv, "config"), etc]);
  }, 600_000);
  afterAll(async () => {
    rmSync(etc, { force: true });
    await lab?.release();
  });

  itNeeding(
    null,
    "export, lose config/logs/curinfo/index, import, amanda-db: amadmin find and info and amrecover's listing as before; a second run changes nothing; other bytes need --force",
    async () => {
      const before = await state();
      expect(before.find).toMatch(/^0\n/);
      expect(before.find).toContain("LAB-01");
      expect(before.info).toMatch(/Dumps: lev datestmp/);
      expect(before.recover).toContain("hardlink-a.txt");
      const yaml = join(root, "lifeboat.yaml");
      writeFileSync(yaml, `amanda:\n  - name: ${name}\n    configDir: ${join(srv, "config")}\ncatalog:\n  refreshMinutes: 0\n`);
      const bundle = join(root, "srv.bundle");
      const ex = await lifeboat(["store", "export", "--out", bundle, "--config", yaml, "--data-dir", join(root, "data1"), "--json"]);
      expect(ex.exitCode, ex.stderr).toBe(0);
      expect(JSON.parse(ex.stdout)).toMatchObject({ notes: [] });

      // The loss: the config, trace logs, curinfo and index gone (the media stay), /etc/amanda/NAME too.
      const lost = join(root, "lost");
      mkdirSync(lost);
      renameSync(join(srv, "config"), join(lost, "config"));
      renameSync(join(srv, "state"), join(lost, "state"));
      rmSync(etc);
      expect((await asBackup(["amadmin", name, "find"])).exitCode).not.toBe(0);

      const data = join(root, "data2");
      const im = await lifeboat(["store", "import", bundle, "--data-dir", data, "--json"]);
      expect(im.exitCode, im.stderr).toBe(0);
      const put = await lifeboat(["store", "amanda-db", name, "--data-dir", data, "--json"]);
      expect(put.exitCode, put.stderr).toBe(0);
      const r = JSON.parse(put.stdout) as { written: string[]; unchanged: string[]; linked: string; imported: boolean; infofile: string };
      expect(r.linked).toBe(etc);
      expect(r.imported).toBe(true);
      expect(r.infofile).toBe(join(srv, "state", "curinfo"));
      expect(r.written).toContain(join(srv, "config", "amanda.conf"));
      expect(r.written.some((f) => f.startsWith(join(srv, "state", "index")))).toBe(true);
      expect(r.unchanged).toEqual([join(srv, "vtapes", "state")]);
      expect((await execa("stat", ["-c", "%U", join(srv, "state", "log")])).stdout).toBe("backup");

      const after = await state();
      expect(after.find).toBe(before.find);
      expect(after.info).toBe(before.info);
      expect(after.recover).toBe(before.recover);

      // Again: nothing to write. A file changed since: refused in one line, nothing written, unless --force.
      const again = JSON.parse((await lifeboat(["store", "amanda-db", name, "--data-dir", data, "--json"])).stdout) as { written: string[] };
      expect(again.written).toEqual([]);
      writeFileSync(join(srv, "config", "disklist"), "changed since\n");
      const refused = await lifeboat(["store", "amanda-db", name, "--data-dir", data]);
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr.trim()).toBe(`lifeboat: 1 files exist here with other contents than the bundle's (first: ${join(srv, "config", "disklist")}); nothing written (--force replaces them)`);
      const forced = await lifeboat(["store", "amanda-db", name, "--data-dir", data, "--force", "--json"]);
      expect(forced.exitCode, forced.stderr).toBe(0);
      expect((JSON.parse(forced.stdout) as { written: string[] }).written).toEqual([join(srv, "config", "disklist")]);
      expect(readFileSync(join(srv, "config", "disklist"))).toEqual(readFileSync(join(lost, "config", "disklist")));
      const db = new Database(join(data, "lifeboat.db"), { readonly: true });
      const audited = db.prepare("SELECT action, target FROM audit WHERE action = 'store.amanda-db'").all();
      db.close();
      expect(audited).toEqual(Array.from({ length: 3 }, () => ({ action: "store.amanda-db", target: `amanda:${name}` })));
    },
    600_000,
  );
});
