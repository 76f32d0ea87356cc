import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { agentEventSchema, helloSchema } from "../../../server/plan/agent-api.ts";
import { agentSh } from "./agent-sh.ts";

const strings = ['plain', 'quote " and \\ backslash', "tab\tcr\rnewline\nend", "ümlaut €", "{\"json\":[1]}", "$(id) `id` '", ""];

describe("the agent's JSON: what it sends validates against server/plan/agent-api.ts", () => {
  it("lb_json_str round-trips through JSON.parse (control characters other than tab/cr/lf dropped)", async () => {
    for (const s of [...strings, "bell\u0007 and \u001b[31mansi"]) {
      const r = await agentSh('lb_json_str "$1"', { args: [s] });
      expect(JSON.parse(r.stdout), JSON.stringify(s)).toBe(s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, ""));
    }
  });

  it("the hello body built from this machine's real disks and hardware is a valid Hello", async () => {
    const r = await agentSh("lb_hello_json");
    expect(r.stderr).toBe("");
    const hello = helloSchema.parse(JSON.parse(r.stdout));
    const sys = (p: string) => readFileSync(p, "utf8").trim();
    // Every real disk of this machine is reported with its exact size.
    for (const d of hello.disks) expect(d.sizeBytes).toBe(Number(sys(`/sys/block/${d.name}/size`)) * 512);
    expect(hello.hardware.macs.length).toBeGreaterThan(0);
    expect(hello.hardware.kernel).toBe(readFileSync("/proc/sys/kernel/osrelease", "utf8").trim());
  });

  it("step-end events with hostile output are valid events", async () => {
    for (const s of strings) {
      const r = await agentSh(
        'printf "%s" "$1" > "$T"; printf \'{"type":"step-end","step":1,"of":2,"name":"make_fs","exitStatus":1,"output":%s,"skipped":false}\' "$(lb_json_esc < "$T")"',
        { args: [s], env: { T: `/tmp/lb-json-test-${process.pid}` } },
      );
      const ev = agentEventSchema.parse(JSON.parse(r.stdout));
      expect(ev.type === "step-end" && ev.output).toBe(s.replace(/\n$/, ""));
    }
  });
});
