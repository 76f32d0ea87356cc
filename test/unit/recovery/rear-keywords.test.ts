import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { REAR_KEYWORDS, layoutFromRear, rearKeywordsMarkdown } from "../../../server/layout/rear-import.ts";

/**
 * The README's list of ReaR keywords is made from the import's own table (rear-import.ts READERS
 * and REFUSED), so it cannot drift: after changing the table, paste rearKeywordsMarkdown()
 * between the README's rear-keywords markers.
 */
const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");

describe("the ReaR keywords in the README", () => {
  it("the README's list is the one the import's table makes", () => {
    const block = /<!-- rear-keywords: begin -->\n([^]*?)\n<!-- rear-keywords: end -->/.exec(readme);
    expect(block, "README.md has no rear-keywords block").not.toBeNull();
    expect(block![1]).toBe(rearKeywordsMarkdown());
  });

  it("each keyword listed is known to the import: refused ones with their line and the reason listed, none as unknown", () => {
    const listed = [...rearKeywordsMarkdown().matchAll(/^- `([^`]+)`: (read|refused): (.*)\.$/gm)];
    expect(listed.map((m) => m[1])).toEqual([...REAR_KEYWORDS]);
    for (const [, keyword, how, why] of listed) {
      let message = "imported";
      try {
        layoutFromRear(`disk /dev/sda 10737418240 gpt\n${keyword} /dev/sda 1 2 3 4 5 6\n`, "h");
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message, keyword).not.toMatch(/unknown keyword/);
      if (how === "refused") expect(message, keyword).toBe(`disklayout.conf line 2: ${keyword}: ${why}`);
    }
  });
});
