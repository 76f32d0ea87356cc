import { describe, expect, it } from "vitest";
import type { CatalogDump } from "../../../server/amanda/model.ts";
import { restoreChains } from "../../../server/jobs/job-plan.ts";

function dump(p: Partial<CatalogDump> & Pick<CatalogDump, "disk" | "level" | "datestamp">): CatalogDump {
  return {
    id: `${p.disk}-${p.datestamp}-${p.level}`,
    amanda: "daily",
    host: "web1",
    program: "amgtar",
    compression: "gzip",
    compressProgram: null,
    encrypted: false,
    sizeBytes: 100,
    origKb: 1,
    crc: { native: null, client: null, server: null },
    location: { kind: "vtape", label: "V1", fileNo: 1 },
    status: "ok",
    problem: null,
    sources: ["log"],
    ...p,
  };
}

describe("restore chains for a job", () => {
  const catalog = [
    dump({ disk: "/", level: 0, datestamp: "20261101000000" }),
    dump({ disk: "/", level: 1, datestamp: "20261102000000" }),
    dump({ disk: "/home", level: 0, datestamp: "20261101000000", compression: "none", program: "DUMP" }),
    dump({ disk: "/srv", level: 0, datestamp: "20261101000000", compression: "custom", compressProgram: "/usr/bin/zstd" }),
  ];

  it("maps each DLE to its mount point, parents first, with program and compression the agent undoes", () => {
    const chains = restoreChains(catalog, "web1", { "/home": "/home", "/": "/", "/srv": "/srv" }, null);
    expect(chains.map((c) => [c.mountpoint, c.program, c.dumps.map((d) => `${d.level}:${d.compression}`)])).toEqual([
      ["/", "gtar", ["0:gzip", "1:gzip"]],
      ["/srv", "gtar", ["0:zstd"]],
      ["/home", "dump", ["0:none"]],
    ]);
  });

  it("honours the point in time", () => {
    expect(restoreChains(catalog, "web1", { "/": "/" }, "20261101")[0]!.dumps.map((d) => d.level)).toEqual([0]);
  });

  it("refuses encrypted dumps and unknown compressors by name", () => {
    expect(() => restoreChains([dump({ disk: "/", level: 0, datestamp: "20261101000000", encrypted: true })], "web1", { "/": "/" }, null)).toThrow(
      /which is encrypted \(not supported\)$/,
    );
    expect(() =>
      restoreChains([dump({ disk: "/", level: 0, datestamp: "20261101000000", compression: "custom", compressProgram: "/opt/lzfoo" })], "web1", { "/": "/" }, null),
    ).toThrow("compression custom (/opt/lzfoo) is not one the rescue agent can undo");
  });

  it("a DLE with no dumps is an error naming it, never a partial plan", () => {
    expect(() => restoreChains(catalog, "web1", { "/": "/", "/var": "/var" }, null)).toThrow('no dumps of web1:"/var" in the catalog');
  });
});
