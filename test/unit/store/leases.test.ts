import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import type { LeaseRecord } from "../../../server/store/types.ts";
import { tempDir } from "../../helpers/tmp.ts";

const lease = (n: number, state: LeaseRecord["state"] = "bound"): LeaseRecord => ({
  ip: `10.231.64.${n}`,
  client: `52:54:00:64:00:${n.toString(16).padStart(2, "0")}`,
  mac: `52:54:00:64:00:${n.toString(16).padStart(2, "0")}`,
  state,
  hostname: null,
  expiresAt: "2099-01-01T00:00:00.000Z",
  server: "lb1",
});

describe("lease writes commit in groups", () => {
  it("the writes of one turn are one commit; each promise settles after it, when another connection sees the rows", async () => {
    const file = join(tempDir("lifeboat-leases-"), "lifeboat.db");
    const store = new SqliteStore(file);
    const other = new Database(file, { readonly: true });
    const commits = () => other.pragma("data_version", { simple: true }) as number;
    const seen = () => (other.prepare("SELECT COUNT(*) AS n FROM dhcp_leases").get() as { n: number }).n;
    const v0 = commits();
    const writes = Array.from({ length: 50 }, (_, i) => store.leases.put(lease(i + 10)));
    // Same connection: the open group's rows are visible to the pool's next read at once.
    expect((await store.leases.byIp("10.231.64.59"))?.client).toBe("52:54:00:64:00:3b");
    expect(seen()).toBe(0);
    await Promise.all(writes);
    expect(seen()).toBe(50);
    expect(commits()).toBe(v0 + 1);
    // A write that fails rolls back alone; the rest of its group commits.
    const bad = store.leases.put({ ...lease(70), state: null as unknown as "bound" });
    const good = store.leases.put(lease(71));
    await expect(bad).rejects.toThrow(/NOT NULL/);
    await good;
    expect(seen()).toBe(51);
    // Closing the store commits an open group.
    void store.leases.remove("10.231.64.10");
    await store.close();
    expect(seen()).toBe(50);
    other.close();
  });
});
