#!/usr/bin/env bash
# TFTP throughput: Lifeboat (`lifeboat serve`, TFTP only) against tftp-hpa (in.tftpd) and
# dnsmasq's TFTP, all on loopback, fetching the same 30 MiB file side by side in one
# hyperfine run per case (several rounds each), then the ratios:
#   - curl at blksize 512, 1468 and 8192;
#   - atftp with windowsize 8 (RFC 7440) at blksize 1468 (in.tftpd ignores windowsize: it
#     answers with one block per ACK, which is what a client gets from it);
#   - 100 concurrent curl transfers (blksize 1468) per server: wall time and the server's CPU
#     seconds (a cpuacct cgroup per server), i.e. throughput per CPU second.
# Needs root (dnsmasq's TFTP port is 69), hyperfine, curl, atftp, tftpd-hpa, dnsmasq-base.
#   sudo bash bench/tftp.sh [rounds]
# With LIFEBOAT_CPU_PROF=DIR the Lifeboat server runs under `node --cpu-prof` (profile in DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
for c in hyperfine curl atftp in.tftpd dnsmasq; do command -v "$c" >/dev/null || { echo "bench/tftp: $c is missing (scripts/bootstrap installs it)" >&2; exit 1; }; done
work=$(mktemp -d /tmp/lifeboat-bench-tftp.XXXXXX)
pids=()
cg=/sys/fs/cgroup/cpuacct/lifeboat-bench-tftp-$$
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"
  for d in "$cg"-*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
}
trap cleanup EXIT
mkdir -p "$work/root" "$work/data"
head -c $((30 * 1024 * 1024)) /dev/urandom > "$work/root/big.bin"
head -c $((4 * 1024 * 1024)) /dev/urandom > "$work/root/small.bin"
want_small=$(sha256sum < "$work/root/small.bin" | cut -d' ' -f1)
want=$(sha256sum < "$work/root/big.bin" | cut -d' ' -f1)

LB_PORT=16969; HPA_PORT=16970
prof=()
[ -n "${LIFEBOAT_CPU_PROF:-}" ] && prof=(--cpu-prof --cpu-prof-dir "$LIFEBOAT_CPU_PROF")
# 100 transfers from one address at once: above the per-client default (8), as for tftp-hpa and dnsmasq.
printf 'tftp:\n  maxTransfersPerClient: 100\n' > "$work/lifeboat.yaml"
node "${prof[@]}" bin/lifeboat.js serve --config "$work/lifeboat.yaml" --data-dir "$work/data" --listen 127.0.0.1 --http-port 0 --dhcp off \
  --tftp-port $LB_PORT --tftp-root "$work/root" --log-level warn > "$work/lifeboat.log" 2>&1 &
pids+=($!)
lb_pid=$!
in.tftpd -L -l -s "$work/root" -a 127.0.0.1:$HPA_PORT > "$work/hpa.log" 2>&1 &
pids+=($!)
hpa_pid=$!
dnsmasq -k -C /dev/null --port=0 --pid-file= --listen-address=127.0.0.1 --bind-interfaces \
  --enable-tftp --tftp-root="$work/root" --user=root --log-facility="$work/dnsmasq.log" &
pids+=($!)
dm_pid=$!
# Each server in a cpuacct cgroup of its own: its CPU time, forked children included (in.tftpd forks one per transfer).
for s in lifeboat:$lb_pid tftp-hpa:$hpa_pid dnsmasq:$dm_pid; do mkdir -p "$cg-${s%%:*}"; echo "${s#*:}" > "$cg-${s%%:*}/cgroup.procs"; done
for i in $(seq 100); do
  curl -sf -o /dev/null "tftp://127.0.0.1:$LB_PORT/big.bin" --max-time 30 && break; sleep 0.2
done

# Every server must hand out the same bytes before timing means anything.
for port in $LB_PORT $HPA_PORT 69; do
  got=$(curl -s --tftp-blksize 1468 "tftp://127.0.0.1:$port/big.bin" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "bench/tftp: port $port served different bytes" >&2; exit 1; }
  atftp --option "windowsize 8" --option "blksize 1468" -g -r big.bin -l "$work/w.bin" 127.0.0.1 $port > /dev/null
  [ "$(sha256sum < "$work/w.bin" | cut -d' ' -f1)" = "$want" ] || { echo "bench/tftp: port $port served different bytes with windowsize 8" >&2; exit 1; }
done

report() { # $1: hyperfine json, $2: MiB per run
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
    const mib = Number(process.argv[2]);
    const by = Object.fromEntries(r.map((x) => [x.command, x]));
    for (const x of r) console.log(`  ${x.command.padEnd(9)} mean ${x.mean.toFixed(3)} s ± ${x.stddev.toFixed(3)}  (${(mib / x.mean).toFixed(1)} MiB/s)`);
    console.log(`  ratio lifeboat vs tftp-hpa ${(by["tftp-hpa"].mean / by.lifeboat.mean).toFixed(2)}x throughput, vs dnsmasq ${(by.dnsmasq.mean / by.lifeboat.mean).toFixed(2)}x`);
  ' "$1" "$2"
}

for bs in 512 1468 8192; do
  opt="--tftp-blksize $bs"; [ $bs = 512 ] && opt=""
  echo "== curl, blksize $bs, 30 MiB, $rounds rounds each"
  hyperfine -N -w 1 -r "$rounds" --export-json "$work/h$bs.json" \
    -n lifeboat "curl -s -o /dev/null $opt tftp://127.0.0.1:$LB_PORT/big.bin" \
    -n tftp-hpa "curl -s -o /dev/null $opt tftp://127.0.0.1:$HPA_PORT/big.bin" \
    -n dnsmasq  "curl -s -o /dev/null $opt tftp://127.0.0.1:69/big.bin" > "$work/h$bs.txt"
  report "$work/h$bs.json" 30
done

echo "== atftp, windowsize 8, blksize 1468, 30 MiB, $rounds rounds each (tftp-hpa ignores windowsize)"
at() { echo "atftp --option \"windowsize 8\" --option \"blksize 1468\" -g -r big.bin -l /dev/null 127.0.0.1 $1"; }
hyperfine -N -w 1 -r "$rounds" --export-json "$work/hw.json" \
  -n lifeboat "$(at $LB_PORT)" -n tftp-hpa "$(at $HPA_PORT)" -n dnsmasq "$(at 69)" > "$work/hw.txt"
report "$work/hw.json" 30

cpu_s() { awk '{ print $1 / 1e9 }' "$cg-$1/cpuacct.usage"; }
echo "== 100 concurrent curl transfers, blksize 1468, 4 MiB each (400 MiB per server)"
for s in lifeboat:$LB_PORT tftp-hpa:$HPA_PORT dnsmasq:69; do
  IFS=: read -r name port <<<"$s"
  c0=$(cpu_s "$name"); t0=$(date +%s.%N)
  fails=0
  cpids=()
  for i in $(seq 100); do curl -s --max-time 120 -o "$work/c$i" --tftp-blksize 1468 "tftp://127.0.0.1:$port/small.bin" & cpids+=($!); done
  for j in "${cpids[@]}"; do wait "$j" || fails=$((fails + 1)); done
  t1=$(date +%s.%N); c1=$(cpu_s "$name")
  bad=0; for i in $(seq 100); do [ "$(sha256sum < "$work/c$i" | cut -d' ' -f1)" = "$want_small" ] || bad=$((bad + 1)); done
  rm -f "$work"/c*
  node -e '
    const [name, t0, t1, c0, c1, fails, bad] = process.argv.slice(1);
    const wall = t1 - t0, cpu = c1 - c0;
    console.log(`  ${name.padEnd(9)} ${wall.toFixed(2)} s wall, ${(400 / wall).toFixed(0)} MiB/s aggregate, server CPU ${cpu.toFixed(2)} s (${(400 / cpu).toFixed(0)} MiB per CPU second), ${fails} failed, ${bad} not byte-identical`);
  ' "$name" "$t0" "$t1" "$c0" "$c1" "$fails" "$bad"
done
