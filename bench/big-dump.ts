import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";

const repo = fileURLToPath(new URL("..", import.meta.url));

/**
 * An Amanda config holding one level-0 gtar dump of SIZE_MIB MiB of random data on vtapes
 * (scripts/amanda-lab/build-big.sh, one amdump), built once into
 * /var/cache/lifeboat/amanda-bench/v1-SIZE and reused. Needs root.
 */
export async function bigDump(sizeMiB: number): Promise<{ root: string; conf: string }> {
  const root = `/var/cache/lifeboat/amanda-bench/v1-${sizeMiB}`;
  const conf = `lifeboat-bench-${sizeMiB}`;
  if (!existsSync(join(root, "READY"))) {
    console.error(`building a ${sizeMiB} MiB Amanda dump in ${root} (once)...`);
    rmSync(root, { recursive: true, force: true });
    await execa(join(repo, "scripts/amanda-lab/build-big.sh"), [root, conf, String(sizeMiB)], { stdio: "inherit" });
    writeFileSync(join(root, "READY"), "");
  }
  return { root, conf };
}
