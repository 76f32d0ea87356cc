#!/usr/bin/env bash
# build-big.sh ROOT CONFIG SIZE_MIB — an Amanda config with ONE big level-0 dump on vtapes,
# for bench/amanda-stream.ts: a file of SIZE_MIB MiB of random data (incompressible),
# compress none, split into 256 MiB tape parts. The source tree is deleted afterwards
# (only the vtapes matter). Needs root and Amanda (scripts/apt-packages.txt).
set -euo pipefail
. "$(dirname "$0")/conf-base.sh"
ROOT=$1 CONF=$2 SIZE=$3
asbackup() { runuser -u backup -- "$@"; }
[ "$(id -u)" = 0 ] || { echo "build-big.sh: must run as root" >&2; exit 1; }
command -v amdump >/dev/null || { echo "build-big.sh: amdump not found (install amanda-server amanda-client)" >&2; exit 1; }
mkdir -p "$ROOT"/{config,vtapes/slot1,vtapes/slot2,holding,state/log,state/curinfo,state/index,tree,lists}
{ conf_base "$ROOT" "$CONF"; cat; } >"$ROOT/config/amanda.conf" <<CONF
define tapetype BIG {
    length 100 gbytes
    part-size 256 mbytes
}
tapetype "BIG"
labelstr "^BENCH-[0-9]+\$"
autolabel "BENCH-%%" empty
runtapes 1
holdingdisk hd1 {
    directory "$ROOT/holding"
    use 20 gbytes
    chunksize 2 gbytes
}
define application-tool bench-amgtar {
    plugin "amgtar"
    property "GNUTAR-LISTDIR" "$ROOT/lists"
}
define dumptype bench {
    program "APPLICATION"
    application "bench-amgtar"
    auth "local"
    index no
    holdingdisk required
    estimate calcsize
    compress none
}
CONF
echo "localhost $ROOT/tree bench" >"$ROOT/config/disklist"
: >"$ROOT/config/tapelist"
ln -sfn "$ROOT/config" "/etc/amanda/$CONF"
trap 'rm -f "/etc/amanda/$CONF"' EXIT   # only needed while amdump runs
head -c "${SIZE}M" /dev/urandom >"$ROOT/tree/random.bin"
chown -R backup:backup "$ROOT/config" "$ROOT/vtapes" "$ROOT/holding" "$ROOT/state" "$ROOT/lists"
d=$ROOT; while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done
asbackup amlabel -f "$CONF" BENCH-01 slot 1 >/dev/null
asbackup amdump "$CONF" </dev/null || true
grep -q "^DONE taper" "$ROOT/state/log/log" || { cat "$ROOT/state/log/log" >&2; exit 1; }
rm -rf "$ROOT/tree"
