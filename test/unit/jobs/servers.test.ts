/** Several servers on one store (issue 25): which server a plan streams each dump from, and who is alive (pure). */
import { describe, expect, it } from "vitest";
import { SERVER_DEAD_MS, remoteDumpUrls, serverView } from "../../../server/jobs/servers.ts";
import type { ServerRecord } from "../../../server/store/types.ts";

const now = Date.parse("2026-12-06T03:00:00.000Z");
const seen = (ago: number) => new Date(now - ago).toISOString();
const server = (name: string, amanda: string[], ago = 1000, url = `http://${name}.example:8080/`): ServerRecord => ({ name, url, amanda, startedAt: seen(3_600_000), lastSeenAt: seen(ago) });

describe("servers", () => {
  it("alive: heard of within SERVER_DEAD_MS", () => {
    expect(serverView(server("a", [], SERVER_DEAD_MS), now).alive).toBe(true);
    expect(serverView(server("a", [], SERVER_DEAD_MS + 1), now).alive).toBe(false);
  });

  it("a dump of a config this server serves stays a path here; one only others serve comes from the first live one by name", () => {
    const servers = [server("self", ["daily"]), server("c", ["offsite"]), server("b", ["offsite", "weekly"]), server("dead", ["archive"], SERVER_DEAD_MS + 1)];
    const dumps = [
      { id: "d1", amanda: "daily" },
      { id: "d2", amanda: "offsite" },
      { id: "d3", amanda: "weekly" },
      { id: "d4", amanda: "archive" },
      // The same dump in a config here and one elsewhere: streamed here.
      { id: "d5", amanda: "offsite" },
      { id: "d5", amanda: "daily" },
    ];
    expect(remoteDumpUrls(dumps, servers, "self", now)).toEqual({
      d2: "http://b.example:8080/api/v1/dumps/d2/stream",
      d3: "http://b.example:8080/api/v1/dumps/d3/stream",
    });
    // One server (SQLite, or alone on PostgreSQL): every dump a path.
    expect(remoteDumpUrls(dumps, [server("self", [])], "self", now)).toEqual({});
  });
});
