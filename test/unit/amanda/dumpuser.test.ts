/**
 * The dump-user contract (server/amanda/dumpuser.ts): what Lifeboat builds is exactly what the
 * helper accepts, anything else is refused in one line, how a run is reached, and the framing.
 * The real helper under systemd: test/integration/amanda/dumpuser-helper.test.ts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FrameReader, amadminExportArgv, amadminFindArgv, amfetchdumpArgv, exitFrame, failureLine, frame, refuseArgv, runVia } from "../../../server/amanda/dumpuser.ts";

const dump = { amanda: "DailySet1", host: "web1.example.com", disk: "Lab Docs $HOME", datestamp: "20261124013000", level: 1 };

describe("argv shapes", () => {
  it("accepts every argv Lifeboat builds, with Amanda's real names (spaces, $, quotes in disk names)", () => {
    expect(refuseArgv(amadminFindArgv("DailySet1"))).toBeNull();
    expect(refuseArgv(amadminExportArgv("DailySet1"))).toBeNull();
    for (const raw of [true, false]) expect(refuseArgv(amfetchdumpArgv(dump, raw))).toBeNull();
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,20}$/),
        fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,30}$/),
        fc.string({ minLength: 1, maxLength: 60 }).filter((d) => !d.startsWith("-") && !/[\x00-\x1f\x7f]/.test(d)),
        fc.stringMatching(/^\d{8}(\d{6})?$/),
        fc.integer({ min: 0, max: 399 }),
        fc.boolean(),
        (amanda, host, disk, datestamp, level, raw) => refuseArgv(amfetchdumpArgv({ amanda, host, disk, datestamp, level }, raw)) === null,
      ),
    );
  });

  it.each([
    [["sh", "-c", "id"], /only amadmin and amfetchdump are run/],
    [["/usr/sbin/amadmin", "DailySet1", "find"], /only amadmin and amfetchdump are run/],
    [["amadmin", "DailySet1", "delete", "web1", "/"], /only "amadmin CONFIG find"/],
    [["amadmin", "DailySet1", "find", "web1"], /only "amadmin CONFIG find"/],
    [["amadmin", "-o", "find"], /bad Amanda config name/],
    [["amadmin", "../x", "find"], /bad Amanda config name/],
    [["amfetchdump", "-a", "-p", "-o", "tapedev=/dev/zero", "--exact-match", "D", "h", "/", "20260101", "0"], /only "amfetchdump/],
    [["amfetchdump", "-p", "-a", "--exact-match", "D", "h", "/", "20260101", "0"], /only "amfetchdump/],
    [["amfetchdump", "-a", "-p", "--exact-match", "D", "h", "/", "20260101"], /only "amfetchdump/],
    [["amfetchdump", "-a", "-p", "--exact-match", "D", "-h", "/", "20260101", "0"], /bad host name/],
    [["amfetchdump", "-a", "-p", "--exact-match", "D", "h", "--help", "20260101", "0"], /bad disk name/],
    [["amfetchdump", "-a", "-p", "--exact-match", "D", "h", "", "20260101", "0"], /bad disk name/],
    [["amfetchdump", "-a", "-p", "--exact-match", "D", "h", "/a\nb", "20260101", "0"], /bad disk name/],
    [["amfetchdump", "-a", "-p", "--exact-match", "D", "h", "/", "2026-01-01", "0"], /bad datestamp/],
    [["amfetchdump", "-a", "-p", "--exact-match", "D", "h", "/", "20260101", "-1"], /bad level/],
    [["amfetchdump", "-a", "-p", "--exact-match", "D", "h", "/", "20260101", "400"], /bad level/],
    [[], /not a list of strings/],
    [["amadmin", 1, "find"], /not a list of strings/],
    [{ 0: "amadmin" }, /not a list of strings/],
  ])("refuses %j", (argv, why) => {
    const r = refuseArgv(argv);
    expect(r).toMatch(why);
    expect(r).not.toMatch(/\n/);
  });
});

describe("runVia", () => {
  const access = { dumpuser: "backup", helperSocket: "/run/lifeboat-amanda.sock" };
  it("root: runuser; the dump user: directly; anyone else: the helper", () => {
    expect(runVia("amadmin", access, { uid: 0, user: "root" })).toEqual({ kind: "runuser", user: "backup" });
    expect(runVia("amadmin", access, { uid: 34, user: "backup" })).toEqual({ kind: "direct" });
    expect(runVia("amadmin", access, { uid: 998, user: "lifeboat" })).toEqual({ kind: "helper", socket: "/run/lifeboat-amanda.sock" });
  });
  it("no helper configured: one line naming the user and the key", () => {
    expect(() => runVia("amfetchdump", { ...access, helperSocket: "" }, { uid: 998, user: "lifeboat" })).toThrow(
      'amfetchdump runs only as the dump user backup and Lifeboat runs as lifeboat; no dump-user helper is configured (amanda[].helperSocket is "")',
    );
  });
});

describe("frames", () => {
  it("reads frames split at any byte, in order", () => {
    const bytes = Buffer.concat([frame("O", Buffer.from("data")), frame("E", Buffer.from("err\n")), frame("O", Buffer.alloc(0)), exitFrame(3)]);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: bytes.length }), { maxLength: 6 }), (cuts) => {
        const r = new FrameReader();
        const got: string[] = [];
        let at = 0;
        for (const c of [...new Set(cuts)].sort((a, b) => a - b).concat(bytes.length)) {
          for (const f of r.push(bytes.subarray(at, c))) got.push(f.type === "X" ? `X${f.payload.readInt32BE(0)}` : `${f.type}${f.payload}`);
          at = c;
        }
        expect([got, r.pending]).toEqual([["Odata", "Eerr\n", "O", "X3"], 0]);
      }),
    );
  });
  it("refuses a frame no helper sends", () => {
    const head = Buffer.from([0x4f, 0x7f, 0xff, 0xff, 0xff]);
    expect(() => new FrameReader().push(head)).toThrow(/a reply frame of \d+ bytes/);
  });
  it("a failure is one line: the last stderr lines", () => {
    expect(failureLine("amfetchdump", 1, "a\nb\n\nc\nd\n")).toBe("amfetchdump failed (exit 1): b / c / d");
    expect(failureLine("amadmin", 137, "")).toBe("amadmin failed (exit 137)");
  });
});
