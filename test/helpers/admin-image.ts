import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { DEFAULT_CACHE_DIR, buildImage } from "../../rescue-image/build.ts";

/**
 * The rescue image with an admin SSH key of its own for remote help, both kept under CACHE
 * (CACHE/ssh/id_ed25519, CACHE/image) and rebuilt only when its inputs change.
 */
export async function imageWithAdminKey(cache: string, comment: string, progress: (line: string) => void): Promise<{ image: string; key: string }> {
  const key = join(cache, "ssh", "id_ed25519");
  if (!existsSync(key)) {
    mkdirSync(join(cache, "ssh"), { recursive: true });
    await execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key]);
  }
  const image = join(cache, "image");
  await buildImage({ cacheDir: DEFAULT_CACHE_DIR, outDir: image, sshKeys: [readFileSync(`${key}.pub`, "utf8").trim()], progress });
  return { image, key };
}
