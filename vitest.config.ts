import { defineConfig } from "vitest/config";

/** Files that boot QEMU machines under TCG: they run one at a time, after everything else. */
const MACHINES = ["test/integration/netboot/qemu-boot.test.ts", "test/integration/netboot/secure-boot.test.ts", "test/integration/rescue/image.test.ts", "test/integration/rescue/bootloader.test.ts", "test/e2e/netboot-restore.test.ts", "test/e2e/whole-job.test.ts"];

export default defineConfig({
  test: {
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 300_000,
    maxWorkers: 2,
    projects: [
      // Unit and integration files in parallel (each lab has its own names: netns prefixes, loop devices, ports).
      { extends: true, test: { name: "parts", include: ["test/**/*.test.ts"], exclude: MACHINES, sequence: { groupOrder: 0 } } },
      // Two QEMU machines side by side on 2 cores would each run at half speed and near their boot timeouts.
      { extends: true, test: { name: "machines", include: MACHINES, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
