import { describe, expect, it } from "vitest";
import { CAPTURE_LIMITS, captureSchema, captureTextProblem, layoutFromCapture, parseCapture } from "../../../server/layout/layout-capture.ts";
import { hugeCapture } from "./huge-capture.ts";

/**
 * Issue 16 item 2: a capture naming tens of thousands of devices cost seconds of synchronous
 * work (a scan per node) on the one event loop that serves DHCP, TFTP and the dump streams.
 */
describe("capture parsing at scale", () => {
  it("a 20,000-node capture becomes a layout in under 1 s (indexed, not a scan per node)", () => {
    const capture = captureSchema.parse(hugeCapture(20_000));
    // CPU time, not wall time, and the best of three: the process's CPU time counts its GC
    // threads too, which a busy machine beside it slows; a scan per node costs seconds every time.
    let ms = Infinity;
    let layout = layoutFromCapture(capture);
    for (let i = 0; i < 3; i++) {
      const started = process.cpuUsage();
      layout = layoutFromCapture(capture);
      const used = process.cpuUsage(started);
      ms = Math.min(ms, (used.user + used.system) / 1000);
    }
    expect(layout.filesystems).toHaveLength(20_000);
    expect(layout.mounts).toHaveLength(20_000);
    expect(layout.mounts[0]).toMatchObject({ dev: "/dev/sda1", mountpoint: "/" });
    expect(ms).toBeLessThan(1000);
  });

  it("parseCapture refuses a 20,000-node capture by its cap, quickly, in one line", () => {
    const doc = hugeCapture(20_000);
    const started = process.cpuUsage();
    expect(() => parseCapture(doc)).toThrow(/^capture document: lsblk\.blockdevices: more than 4096 nodes$/);
    const used = process.cpuUsage(started);
    expect((used.user + used.system) / 1000).toBeLessThan(100);
  });

  it("names the first count over its limit: probes, a table's partitions, LVM rows, nesting", () => {
    const base = hugeCapture(2);
    const over = CAPTURE_LIMITS.probes + 1;
    const probes = Array.from({ length: over }, (_, i) => ({ dev: `/dev/x${i}`, blkid: null }));
    expect(() => parseCapture({ ...base, probes })).toThrow(`capture document: probes: ${over} entries, at most ${CAPTURE_LIMITS.probes}`);
    const partitions = Array.from({ length: CAPTURE_LIMITS.partitions + 1 }, () => ({}));
    expect(() => parseCapture({ ...base, partitionTables: [{ disk: "/dev/sda", sfdisk: { partitiontable: { partitions } } }] })).toThrow(
      `capture document: partitionTables.0.sfdisk.partitiontable.partitions: ${CAPTURE_LIMITS.partitions + 1} entries, at most ${CAPTURE_LIMITS.partitions}`,
    );
    const lv = Array.from({ length: CAPTURE_LIMITS.lvmRows + 1 }, () => ({}));
    expect(() => parseCapture({ ...base, lvm: { lvs: { report: [{ lv }] } } })).toThrow(`capture document: lvm.lvs: ${CAPTURE_LIMITS.lvmRows + 1} entries`);
    let deep: Record<string, unknown> = { name: "leaf", type: "part", size: 1 };
    for (let i = 0; i < CAPTURE_LIMITS.nesting; i++) deep = { name: `n${i}`, type: "part", size: 1, children: [deep] };
    expect(() => parseCapture({ ...base, lsblk: { blockdevices: [deep] } })).toThrow(`capture document: lsblk.blockdevices: nested ${CAPTURE_LIMITS.nesting + 1} levels, at most ${CAPTURE_LIMITS.nesting}`);
    // At the limits nothing is refused by count.
    expect(parseCapture(hugeCapture(CAPTURE_LIMITS.partitions)).hostname).toBe("huge");
  });

  it("counts the upload's objects and arrays before JSON.parse: brackets inside strings (escaped quotes too) do not count", () => {
    const limit = CAPTURE_LIMITS.containers;
    const text = (s: string) => Buffer.from(s);
    expect(captureTextProblem(text(JSON.stringify({ a: Array.from({ length: limit - 2 }, () => ({})) })))).toBeNull();
    expect(captureTextProblem(text(JSON.stringify({ a: Array.from({ length: limit - 1 }, () => ({})) })))).toBe(`capture document: more than ${limit} JSON objects and arrays`);
    expect(captureTextProblem(text(JSON.stringify({ s: "{[".repeat(limit), t: '\\"{[' + "[".repeat(limit) })))).toBeNull();
  });
});
