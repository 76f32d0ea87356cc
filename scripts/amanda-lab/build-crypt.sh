#!/usr/bin/env bash
# build-crypt.sh ROOT CONFIG — an Amanda config with two tiny ENCRYPTED level-0 dumps on vtapes,
# for the tests of encrypted dumps (issue 23 item 4; test/helpers/amanda-lab.ts amandaCryptLab):
#   DLE crypt-simple: compress client fast, `encrypt server` with amcryptsimple (gpg --symmetric,
#                     the passphrase in ~backup/.am_passphrase);
#   DLE crypt-gpg:    compress none, `encrypt client` with amgpgcrypt (gpg --encrypt to the
#                     public key "backup" in ~backup/.gnupg).
# Amanda's two scripts have their key paths compiled in (the dump user's home, /var/backups on
# Debian): a passphrase and a key pair are made there when missing (kept when present: another
# lab build or a real setup may use them), and copied to ROOT/keys (0600) for the tests:
# passphrase, secret-key.asc (armoured). Needs root, Amanda (scripts/apt-packages.txt) and gpg.
# Two amdumps of a few KiB: ~20 s. Writes ROOT/runs.txt ("run datestamp level dle").
set -euo pipefail
. "$(dirname "$0")/conf-base.sh"
ROOT=$1 CONF=$2
asbackup() { runuser -u backup -- "$@"; }
die() { echo "build-crypt.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
command -v amdump >/dev/null || die "amdump not found (install amanda-server amanda-client)"
command -v gpg >/dev/null || die "gpg not found (Debian's gpg package)"
HOME_B=$(getent passwd backup | cut -d: -f6)
[ -d "$HOME_B" ] || die "the dump user's home $HOME_B does not exist"

# The keys where amcryptsimple and amgpgcrypt look for them.
if [ ! -s "$HOME_B/.am_passphrase" ]; then
  (umask 077; head -c 24 /dev/urandom | base64 >"$HOME_B/.am_passphrase")
  chown backup:backup "$HOME_B/.am_passphrase"
fi
install -d -o backup -g backup -m 700 "$HOME_B/.gnupg"
if ! asbackup gpg --homedir "$HOME_B/.gnupg" --batch --list-secret-keys backup >/dev/null 2>&1; then
  # No passphrase on the secret key: amgpgcrypt -d gives gpg no pinentry mode for one.
  asbackup gpg --homedir "$HOME_B/.gnupg" --batch --passphrase '' --quick-gen-key backup ed25519 default never 2>/dev/null
  asbackup gpg --homedir "$HOME_B/.gnupg" --batch --passphrase '' --quick-add-key \
    "$(asbackup gpg --homedir "$HOME_B/.gnupg" --batch --with-colons --list-secret-keys backup | awk -F: '$1=="fpr"{print $10; exit}')" cv25519 encr never 2>/dev/null
fi
asbackup gpgconf --homedir "$HOME_B/.gnupg" --kill gpg-agent || true   # amgpgcrypt starts its own (gpg-agent --daemon -- gpg)

mkdir -p "$ROOT"/{config,vtapes/slot1,vtapes/slot2,holding,state/log,state/curinfo,state/index,lists,keys} "$ROOT/trees/simple" "$ROOT/trees/gpg"
install -m 600 "$HOME_B/.am_passphrase" "$ROOT/keys/passphrase"
(umask 077; asbackup gpg --homedir "$HOME_B/.gnupg" --batch --armor --export-secret-keys backup >"$ROOT/keys/secret-key.asc")
[ -s "$ROOT/keys/secret-key.asc" ] || die "exporting the secret key of backup failed"

{ conf_base "$ROOT" "$CONF"; cat; } >"$ROOT/config/amanda.conf" <<CONF
define tapetype CRYPT {
    length 100 mbytes
    part-size 16 kbytes  # the encrypted level 0 of crypt-gpg spans parts
}
tapetype "CRYPT"
labelstr "^CRYPT-[0-9]+\$"
autolabel "CRYPT-%%" empty
runtapes 1
holdingdisk hd1 {
    directory "$ROOT/holding"
    use 50 mbytes
}
define application-tool crypt-amgtar {
    plugin "amgtar"
    property "GNUTAR-LISTDIR" "$ROOT/lists"
}
define dumptype crypt-base {
    program "APPLICATION"
    application "crypt-amgtar"
    auth "local"
    index yes
    holdingdisk required
    estimate calcsize
}
define dumptype crypt-simple {
    crypt-base
    compress client fast
    encrypt server
    server_encrypt "/usr/sbin/amcryptsimple"
    server_decrypt_option "-d"
}
define dumptype crypt-gpg {
    crypt-base
    compress none
    encrypt client
    client_encrypt "/usr/sbin/amgpgcrypt"
    client_decrypt_option "-d"
}
CONF
cat >"$ROOT/config/disklist" <<DL
localhost crypt-simple $ROOT/trees/simple crypt-simple
localhost crypt-gpg $ROOT/trees/gpg crypt-gpg
DL
: >"$ROOT/config/tapelist"
mkdir -p /etc/amanda
ln -sfn "$ROOT/config" "/etc/amanda/$CONF"
trap 'rm -f "/etc/amanda/$CONF"' EXIT   # the tests link it again while they use the lab

seq -f "simple line %05g, encrypted on the server with amcryptsimple" 1 400 >"$ROOT/trees/simple/lines.txt"
printf 'a small file\n' >"$ROOT/trees/simple/small file.txt"
seq -f "gpg line %05g, encrypted on the client with amgpgcrypt" 1 400 >"$ROOT/trees/gpg/lines.txt"
ln -s lines.txt "$ROOT/trees/gpg/link"

chown -R backup:backup "$ROOT/config" "$ROOT/vtapes" "$ROOT/holding" "$ROOT/state" "$ROOT/lists"
d=$ROOT; while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done
asbackup amlabel -f "$CONF" CRYPT-01 slot 1 >/dev/null
# One amdump per DLE, no gpg-agent between them: amgpgcrypt runs `gpg-agent --daemon -- gpg ...`,
# which fails ("a gpg-agent is already running") once amcryptsimple's gpg left an agent behind.
: >"$ROOT/runs.txt"
run=0
for dle in crypt-gpg crypt-simple; do
  run=$((run + 1))
  asbackup gpgconf --homedir "$HOME_B/.gnupg" --kill gpg-agent || true
  asbackup amdump "$CONF" localhost "$dle" </dev/null || true   # exit status is a bit mask; the trace log decides
  logf=$(readlink -f "$ROOT/state/log/log")
  ds=$(awk '$1=="START" && $2=="planner" {print $4; exit}' "$logf")
  grep -q "^DONE taper .* localhost $dle $ds 1 0 " "$logf" || { cat "$logf" >&2; die "$dle: no level 0 on the vtape in $logf"; }
  printf '%s %s 0 %s\n' "$run" "$ds" "$dle" >>"$ROOT/runs.txt"
  sleep 1   # the next run gets another datestamp
done
asbackup gpgconf --homedir "$HOME_B/.gnupg" --kill gpg-agent || true
