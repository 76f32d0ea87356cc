#!/usr/bin/env bash
# Times `lifeboat image build` in its three situations and prints the image sizes:
#   cold      empty cache: apt-get download of ~160 packages, dpkg-deb -x, depmod, assemble, compress
#   assemble  packages and staging root cached, new output dir: assemble + compress only
#   no-change the same build again: inputs hashed, nothing rebuilt
# Usage: bench/rescue-image-build.sh [WORKDIR]   (as root; downloads ~150 MB once per run)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/lifeboat-bench-image.XXXXXX)}
mkdir -p "$work"
cache=$work/cache
lifeboat() { "$here/bin/lifeboat.js" "$@"; }

secs() { # secs CMD...: wall seconds of CMD (its output goes to $work/last.log)
  local start end
  start=$(date +%s.%N)
  "$@" >"$work/last.log" 2>&1 || { tail -20 "$work/last.log" >&2; exit 1; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

cold=$(secs lifeboat image build --cache "$cache" --out "$work/out1")
assemble=$(secs lifeboat image build --cache "$cache" --out "$work/out2")
nochange=$(secs lifeboat image build --cache "$cache" --out "$work/out2")
sizes=$(lifeboat image info --out "$work/out2" --json | node -e '
  const i = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const m = (n) => (n / 1048576).toFixed(1) + " MiB";
  console.log(`vmlinuz ${m(i.sizes.vmlinuz)}, initramfs ${m(i.sizes.initramfs)} zstd (${m(i.sizes.initramfsUncompressed)} unpacked), ${i.drivers.modules} modules, ${Object.keys(i.tools).length} tools, kernel ${i.kernelVersion}`);')

printf '%-10s %8s s\n' cold "$cold" assemble "$assemble" no-change "$nochange"
awk -v c="$cold" -v a="$assemble" -v n="$nochange" 'BEGIN { printf "cold/no-change %.0fx, assemble/no-change %.0fx\n", c / n, a / n }'
echo "image: $sizes"
echo "work dir: $work (delete it when done)"
