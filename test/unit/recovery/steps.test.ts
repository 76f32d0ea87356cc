import { execa } from "execa";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { STEP_FUNCTIONS, type Step, type StepName, checkStep, renderPlan, shQuote, step, stepArity } from "../../../server/plan/steps.ts";
import { planCalls as runThroughSh } from "../../integration/recovery/plan-calls.ts";
import { itNeeding } from "../../helpers/needs.ts";

/** The shells a plan must survive, and why one cannot be tried here (busybox comes with scripts/bootstrap). */
const shellsMissing: Record<string, string | null> = {};
for (const shell of ["sh", "bash", "busybox"])
  shellsMissing[shell] = (await execa("sh", ["-c", `command -v ${shell}`], { reject: false })).exitCode === 0 ? null : `${shell} is not installed here`;

const hostile = [
  "",
  " ",
  "it's",
  "'",
  "''",
  "a'b'c",
  '"double" quotes',
  "$HOME",
  "${PATH}",
  "$(id)",
  "`id`",
  "back\\slash\\",
  "new\nline",
  "\n",
  "trailing newline\n",
  "tab\tand  spaces",
  "*",
  "?",
  "[a-z]",
  "~root",
  "-n",
  "--",
  "a;b&c|d>e<f",
  "#comment",
  "!bang",
  "ünïcødé ☃",
  "\u0001\u007f",
  "x=y",
  "%s%n",
];

describe("shQuote and renderPlan", () => {
  it("keeps plain words readable and single-quotes the rest", () => {
    expect(shQuote("/dev/sda1")).toBe("/dev/sda1");
    expect(shQuote("subvol=@home,compress=zstd:3")).toBe("subvol=@home,compress=zstd:3");
    expect(shQuote("")).toBe("''");
    expect(shQuote("it's")).toBe("'it'\\''s'");
    expect(shQuote("$x")).toBe("'$x'");
  });

  it("refuses NUL, which no sh argument can carry", () => {
    expect(() => shQuote("a\0b")).toThrow(/NUL/);
  });

  for (const [shell, missing] of Object.entries(shellsMissing)) {
    itNeeding(missing, `hostile arguments round-trip exactly through ${shell}`, async () => {
      const steps: Step[] = hostile.map((h) => step("make_fs", { fstype: "ext4", dev: h, uuid: h, label: h }, [h, "-O", h]));
      steps.push(step("mount_fs", { dev: "/dev/x", mountpoint: hostile.join(""), fstype: "ext4", options: "" }));
      steps.push(step("unmount_all", {}));
      const script = renderPlan(steps);
      const got = shell === "busybox" ? await runBusybox(script) : await runThroughSh(script, shell);
      expect(got).toEqual(steps);
    });
  }

  it("random strings round-trip through sh (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: "binary" }).filter((s) => !s.includes("\0")), { maxLength: 6 }), async (strs) => {
        const steps = [step("fix_fstab", { old_uuid: strs[0] ?? "", new_uuid: strs[1] ?? "" }), step("create_vg", { vg: "v", extent_bytes: 4 }, strs)];
        expect(await runThroughSh(renderPlan(steps))).toEqual(steps);
      }),
      { numRuns: 60 },
    );
  });

  it("renders one call per line and nothing else", () => {
    const text = renderPlan([step("plan_begin", { contract: "1", host: "web 1", steps: 2 }), step("plan_done", { end_state: "hold" })]);
    expect(text).toBe("plan_begin 1 'web 1' 2\nplan_done hold\n");
  });
});

async function runBusybox(script: string): Promise<Step[]> {
  const dir = await execa("mktemp", ["-d"]);
  await execa("ln", ["-s", "/bin/busybox", `${dir.stdout}/sh`]);
  try {
    return await runThroughSh(script, `${dir.stdout}/sh`);
  } finally {
    await execa("rm", ["-rf", dir.stdout]);
  }
}

describe("the step contract", () => {
  it("every function name is a valid sh name, not a reserved word or a common command", () => {
    const reserved = ["if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "in", "function"];
    for (const fn of Object.keys(STEP_FUNCTIONS)) {
      expect(fn).toMatch(/^[a-z][a-z_]*$/);
      expect(reserved).not.toContain(fn);
      expect(["mkfs", "mkswap", "mount", "umount", "wipefs", "sfdisk"]).not.toContain(fn);
    }
  });

  it("every argument is documented and names are unique per function", () => {
    for (const [fn, spec] of Object.entries(STEP_FUNCTIONS)) {
      const names = spec.args.map((x) => x.name);
      expect(new Set(names).size, fn).toBe(names.length);
      for (const arg of spec.args) expect(arg.doc.length, `${fn} ${arg.name}`).toBeGreaterThan(3);
      expect(spec.doc.length).toBeGreaterThan(10);
    }
  });

  it("checks arity and refuses unknown functions", () => {
    expect(stepArity("check_disk")).toEqual({ min: 4, max: 4 });
    expect(stepArity("create_md").max).toBe(Number.POSITIVE_INFINITY);
    expect(() => checkStep({ fn: "check_disk", args: ["/dev/sda"] })).toThrow(/expected 4 arguments, got 1/);
    expect(() => checkStep({ fn: "rm_rf" as StepName, args: [] })).toThrow(/not a step function/);
    expect(() => renderPlan([{ fn: "wipe_disk", args: ["/dev/sda", "x", "y"] }])).toThrow(/step 1 \(wipe_disk\)/);
    // @ts-expect-error a missing named argument is a compile error too
    expect(() => step("mount_fs", { dev: "/dev/sda1" })).toThrow(/mountpoint missing/);
  });
});
