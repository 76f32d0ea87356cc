import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect } from "vitest";
import { type AmandaLab, amandaLab, amandaLabUnavailable } from "../../helpers/amanda-lab.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { describeNeeding, itNeeding } from "../../helpers/needs.ts";
import { tempDir } from "../../helpers/tmp.ts";

/**
 * A bundle of the real Amanda 3.5 lab: its config files, its trace logs, every index file and
 * `amadmin CONFIG export` (run as the dump user) go in, byte for byte.
 */
describeNeeding(amandaLabUnavailable(), "a recovery bundle of a real Amanda config", () => {
  let lab: AmandaLab;
  const root = tempDir("lifeboat-bundle-lab-");
  beforeAll(async () => {
    lab = await amandaLab();
  }, 600_000);
  afterAll(async () => lab?.release());

  itNeeding(
    null,
    "holds amanda.conf, disklist, tapelist, changer state, trace logs, index and amadmin export",
    async () => {
      const configFile = join(root, "lifeboat.yaml");
      writeFileSync(configFile, `amanda:\n  - name: ${lab.config}\n    configDir: ${lab.configDir}\ncatalog:\n  refreshMinutes: 0\n`);
      const bundle = join(root, "lab.bundle");
      const ex = await lifeboat(["store", "export", "--out", bundle, "--config", configFile, "--data-dir", join(root, "data"), "--json"]);
      expect(ex.exitCode, ex.stderr).toBe(0);
      expect(JSON.parse(ex.stdout)).toMatchObject({ notes: [] });
      const out = join(root, "x");
      await execa("mkdir", [out]);
      await execa("tar", ["-xf", bundle, "-C", out]);
      const files = join(out, "amanda", lab.config, "files");
      for (const f of ["amanda.conf", "disklist", "tapelist"]) expect(readFileSync(join(files, lab.configDir, f))).toEqual(readFileSync(join(lab.configDir, f)));
      expect(readFileSync(join(files, lab.vtapes, "state"))).toEqual(readFileSync(join(lab.vtapes, "state")));
      const indexdir = join(lab.root, "state", "index");
      const indexFiles = readdirSync(indexdir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => relative(indexdir, join(e.parentPath, e.name)));
      expect(indexFiles.length).toBeGreaterThan(2);
      for (const f of indexFiles) expect(readFileSync(join(files, indexdir, f))).toEqual(readFileSync(join(indexdir, f)));
      const logs = readdirSync(lab.logdir).filter((n) => /^log\.\d+\.\d+$/.test(n));
      expect(readdirSync(join(files, lab.logdir)).sort()).toEqual(logs.sort());
      const direct = await lab.amanda(["amadmin", lab.config, "export"]);
      expect(direct.exitCode).toBe(0);
      const exported = readFileSync(join(out, "amanda", lab.config, "amadmin-export"), "utf8");
      expect(exported).toContain("CURINFO Version");
      const undated = (t: string) => t.replace(/^#    date: .*$/m, "");
      expect(undated(exported)).toBe(undated(`${String(direct.stdout)}\n`));
    },
    300_000,
  );
});
