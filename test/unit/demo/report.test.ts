import { describe, expect, it } from "vitest";
import { figuresTable, parseDemoArgs } from "../../../demo/report.ts";
import type { Figures } from "../../../demo/whole-job.ts";

describe("the demo's command line", () => {
  it("defaults: UEFI, not kept, port 8088", () => {
    expect(parseDemoArgs([])).toEqual({ options: { firmware: "uefi", keep: false, port: 8088, verbose: false } });
  });
  it("--firmware bios --keep --port 9000 --verbose", () => {
    expect(parseDemoArgs(["--firmware", "bios", "--keep", "--port", "9000", "--verbose"])).toEqual({ options: { firmware: "bios", keep: true, port: 9000, verbose: true } });
  });
  it("-h and --help ask for the usage", () => {
    expect(parseDemoArgs(["-h"])).toEqual({ help: true });
    expect(parseDemoArgs(["--firmware", "bios", "--help"])).toEqual({ help: true });
  });
  it.each([
    [["--firmware", "arm"], "--firmware: uefi or bios, not arm"],
    [["--keep", "--port", "0"], "--port: a TCP port, not 0"],
    [["--keep", "--port", "70000"], "--port: a TCP port, not 70000"],
    [["--keep", "--port", "80x"], "--port: a TCP port, not 80x"],
    [["--port", "9000"], "--port: only with --keep (the port the admin page is forwarded to)"],
  ])("%j is refused in one line", (args, message) => {
    expect(parseDemoArgs(args)).toEqual({ error: message });
  });
  it("an unknown option or a stray argument is refused in one line", () => {
    for (const args of [["--fast"], ["web1"]]) {
      const parsed = parseDemoArgs(args);
      expect(parsed).toHaveProperty("error");
      expect((parsed as { error: string }).error).not.toContain("\n");
    }
  });
});

describe("the demo's closing table", () => {
  const MiB = 1024 * 1024;
  const figures: Figures = {
    recoverSeconds: 211.4,
    measureSeconds: 31.2,
    backupBytes: 600 * MiB,
    backupSeconds: 95,
    bytesRestored: 579 * MiB,
    restoreSeconds: 93.4,
    restoreMiBs: 6.2,
    fetch: { bytes: 544 * MiB, nullMiBs: 198, sha256MiBs: 46, ddMiBs: 21.6 },
    ratio: 6.2 / 21.6,
  };
  const lines = figuresTable(figures).split("\n");

  it("has one row per figure, each with its value and what it is compared to", () => {
    expect(lines).toHaveLength(6);
    expect(lines[0]).toMatch(/time to recover .*\s211 s\s+side measurement of 31 s taken out$/);
    expect(lines[1]).toMatch(/bytes restored .*\s579 MiB\s+Amanda wrote 600 MiB in 95 s$/);
    expect(lines[2]).toMatch(/guest restore rate .*\s6\.2 MiB\/s\s+93 s in restore_dump$/);
    expect(lines[3]).toMatch(/dd of the same bytes, .*\s21\.6 MiB\/s\s+restore\/dd = 0\.29×$/);
    expect(lines[4]).toMatch(/restore\/curl = 0\.03×$/);
    expect(lines[5]).toMatch(/restore\/sha = 0\.13×$/);
  });
  it("lines its values up in one column", () => {
    const comparisons = ["side measurement", "Amanda wrote", "93 s in", "restore/dd", "restore/curl", "restore/sha"];
    const starts = lines.map((l, i) => l.indexOf(comparisons[i]));
    expect(starts.every((x) => x > 0)).toBe(true);
    expect(new Set(starts).size).toBe(1);
  });
});
