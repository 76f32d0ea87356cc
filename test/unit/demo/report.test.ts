import { describe, expect, it } from "vitest";
import { figuresTable, parseDemoArgs } from "../../../demo/report.ts";
import type { Figures } from "../../../demo/whole-job.ts";

describe("the demo's command line", () => {
  it("defaults: UEFI, not kept, port 8088", () => {
    expect(parseDemoArgs([])).toEqual({ options: { firmware: "uefi", secureBoot: true, keep: false, port: 8088, verbose: false } });
  });
  it("--firmware bios --keep --port 9000 --verbose", () => {
    expect(parseDemoArgs(["--firmware", "bios", "--keep", "--port", "9000", "--verbose"])).toEqual({ options: { firmware: "bios", secureBoot: false, keep: true, port: 9000, verbose: true } });
  });
  it("-h and --help ask for the usage", () => {
    expect(parseDemoArgs(["-h"])).toEqual({ help: true });
    expect(parseDemoArgs(["--firmware", "bios", "--help"])).toEqual({ help: true });
  });
  it("--secure-boot off runs UEFI without it", () => {
    expect(parseDemoArgs(["--secure-boot", "off"])).toEqual({ options: { firmware: "uefi", secureBoot: false, keep: false, port: 8088, verbose: false } });
    expect(parseDemoArgs(["--firmware", "bios", "--secure-boot", "off"])).toMatchObject({ options: { firmware: "bios", secureBoot: false } });
  });
  it.each([
    [["--firmware", "arm"], "--firmware: uefi or bios, not arm"],
    [["--secure-boot", "yes"], "--secure-boot: on or off, not yes"],
    [["--firmware", "bios", "--secure-boot", "on"], "--secure-boot on: only with --firmware uefi (BIOS has no Secure Boot)"],
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
    backupBytes: 600 * MiB,
    backupSeconds: 95,
    bytesRestored: 579 * MiB,
    restoreSeconds: 93.4,
    restoreMiBs: 6.2,
  };
  const lines = figuresTable(figures).split("\n");

  it("has one row per figure, each with its value and what it is compared to", () => {
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/time to recover \(jobs arm --power .*\s211 s\s+nothing done in between$/);
    expect(lines[1]).toMatch(/bytes restored .*\s579 MiB\s+Amanda wrote 600 MiB in 95 s$/);
    expect(lines[2]).toMatch(/guest restore rate .*\s6\.2 MiB\/s\s+93 s in restore_dump$/);
  });
  it("lines its values up in one column", () => {
    const comparisons = ["nothing done", "Amanda wrote", "93 s in"];
    const starts = lines.map((l, i) => l.indexOf(comparisons[i]));
    expect(starts.every((x) => x > 0)).toBe(true);
    expect(new Set(starts).size).toBe(1);
  });
});
