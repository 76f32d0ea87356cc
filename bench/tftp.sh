#!/usr/bin/env bash
# TFTP throughput: Lifeboat (`lifeboat serve`, TFTP only) against tftp-hpa (in.tftpd) and
# dnsmasq's TFTP, all on loopback, fetching the same 30 MiB file with curl, side by side in
# one hyperfine run (several rounds each), then the ratios. Needs root (dnsmasq's TFTP port is 69),
# hyperfine, curl, tftpd-hpa, dnsmasq-base.
#   sudo bash bench/tftp.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
for c in hyperfine curl in.tftpd dnsmasq; do command -v "$c" >/dev/null || { echo "bench/tftp: $c is missing (scripts/bootstrap installs it)" >&2; exit 1; }; done
work=$(mktemp -d /tmp/lifeboat-bench-tftp.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/root" "$work/data"
head -c $((30 * 1024 * 1024)) /dev/urandom > "$work/root/big.bin"
want=$(sha256sum < "$work/root/big.bin" | cut -d' ' -f1)

LB_PORT=16969; HPA_PORT=16970
node bin/lifeboat.js serve --data-dir "$work/data" --listen 127.0.0.1 --http-port 0 --dhcp off \
  --tftp-port $LB_PORT --tftp-root "$work/root" --log-level warn > "$work/lifeboat.log" 2>&1 &
pids+=($!)
in.tftpd -L -l -s "$work/root" -a 127.0.0.1:$HPA_PORT > "$work/hpa.log" 2>&1 &
pids+=($!)
dnsmasq -k -C /dev/null --port=0 --pid-file= --listen-address=127.0.0.1 --bind-interfaces \
  --enable-tftp --tftp-root="$work/root" --user=root --log-facility="$work/dnsmasq.log" &
pids+=($!)
for i in $(seq 100); do
  curl -sf -o /dev/null "tftp://127.0.0.1:$LB_PORT/big.bin" --max-time 30 && break; sleep 0.2
done

# Every server must hand out the same bytes before timing means anything.
for port in $LB_PORT $HPA_PORT 69; do
  got=$(curl -s --tftp-blksize 1468 "tftp://127.0.0.1:$port/big.bin" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "bench/tftp: port $port served different bytes" >&2; exit 1; }
done

for bs in 512 1468 8192; do
  opt="--tftp-blksize $bs"; [ $bs = 512 ] && opt=""
  echo "== blksize $bs, 30 MiB, $rounds rounds each"
  hyperfine -N -w 1 -r "$rounds" --export-json "$work/h$bs.json" \
    -n lifeboat "curl -s -o /dev/null $opt tftp://127.0.0.1:$LB_PORT/big.bin" \
    -n tftp-hpa "curl -s -o /dev/null $opt tftp://127.0.0.1:$HPA_PORT/big.bin" \
    -n dnsmasq  "curl -s -o /dev/null $opt tftp://127.0.0.1:69/big.bin" > "$work/h$bs.txt"
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
    const by = Object.fromEntries(r.map((x) => [x.command, x]));
    const mibs = (x) => (30 / x.mean).toFixed(1);
    for (const x of r) console.log(`  ${x.command.padEnd(9)} mean ${x.mean.toFixed(3)} s ± ${x.stddev.toFixed(3)}  (${mibs(x)} MiB/s)`);
    console.log(`  ratio lifeboat/tftp-hpa ${(by.lifeboat.mean / by["tftp-hpa"].mean).toFixed(2)}x time, lifeboat/dnsmasq ${(by.lifeboat.mean / by.dnsmasq.mean).toFixed(2)}x time`);
  ' "$work/h$bs.json"
done
