# conf-base.sh — sourced by build-big.sh and build-crypt.sh: `conf_base ROOT CONF` prints the
# head of a one-config lab's amanda.conf (state under ROOT/state, chg-disk on ROOT/vtapes with
# 2 slots); each script appends its tapetype, holding disk and dumptypes.
conf_base() {
  local root=$1 conf=$2
  cat <<CONF
org "$conf"
mailto ""
dumpuser "backup"
dumpcycle 7 days
runspercycle 7
tapecycle 2 tapes
infofile "$root/state/curinfo"
logdir "$root/state/log"
indexdir "$root/state/index"
tapelist "tapelist"
define changer vt {
    tpchanger "chg-disk:$root/vtapes"
    property "num-slot" "2"
}
tpchanger "vt"
CONF
}
