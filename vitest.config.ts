import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 300_000,
    // Labs (network namespaces, loop devices, QEMU) are machine-wide: run files one at a time
    // where they say so; unit files run in parallel.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
