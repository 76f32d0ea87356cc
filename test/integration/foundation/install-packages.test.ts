/**
 * scripts/install-packages (what scripts/bootstrap installs with) on this machine's real
 * dpkg/apt: two small packages made here, each with a systemd unit, a SysV service and an
 * inetd line that their postinst enables (as tftpd-hpa, openbsd-inetd and amanda-client do).
 * One is the admin's, installed beforehand the ordinary way; the other comes through the
 * script. The script's package must end with nothing enabled and nothing started; the
 * admin's must stay as it was. Both are purged afterwards.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeNeeding } from "../../helpers/needs.ts";
import { tempDir } from "../../helpers/tmp.ts";

const SCRIPT = fileURLToPath(new URL("../../../scripts/install-packages", import.meta.url));
const POLICY = "/usr/sbin/policy-rc.d";

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "installs Debian packages: needs root (CI runs as root)";
  for (const t of ["/usr/bin/dpkg-deb", "/usr/bin/apt-get", "/usr/sbin/update-rc.d", "/usr/sbin/update-inetd", "/usr/bin/systemctl", "/usr/bin/deb-systemd-helper"])
    if (!existsSync(t)) return `${t} is missing (scripts/bootstrap installs openbsd-inetd with amanda-client; systemd and init-system-helpers come with Debian)`;
  return undefined;
}

/** A package `lifeboat-test-NAME` whose postinst enables and tries to start its three services. */
async function makePackage(dir: string, name: string): Promise<string> {
  const root = join(dir, name);
  const file = (path: string, content: string, mode = 0o644) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
    chmodSync(join(root, path), mode);
  };
  const svc = `lifeboat-test-${name}`;
  file(
    "DEBIAN/control",
    `Package: ${svc}\nVersion: 1.0\nArchitecture: all\nMaintainer: Lifeboat tests <root@localhost>\nDepends: update-inetd\nDescription: scripts/install-packages test (${name})\n`,
  );
  file(`lib/systemd/system/${svc}.service`, `[Unit]\nDescription=${svc}\n[Service]\nType=oneshot\nExecStart=/bin/touch /run/${svc}.started\n[Install]\nWantedBy=multi-user.target\n`);
  file(
    `etc/init.d/${svc}-sysv`,
    `#!/bin/sh\n### BEGIN INIT INFO\n# Provides: ${svc}-sysv\n# Required-Start:\n# Required-Stop:\n# Default-Start: 2 3 4 5\n# Default-Stop: 0 1 6\n# Short-Description: ${svc}\n### END INIT INFO\ncase "$1" in start) touch /run/${svc}-sysv.started ;; esac\nexit 0\n`,
    0o755,
  );
  // As packages do: enable, register with inetd, then start (invoke-rc.d asks policy-rc.d).
  file(
    "DEBIAN/postinst",
    `#!/bin/sh\nset -e\ndeb-systemd-helper enable ${svc}.service\nupdate-rc.d ${svc}-sysv defaults >/dev/null\nupdate-inetd --add "${svc}-inetd stream tcp nowait root /bin/true true"\ninvoke-rc.d ${svc}-sysv start || true\ndeb-systemd-invoke start ${svc}.service || true\n`,
    0o755,
  );
  file(
    "DEBIAN/postrm",
    `#!/bin/sh\nset -e\nif [ "$1" = purge ]; then\n  update-rc.d ${svc}-sysv remove >/dev/null\n  update-inetd --remove "${svc}-inetd" || true\n  deb-systemd-helper purge ${svc}.service || true\nfi\n`,
    0o755,
  );
  const deb = join(dir, `${svc}.deb`);
  await execa("dpkg-deb", ["--build", "--root-owner-group", root, deb]);
  return deb;
}

const isEnabled = async (unit: string) => (await execa("systemctl", ["is-enabled", unit], { reject: false })).stdout.trim();
const rcLinks = (svc: string) => readdirSync("/etc/rc2.d").filter((l) => l.endsWith(svc)).map((l) => l[0]);
const inetdLine = (svc: string) => readFileSync("/etc/inetd.conf", "utf8").split("\n").find((l) => l.includes(`${svc}-inetd`));

describeNeeding(unavailable(), "scripts/install-packages: what it installs starts nothing and stays disabled; the admin's services stay as they were", () => {
  const dir = tempDir("lifeboat-install-packages-");
  const policyBefore = existsSync(POLICY) ? readFileSync(POLICY, "utf8") : null;
  let result: { exitCode?: number; stderr: string };

  beforeAll(async () => {
    const admins = await makePackage(dir, "admin");
    const ours = await makePackage(dir, "ours");
    // The admin's package, installed the ordinary way before Lifeboat's.
    await execa("apt-get", ["-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", admins], { env: { DEBIAN_FRONTEND: "noninteractive" } });
    result = await execa("bash", [SCRIPT, ours], { reject: false });
  }, 300_000);

  afterAll(async () => {
    await execa("apt-get", ["-o", "DPkg::Lock::Timeout=600", "purge", "-y", "-qq", "lifeboat-test-admin", "lifeboat-test-ours"], { reject: false, env: { DEBIAN_FRONTEND: "noninteractive" } });
    await execa("sh", ["-c", "rm -f /run/lifeboat-test-*.started"]);
  });

  it("installs the package and says what it disabled", () => {
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain("disabling lifeboat-test-ours.service (enabled by the install)");
    expect(result.stderr).toContain("disabling SysV service lifeboat-test-ours-sysv (enabled by the install)");
    expect(result.stderr).toContain("disabling inetd service lifeboat-test-ours-inetd (added to /etc/inetd.conf by the install)");
    expect(result.stderr).not.toContain("lifeboat-test-admin");
  });

  it("its systemd unit, SysV boot links and inetd line are disabled, and nothing of it was started", async () => {
    expect(await isEnabled("lifeboat-test-ours.service")).toBe("disabled");
    expect(rcLinks("lifeboat-test-ours-sysv")).toEqual(["K"]);
    expect(inetdLine("lifeboat-test-ours")).toMatch(/^#<off># lifeboat-test-ours-inetd\s/);
    expect(existsSync("/run/lifeboat-test-ours.started")).toBe(false);
    expect(existsSync("/run/lifeboat-test-ours-sysv.started")).toBe(false);
  });

  it("the admin's services, enabled before, are left enabled; the policy-rc.d is as it was", async () => {
    expect(await isEnabled("lifeboat-test-admin.service")).toBe("enabled");
    expect(rcLinks("lifeboat-test-admin-sysv")).toEqual(["S"]);
    expect(inetdLine("lifeboat-test-admin")).toMatch(/^lifeboat-test-admin-inetd\s/);
    expect(existsSync(POLICY) ? readFileSync(POLICY, "utf8") : null).toBe(policyBefore);
  });
});
