/** server/README.md's arrows: the domain, the store, config and the shared files never import a shell. */
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SERVER = resolve(import.meta.dirname, "../../../server");
const SHELLS = ["cli/", "http/", "dhcp/", "tftp/", "serve.ts"];
const BELOW = ["jobs", "plan", "layout", "amanda", "bundle", "power", "drill", "store", "config"];

/** Every import specifier of a file that points inside server/, as a path relative to server/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map((m) => relative(SERVER, resolve(dirname(file), m[1]!)));
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => join(dir, f));
}

describe("rooms", () => {
  it("no file of the domain (power included), the store, config or the shared files imports from cli/, http/, dhcp/, tftp/ or serve.ts", () => {
    const files = [...BELOW.flatMap((d) => tsFiles(join(SERVER, d))), ...readdirSync(SERVER).filter((f) => f.endsWith(".ts") && f !== "serve.ts").map((f) => join(SERVER, f))];
    expect(files.length).toBeGreaterThan(50);
    const upward = files.flatMap((f) => importsOf(f).filter((i) => SHELLS.some((s) => i.startsWith(s))).map((i) => `${relative(SERVER, f)} -> ${i}`));
    expect(upward).toEqual([]);
  });
});
