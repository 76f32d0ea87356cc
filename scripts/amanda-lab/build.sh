#!/usr/bin/env bash
# build.sh ROOT CONFIG — builds a real Amanda 3.5 lab under ROOT for Lifeboat's tests:
# config CONFIG (/etc/amanda/CONFIG -> ROOT/config), chg-disk vtapes, a holding disk, two
# DLEs of sample trees made here (names with spaces/UTF-8/$, symlinks, hard links, modes,
# owners, a sparse file, a FIFO), then three amdumps as user backup with auth "local":
#   run 1: level 0      -> vtape (DLE plain split into 64 KiB parts)
#   run 2: level 1      -> vtape (after change set 1)
#   run 3: level 2, amdump --no-taper -> stays on the holding disk (after change set 2)
# Writes ROOT/runs.txt ("run datestamp level") and ROOT/manifests/run<N>.<tag>.txt.
# Needs root and the Debian packages amanda-server amanda-client libencode-locale-perl.
# Called by test/helpers/amanda-lab.ts, which caches ROOT; not idempotent on its own.
set -euo pipefail
ROOT=$1
CONF=$2
HERE=$(cd "$(dirname "$0")" && pwd)
log() { printf '[amanda-lab %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
asbackup() { runuser -u backup -- "$@"; }   # Amanda server commands refuse root; backup has no shell

[ "$(id -u)" = 0 ] || die "must run as root (Amanda runs as user backup; trees need foreign owners)"
command -v amdump >/dev/null || die "amdump not found: install amanda-server amanda-client (scripts/apt-packages.txt)"
perl -MEncode::Locale -e1 2>/dev/null || die "Perl Encode::Locale missing: install libencode-locale-perl (Amanda's Perl tools die without it)"

CONFDIR=$ROOT/config
VTAPES=$ROOT/vtapes
HOLDING=$ROOT/holding
STATE=$ROOT/state
TREES=$ROOT/trees
LISTDIR=$ROOT/gnutar-lists
DISK1="$TREES/plain"
DEV2="$TREES/gz docs"
DISK2='Lab Docs $HOME'

mkdir -p "$CONFDIR" "$VTAPES" "$HOLDING" "$STATE"/{curinfo,index,log} "$TREES" "$LISTDIR" "$ROOT/manifests"
for i in 1 2 3 4 5 6; do mkdir -p "$VTAPES/slot$i"; done

cat >"$CONFDIR/amanda.conf" <<CONF
org "$CONF"
mailto ""
dumpuser "backup"
inparallel 2
dumporder "ss"
netusage 80000 Kbps
dumpcycle 7 days
runspercycle 7
tapecycle 4 tapes
bumpsize 20 Mb           # the planner never bumps on its own; levels are forced
bumpdays 1
bumpmult 2
etimeout 300
dtimeout 1800
ctimeout 30
infofile "$STATE/curinfo"
logdir   "$STATE/log"
indexdir "$STATE/index"
tapelist "tapelist"
define changer lab-vtapes {
    tpchanger "chg-disk:$VTAPES"
    property "num-slot" "6"
    property "auto-create-slot" "yes"
}
tpchanger "lab-vtapes"
define tapetype LAB-VTAPE {
    length 200 mbytes
    part-size 64 kbytes  # tiny: the level 0 of DLE plain is split into several parts
}
tapetype "LAB-VTAPE"
labelstr "^LAB-[0-9][0-9]*\$"
autolabel "LAB-%%" empty
runtapes 1
autoflush no
taperflush 0
flush-threshold-dumped 0
flush-threshold-scheduled 0
holdingdisk hd1 {
    directory "$HOLDING"
    use 500 mbytes
    chunksize 64 kbytes  # tiny: a holding dump spans several chunks
}
define application-tool lab-amgtar {
    plugin "amgtar"
    property "GNUTAR-LISTDIR" "$LISTDIR"
    property "ATIME-PRESERVE" "NO"
    property "SPARSE" "YES"
    property "ONE-FILE-SYSTEM" "YES"
}
define dumptype lab-base {
    program "APPLICATION"
    application "lab-amgtar"
    auth "local"
    index yes
    record yes
    holdingdisk required
    estimate calcsize
    priority high
}
define dumptype lab-plain {
    lab-base
    compress none
}
define dumptype lab-gzip {
    lab-base
    compress client fast
}
CONF
cat >"$CONFDIR/disklist" <<DL
localhost  "$DISK1"  lab-plain
localhost  "$DISK2"  "$DEV2"  lab-gzip
DL
: >"$CONFDIR/tapelist"
mkdir -p /etc/amanda
ln -sfn "$CONFDIR" "/etc/amanda/$CONF"

log "creating sample trees"
mk() { mkdir -p "$(dirname "$1")"; printf '%s\n' "${2:-content of $1}" >"$1"; }
lines() { mkdir -p "$(dirname "$1")"; seq -f "$3 line %06g of $(basename "$1") -- the quick brown fox" 1 "$2" >"$1"; }
mkdir -p "$DISK1"; cd "$DISK1"
mk "file with spaces.txt" "original text with spaces"
mk "ünïcödé näme.txt" "utf-8 name"
mk 'dollar $name.txt' 'a dollar sign in the name'
mk "sub dir/nested/deep file.txt"
mk "sub dir/to-be-deleted/gone.txt"
lines "data/big-level0.txt" 5000 L0
ln -s "file with spaces.txt" "link to file"
ln -s "/nonexistent/target" "dangling link"
ln -s "sub dir" "dir link"
mk "hardlink-a.txt" "hard linked content"
ln "hardlink-a.txt" "sub dir/hardlink-b.txt"
mk "mode-0000" "unreadable by non-root"; chmod 0000 "mode-0000"
mk "setuid-script" "#!/bin/sh"; chmod 4755 "setuid-script"
mk "secret-0600" "private"; chmod 0600 "secret-0600"
mkdir -p "sticky-dir"; chmod 1777 "sticky-dir"; mk "sticky-dir/tmpfile"
mkdir -p "empty dir"
mk "owned-by-nobody" "nobody"; chown nobody:nogroup "owned-by-nobody"
mk "owned-by-12345" "numeric owner with no passwd entry"; chown 12345:54321 "owned-by-12345"
truncate -s 8M "sparse.img"
printf 'middle' | dd of="sparse.img" bs=1 seek=4194304 conv=notrunc status=none
mkfifo "a fifo"
touch -d '2001-02-03 04:05:06' "file with spaces.txt"
mkdir -p "$DEV2"; cd "$DEV2"
lines "report.txt" 3000 DOCS
mk "notes/meeting notes.md" "# notes"
mk "notes/old.md" "old notes, deleted before level 1"
ln -s "notes/meeting notes.md" "latest notes"
ln "report.txt" "report-hardlink.txt"
cd /

chown -R backup:backup "$CONFDIR" "$VTAPES" "$HOLDING" "$STATE" "$LISTDIR"
chmod 755 "$ROOT" "$CONFDIR"
d=$ROOT; while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done

log "labelling vtapes"
for i in 1 2 3 4; do asbackup amlabel -f "$CONF" "LAB-0$i" slot "$i" >/dev/null; done
asbackup amcheck "$CONF" >"$ROOT/amcheck.out" 2>&1 || { cat "$ROOT/amcheck.out" >&2; die "amcheck $CONF failed"; }

: >"$ROOT/runs.txt"
amdump_run() { # amdump_run RUN LEVEL [amdump options]
  local run=$1 lvl=$2; shift 2
  asbackup amdump "$@" "$CONF" </dev/null || true   # exit status is a bit mask; the trace log decides
  local logf ds got
  logf=$(readlink -f "$STATE/log/log")
  ds=$(awk '$1=="START" && $2=="planner" {print $4; exit}' "$logf")
  got=$(grep -c "^SUCCESS dumper localhost .* $ds $lvl " "$logf" || true)
  [ "$got" = 2 ] || { cat "$logf" >&2; die "run $run: expected 2 dumps at level $lvl in $logf"; }
  printf '%s %s %s\n' "$run" "$ds" "$lvl" >>"$ROOT/runs.txt"
  "$HERE/manifest.sh" "$DISK1" >"$ROOT/manifests/run$run.plain.txt"
  "$HERE/manifest.sh" "$DEV2" >"$ROOT/manifests/run$run.gz.txt"
  log "run $run: level $lvl, datestamp $ds"
  sleep 1   # the next run gets another datestamp
}

asbackup amadmin "$CONF" force localhost >/dev/null
amdump_run 1 0

cd "$DISK1"
printf 'modified before level 1\n' >>"file with spaces.txt"
rm -f 'dollar $name.txt'
rm -rf "sub dir/to-be-deleted"
mv "ünïcödé näme.txt" "renamed ünïcödé.txt"
printf 'new in level 1\n' >"added in L1.txt"
printf 'new in level 1 (tab\tin name)\n' >"tab	name.txt"
chmod 0750 "setuid-script"
chown 23456:23456 "owned-by-nobody"
ln -sfn "added in L1.txt" "link to file"
cd "$DEV2"
rm -f "notes/old.md"
printf 'added at level 1\n' >"notes/new note.md"
printf 'appended at level 1\n' >>"report.txt"
cd /
asbackup amadmin "$CONF" force-level-1 localhost >/dev/null
amdump_run 2 1

cd "$DISK1"
seq -f "L2 line %06g of big-level2.txt -- jumped over the lazy dog" 1 2500 >"data/big-level2.txt"
rm -f "added in L1.txt"
rm -f "sub dir/hardlink-b.txt"
printf 'sparse changed\n' | dd of="sparse.img" bs=1 seek=1048576 conv=notrunc status=none
mkdir -p "new dir at L2/x"; printf 'x\n' >"new dir at L2/x/file"
cd "$DEV2"
printf 'modified at level 2\n' >"notes/meeting notes.md"
cd /
asbackup amadmin "$CONF" force-bump localhost >/dev/null
amdump_run 3 2 --no-taper
log "lab ready in $ROOT"
