# Lifeboat rescue agent: the step functions a plan is made of.
# Contract: server/plan/steps.ts (names, arguments, guards); test/unit/rescue checks
# that every function there is defined here with `lb_args NAME MIN MAX` matching its arity.
#
# Every function that writes a disk calls lb_gate first (armed job + disk identity checked by
# check_disk, re-read right before the write). Its other arguments may not name another block
# device (lb_only_device), and mount points are in normal form and stay inside the target
# (lb_target_dir). guard_NAME is what the runner checks before skipping a call that already
# finished in this boot.

LB_STEP_NAMES="plan_begin check_disk wipe_disk partition create_md create_luks create_pv create_vg create_lv make_fs make_swap create_subvol set_default_subvol set_nocow mount_fs restore_dump fix_fstab set_identity map_nic set_address install_bootloader regen_initramfs unmount_all plan_done"
LB_CONTRACT_VERSION=3
# What the machine does once the job is done (plan_done's argument; END_STATES in steps.ts).
LB_END_STATES="reboot poweroff hold"

lb_never() { return 1; }

plan_begin() {
  lb_args plan_begin 3 3 $# || return 2
  if [ "$1" != "$LB_CONTRACT_VERSION" ]; then
    echo "plan_begin: plan uses step contract $1, this agent implements $LB_CONTRACT_VERSION" >&2
    return 1
  fi
  echo "restoring host $2: $3 calls"
}
guard_plan_begin() { lb_never; }

check_disk() {
  lb_args check_disk 4 4 $# || return 2
  _dev=$1 _serial=$2 _wwn=$3 _size=$4
  _n=$(lb_devname "$_dev")
  if [ ! -b "$_dev" ] || [ ! -e "/sys/class/block/$_n" ]; then
    echo "check_disk: $_dev does not exist" >&2
    return 1
  fi
  if [ -e "/sys/class/block/$_n/partition" ]; then
    echo "check_disk: $_dev is a partition, not a whole disk" >&2
    return 1
  fi
  _now_size=$(lb_disk_size "$_dev")
  if [ "$_now_size" != "$_size" ]; then
    echo "check_disk: $_dev is $_now_size bytes, the plan expects $_size; nothing written" >&2
    return 1
  fi
  _now_serial=$(lb_disk_serial "$_dev")
  if [ -n "$_serial" ] && [ "$_now_serial" != "$_serial" ]; then
    echo "check_disk: $_dev has serial '$_now_serial', the plan expects '$_serial'; nothing written" >&2
    return 1
  fi
  _now_wwn=$(lb_disk_wwn "$_dev")
  if [ -n "$_wwn" ] && [ "$_now_wwn" != "$_wwn" ]; then
    echo "check_disk: $_dev has WWN '$_now_wwn', the plan expects '$_wwn'; nothing written" >&2
    return 1
  fi
  mkdir -p "$LB_RUN/verified"
  lb_identity "$_n" >"$LB_RUN/verified/$_n"
  echo "check_disk: $_dev matches (serial '${_now_serial}', wwn '${_now_wwn}', $_size bytes)"
}
guard_check_disk() { lb_never; }

lb_partitions_of() {
  _pn=$(lb_devname "$1")
  for _q in "/sys/class/block/$_pn/$_pn"*; do
    [ -e "$_q/partition" ] && printf '/dev/%s\n' "${_q##*/}"
  done
}

# Tears down what sits on top of DEV (MD arrays, dm/LVM/LUKS mappings) so it can be wiped.
lb_release_holders() {
  for _h in $(ls "/sys/class/block/$(lb_devname "$1")/holders" 2>/dev/null); do
    lb_release_holders "/dev/$_h"
    case $_h in
      md*) mdadm --stop "/dev/$_h" ;;
      dm-*) dmsetup remove "$(cat "/sys/class/block/$_h/dm/name")" ;;
    esac
  done
}

wipe_disk() {
  lb_args wipe_disk 2 2 $# || return 2
  lb_gate "$1" || return 1
  for _p in $(lb_partitions_of "$1") "$1"; do
    lb_release_holders "$_p"
    wipefs -a "$_p" || return 1
  done
  blockdev --rereadpt "$1" 2>/dev/null
  echo "wipe_disk: $1 has no signatures left"
}
guard_wipe_disk() {
  _id=$(sfdisk --dump "$1" 2>/dev/null | sed -n 's/^label-id: *//p' | tr 'A-F' 'a-f')
  [ -n "$_id" ] && [ "$_id" = "$(printf '%s' "$2" | tr 'A-F' 'a-f')" ]
}

# The partition lines of an sfdisk dump without the device names (they differ by disk).
lb_sfdisk_norm() { sed -n -e 's/^label-id: *//p' -e 's/^[^:]*[0-9] *: *//p' | tr -d ' ' | tr 'A-F' 'a-f'; }

lb_wait_partitions() {
  udevadm settle --timeout=20 2>/dev/null
  _want=$(sfdisk --dump "$1" 2>/dev/null | grep -c '^/dev/')
  for _t in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    _have=0
    for _p in $(lb_partitions_of "$1"); do [ -b "$_p" ] && _have=$((_have + 1)); done
    [ "$_have" -ge "$_want" ] && return 0
    partx -u "$1" 2>/dev/null
    sleep 0.5
  done
  echo "partition: $1: the kernel shows $_have of $_want partitions" >&2
  return 1
}

partition() {
  lb_args partition 2 2 $# || return 2
  lb_gate "$1" || return 1
  printf '%s\n' "$2" | sfdisk --no-tell-kernel --wipe always --wipe-partitions always "$1" || return 1
  blockdev --rereadpt "$1" 2>/dev/null || partx -u "$1"
  lb_wait_partitions "$1" || return 1
  sfdisk --dump "$1"
}
guard_partition() { [ "$(sfdisk --dump "$1" 2>/dev/null | lb_sfdisk_norm)" = "$(printf '%s\n' "$2" | lb_sfdisk_norm)" ]; }

create_md() {
  lb_args create_md 6 - $# || return 2
  _dev=$1 _name=$2 _level=$3 _meta=$4 _uuid=$5 _kib=$6
  shift 6
  lb_gate "$@" || return 1
  case $_kib in *[!0-9]*) echo "refused: size '$_kib' is not a number of KiB; nothing written" >&2; return 1 ;; esac
  _count=$#
  if [ -n "$_name" ]; then set -- --name="$_name" "$@"; fi
  # A size for an array that is partitioned next: its table was laid out for exactly that size.
  if [ -n "$_kib" ]; then set -- --size="$_kib" "$@"; fi
  mdadm --create "$_dev" --run --verbose --level="$_level" --metadata="$_meta" --uuid="$_uuid" \
    --raid-devices="$_count" --homehost=any "$@"
}
guard_create_md() { [ -b "$1" ] && mdadm --detail "$1" 2>/dev/null | grep -qi "UUID : $5"; }

create_luks() {
  lb_args create_luks 8 8 $# || return 2
  _dev=$1 _uuid=$2 _name=$3 _kid=$4 _type=$5 _cipher=$6 _ksize=$7 _hash=$8
  lb_gate "$_dev" || return 1
  # The plan checked them against its allowlist (layout-validate.ts LUKS_FORMAT); here only
  # their shape, so no argument can be taken for an option or another device.
  case $_type in "" | luks1 | luks2) ;; *) echo "refused: '$_type' is not luks1 or luks2; nothing written" >&2; return 1 ;; esac
  case $_cipher$_hash in *[!a-z0-9:-]*) echo "refused: cipher '$_cipher' or hash '$_hash' is not a word of a-z, 0-9, ':' and '-'; nothing written" >&2; return 1 ;; esac
  case $_cipher$_hash in -*) echo "refused: cipher '$_cipher' or hash '$_hash' starts with '-'; nothing written" >&2; return 1 ;; esac
  case $_ksize in *[!0-9]*) echo "refused: key size '$_ksize' is not a number of bits; nothing written" >&2; return 1 ;; esac
  set -- --batch-mode --uuid="$_uuid"
  [ -n "$_type" ] && set -- "$@" --type "$_type"
  [ -n "$_cipher" ] && set -- "$@" --cipher "$_cipher"
  [ -n "$_ksize" ] && set -- "$@" --key-size "$_ksize"
  [ -n "$_hash" ] && set -- "$@" --hash "$_hash"
  _key="$LB_RUN/luks-$_kid.key"
  # The passphrase never travels in the plan: the agent fetches it for this job only.
  lb_curl -f --max-time 30 -o "$_key" "$LB_SERVER$LB_AGENT_BASE/$LB_JOB/keys/$_kid" || {
    echo "create_luks: cannot fetch key $_kid for this job" >&2
    return 1
  }
  cryptsetup luksFormat "$@" --key-file="$_key" "$_dev" &&
    cryptsetup open --key-file="$_key" "$_dev" "$_name"
  _rc=$?
  rm -f "$_key"
  return "$_rc"
}
guard_create_luks() {
  [ "$(cryptsetup luksUUID "$1" 2>/dev/null)" = "$2" ] && [ -b "/dev/mapper/$3" ] &&
    { [ -z "$5" ] || cryptsetup luksDump "$1" 2>/dev/null | grep -Eq "^Version:[[:space:]]+${5#luks}\$"; }
}

create_pv() {
  lb_args create_pv 2 2 $# || return 2
  lb_gate "$1" || return 1
  pvcreate -ff -y --uuid "$2" --norestorefile "$1"
}
guard_create_pv() { pvs --noheadings -o pv_uuid "$1" 2>/dev/null | tr -d ' ' | grep -qx "$2"; }

create_vg() {
  lb_args create_vg 2 - $# || return 2
  _vg=$1 _ext=$2
  shift 2
  lb_gate "$@" || return 1
  vgcreate -y -s "$((_ext / 1024))k" "$_vg" "$@"
}
guard_create_vg() { vgs "$1" >/dev/null 2>&1; }

create_lv() {
  lb_args create_lv 3 3 $# || return 2
  _pvs=$(pvs --noheadings -o pv_name -S "vg_name=$1" 2>/dev/null)
  [ -n "$_pvs" ] || { echo "create_lv: volume group $1 has no physical volumes" >&2; return 1; }
  lb_gate $_pvs || return 1
  lvcreate -L "${3}b" -n "$2" "$1" -W y -Z y -y
}
guard_create_lv() { [ -b "/dev/$1/$2" ] && [ "$(blockdev --getsize64 "/dev/$1/$2")" = "$3" ]; }

make_fs() {
  lb_args make_fs 4 - $# || return 2
  _fs=$1 _dev=$2 _uuid=$3 _label=$4
  shift 4
  lb_gate "$_dev" || return 1
  lb_only_device "$_dev" "$_uuid" "$_label" "$@" || return 1
  wipefs -a "$_dev" || return 1
  case $_fs in
    ext2 | ext3 | ext4)
      if [ -n "$_label" ]; then set -- -L "$_label" "$@"; fi
      if [ -n "$_uuid" ]; then set -- -U "$_uuid" "$@"; fi
      "mkfs.$_fs" -F "$@" "$_dev"
      ;;
    xfs)
      if [ -n "$_label" ]; then set -- -L "$_label" "$@"; fi
      if [ -n "$_uuid" ]; then set -- -m "uuid=$_uuid" "$@"; fi
      mkfs.xfs -f "$@" "$_dev"
      ;;
    vfat)
      if [ -n "$_label" ]; then set -- -n "$_label" "$@"; fi
      if [ -n "$_uuid" ]; then set -- -i "$(printf '%s' "$_uuid" | tr -d '-')" "$@"; fi
      mkfs.vfat "$@" "$_dev"
      ;;
    btrfs)
      if [ -n "$_label" ]; then set -- -L "$_label" "$@"; fi
      if [ -n "$_uuid" ]; then set -- -U "$_uuid" "$@"; fi
      # The kernel remembers scanned btrfs devices: an old copy of this UUID (a re-run, or the
      # wiped filesystem) would make mkfs refuse it as "non-unique".
      btrfs device scan --forget 2>/dev/null
      mkfs.btrfs -f "$@" "$_dev"
      ;;
    *)
      echo "make_fs: unsupported filesystem type $_fs" >&2
      return 1
      ;;
  esac
}
guard_make_fs() {
  [ "$(blkid -o value -s TYPE "$2" 2>/dev/null)" = "$1" ] &&
    { [ -z "$3" ] || [ "$(blkid -o value -s UUID "$2" | tr 'a-f' 'A-F')" = "$(printf '%s' "$3" | tr 'a-f' 'A-F')" ]; }
}

make_swap() {
  lb_args make_swap 3 3 $# || return 2
  _dev=$1 _uuid=$2 _label=$3
  set --
  if [ -n "$_label" ]; then set -- -L "$_label"; fi
  if [ -n "$_uuid" ]; then set -- -U "$_uuid" "$@"; fi
  lb_gate "$_dev" || return 1
  lb_only_device "$_dev" "$_uuid" "$_label" || return 1
  mkswap -f "$@" "$_dev"
}
guard_make_swap() { guard_make_fs swap "$1" "$2"; }

create_subvol() {
  lb_args create_subvol 2 2 $# || return 2
  lb_gate "$1" || return 1
  if ! lb_normal_path "/$2" || [ -z "$2" ]; then
    echo "refused: subvolume '$2' is not a relative path in normal form (no '..', '.' or '//'); nothing written" >&2
    return 1
  fi
  _top="$LB_RUN/btrfs-top"
  mkdir -p "$_top"
  mount -t btrfs -o subvolid=5 "$1" "$_top" || return 1
  mkdir -p "$(dirname "$_top/$2")"
  btrfs subvolume create "$_top/$2"
  _rc=$?
  umount "$_top"
  return "$_rc"
}
guard_create_subvol() {
  _top="$LB_RUN/btrfs-top"
  mkdir -p "$_top"
  mount -t btrfs -o subvolid=5,ro "$1" "$_top" 2>/dev/null || return 1
  btrfs subvolume show "$_top/$2" >/dev/null 2>&1
  _rc=$?
  umount "$_top"
  return "$_rc"
}

# lb_on_subvol rw|ro DEV PATH CMD...: runs CMD... TOP/PATH with the top level of the btrfs on DEV
# mounted at TOP (LB_RUN/btrfs-top), PATH checked first; unmounts it again.
lb_on_subvol() {
  if ! lb_normal_path "/$3" || [ -z "$3" ]; then
    echo "refused: subvolume '$3' is not a relative path in normal form (no '..', '.' or '//'); nothing written" >&2
    return 1
  fi
  _top="$LB_RUN/btrfs-top" _sub=$3
  mkdir -p "$_top"
  mount -t btrfs -o "subvolid=5,$1" "$2" "$_top" || return 1
  shift 3
  "$@" "$_top/$_sub"
  _rc=$?
  umount "$_top"
  return "$_rc"
}

set_default_subvol() {
  lb_args set_default_subvol 2 2 $# || return 2
  lb_gate "$1" || return 1
  lb_on_subvol rw "$1" "$2" btrfs subvolume set-default
}
# get-default answers "ID 268 gen 9 top level 257 path @/.snapshots/1/snapshot".
lb_is_default() { btrfs subvolume get-default "$_top" 2>/dev/null | grep -q " path ${1#"$_top"/}\$"; }
guard_set_default_subvol() { lb_on_subvol ro "$1" "$2" lb_is_default 2>/dev/null; }

set_nocow() {
  lb_args set_nocow 2 2 $# || return 2
  lb_gate "$1" || return 1
  lb_on_subvol rw "$1" "$2" chattr +C
}
lb_is_nocow() { lsattr -d "$1" 2>/dev/null | cut -d' ' -f1 | grep -q C; }
guard_set_nocow() { lb_on_subvol ro "$1" "$2" lb_is_nocow 2>/dev/null; }

mount_fs() {
  lb_args mount_fs 4 4 $# || return 2
  lb_gate "$1" || return 1
  lb_only_device "$1" "$3" "$4" || return 1
  _mp=$(lb_target_dir "$2") || return 1
  if [ -n "$4" ]; then
    mount -t "$3" -o "$4" "$1" "$_mp"
  else
    mount -t "$3" "$1" "$_mp"
  fi || return 1
  echo "mounted $1 on $_mp"
}
guard_mount_fs() { findmnt -n --mountpoint "$LB_TARGET$2" -o SOURCE 2>/dev/null | grep -q .; }

lb_decompressor() {
  case $1 in
    none | "") echo cat ;;
    gzip) echo "gzip -dc" ;;
    bzip2) echo "bzip2 -dc" ;;
    xz) echo "xz -dc" ;;
    zstd) echo "zstd -dcq" ;;
    *) return 1 ;;
  esac
}

# lb_stream_progress CURL_PID BASE: while curl runs, posts the bytes received so far (BASE plus
# what curl has written, from /proc/PID/io) every LB_PROGRESS_SECONDS, for the live job view.
lb_stream_progress() {
  while sleep "${LB_PROGRESS_SECONDS:-2}"; do
    _wchar=$(awk '/^wchar:/ {print $2}' "/proc/$1/io" 2>/dev/null) || break
    [ -n "$_wchar" ] || break
    # wchar also counts curl's few bytes of -w/stderr output: never report more than the total.
    _b=$(($2 + _wchar))
    [ "$_total" != null ] && [ "$_b" -gt "$_total" ] && _b=$_total
    lb_post_try events "{\"type\":\"stream\",\"dumpId\":$(lb_json_str "$_id"),\"bytes\":$_b,\"totalBytes\":$_total,\"done\":false}" 2>/dev/null
  done
}

# restore_dump: one HTTP stream → fifo → decompressor → tar/restore.
# The fifo's write end stays open across curl attempts, so a dropped connection is resumed
# with Range from the byte count received so far and the extractor sees one stream.
# No hash here: Lifeboat checks Amanda's CRC-32C on every byte it sends and cuts the stream
# short on a mismatch, which the byte count below fails. A sha256sum beside the extractor held
# the whole restore to a quarter of tar's own rate in an emulated guest (bench/restore-guest.ts).
restore_dump() {
  lb_args restore_dump 6 6 $# || return 2
  _mp=$1 _prog=$2 _level=$3 _comp=$4 _size=$5 _url=$6
  if ! lb_normal_path "$_mp"; then
    echo "refused: mount point '$_mp' is not an absolute path in normal form (no '..', '.' or '//'); nothing written" >&2
    return 1
  fi
  _dir="$LB_TARGET$_mp"
  # A DLE may be a directory inside a filesystem (/srv/docs on /): the nearest mount point
  # at or above it must be one the plan mounted on the target.
  _up=$_mp _src=
  while [ -z "$_src" ]; do
    _src=$(findmnt -n --mountpoint "$LB_TARGET${_up:-/}" -o SOURCE 2>/dev/null)
    [ -n "$_up" ] || break
    _up=${_up%/*}
  done
  if [ -z "$_src" ]; then
    echo "restore_dump: $_dir is on no filesystem mounted on the target" >&2
    return 1
  fi
  lb_gate "$_src" || return 1
  _dir=$(lb_target_dir "$_mp") || return 1
  _dec=$(lb_decompressor "$_comp") || { echo "restore_dump: unknown compression $_comp" >&2; return 1; }
  # URL is a path on the Lifeboat server; an absolute http(s) URL is taken as it is.
  case $_url in http://* | https://*) _full=$_url ;; *) _full=$LB_SERVER$_url ;; esac
  _id=${_url%/stream}
  _id=${_id##*/}
  _s="$LB_RUN/stream-$_id"
  rm -rf "$_s"
  mkdir -p "$_s"
  mkfifo "$_s/in"
  case $_prog in
    gtar) set -- tar --extract --listed-incremental=/dev/null --numeric-owner --preserve-permissions -f - ;;
    dump) set -- restore -r -y -f - ;;
    *)
      echo "restore_dump: unknown program $_prog" >&2
      return 1
      ;;
  esac
  # An uncompressed dump goes from the fifo straight to the extractor: a cat between them would
  # copy every byte twice more, which an emulated guest pays for in restore rate.
  if [ "$_dec" = cat ]; then
    (cd "$_dir" && "$@" <"$_s/in") >"$_s/extract.out" 2>&1 &
  else
    (cd "$_dir" && $_dec <"$_s/in" | "$@") >"$_s/extract.out" 2>&1 &
  fi
  _ext_pid=$!
  exec 3>"$_s/in"
  _got=0 _try=0 _rc=0
  _total=null
  [ -n "$_size" ] && _total=$_size
  while :; do
    # $! must be curl itself: lb_stream_progress reads its /proc/PID/io.
    lb_curl_exec -f --speed-limit 1 --speed-time 60 -H "Range: bytes=$_got-" \
      -w '%{http_code} %{size_download}' -o /proc/self/fd/3 "$_full" >"$_s/w" 2>"$_s/curl.err" &
    _cpid=$!
    lb_stream_progress "$_cpid" "$_got" &
    _ppid=$!
    wait "$_cpid"
    _crc=$?
    kill "$_ppid" 2>/dev/null
    wait "$_ppid" 2>/dev/null
    _w=$(cat "$_s/w")
    _code=${_w%% *}
    _bytes=${_w##* }
    _got=$((_got + ${_bytes:-0}))
    if [ "$_crc" = 0 ]; then
      if [ "$_code" = 200 ] && [ "$_got" != "${_bytes:-0}" ]; then
        echo "restore_dump: the server ignored Range after a drop; the stream is corrupt" >&2
        _rc=1
      fi
      break
    fi
    # Write error (23): the extractor stopped reading; its own message explains why.
    if [ "$_crc" = 23 ] || ! kill -0 "$_ext_pid" 2>/dev/null; then _rc=1; break; fi
    _try=$((_try + 1))
    echo "restore_dump: stream interrupted at byte $_got ($(tail -n1 "$_s/curl.err")); resuming (attempt $_try)"
    lb_event "{\"type\":\"stream\",\"dumpId\":$(lb_json_str "$_id"),\"bytes\":$_got,\"totalBytes\":$_total,\"done\":false}"
    [ "$_try" -ge "${LB_STREAM_RETRIES:-60}" ] && { _rc=1; break; }
    sleep 2
  done
  exec 3>&-
  wait "$_ext_pid" || _rc=1
  cat "$_s/extract.out"
  echo "restore_dump: $_prog level $_level into $_mp: $_got bytes"
  if [ -n "$_size" ] && [ "$_got" != "$_size" ]; then
    echo "restore_dump: received $_got bytes, the catalog says $_size" >&2
    _rc=1
  fi
  lb_event "{\"type\":\"stream\",\"dumpId\":$(lb_json_str "$_id"),\"bytes\":$_got,\"totalBytes\":$_total,\"done\":true}"
  [ "$_rc" = 0 ] && printf '%s %s\n' "$_url" "$_got" >>"$LB_RUN/restored"
  return "$_rc"
}
guard_restore_dump() { grep -q "^$6 " "$LB_RUN/restored" 2>/dev/null; }

fix_fstab() {
  lb_args fix_fstab 2 2 $# || return 2
  # Both go into a sed expression: UUIDs only (letters, digits, '-').
  case $1$2 in *[!A-Za-z0-9-]*) echo "refused: fix_fstab takes two UUIDs, got '$1' '$2'; nothing written" >&2; return 1 ;; esac
  if [ -z "$1" ] || [ -z "$2" ]; then echo "refused: fix_fstab takes two UUIDs; nothing written" >&2; return 1; fi
  lb_gate "$(findmnt -n --mountpoint "$LB_TARGET/" -o SOURCE)" || return 1
  for _f in "$LB_TARGET/etc/fstab" "$LB_TARGET/etc/crypttab"; do
    [ -f "$_f" ] && sed -i "s/$1/$2/g" "$_f"
  done
  echo "fix_fstab: $1 -> $2"
}
guard_fix_fstab() { ! grep -qs "$1" "$LB_TARGET/etc/fstab" "$LB_TARGET/etc/crypttab"; }

set_identity() {
  lb_args set_identity 1 1 $# || return 2
  case $1 in "" | *[!A-Za-z0-9.-]*) echo "refused: '$1' is not a host name (letters, digits, '-' and '.'); nothing written" >&2; return 1 ;; esac
  lb_gate "$(findmnt -n --mountpoint "$LB_TARGET/" -o SOURCE)" || return 1
  _old=$(cat "$LB_TARGET/etc/hostname" 2>/dev/null)
  mkdir -p "$LB_TARGET/etc"
  printf '%s\n' "$1" >"$LB_TARGET/etc/hostname"
  # Host names are letters, digits, '-' and '.' (the plan checked), so they are safe in sed.
  if [ -n "$_old" ] && [ -f "$LB_TARGET/etc/hosts" ]; then
    _re=$(printf '%s' "$_old" | sed 's/\./\\./g')
    sed -i "s/\([[:space:]]\)$_re\([[:space:]]\|$\)/\1$1\2/g" "$LB_TARGET/etc/hosts"
  fi
  # A clone shares neither the template's machine-id (empty: systemd makes one at first boot)
  # nor its SSH host keys.
  [ -f "$LB_TARGET/etc/machine-id" ] && : >"$LB_TARGET/etc/machine-id"
  rm -f "$LB_TARGET"/etc/ssh/ssh_host_*
  if chroot "$LB_TARGET" sh -c 'command -v ssh-keygen' >/dev/null 2>&1; then
    chroot "$LB_TARGET" ssh-keygen -A || return 1
  fi
  echo "set_identity: $1"
}
guard_set_identity() { [ "$(cat "$LB_TARGET/etc/hostname" 2>/dev/null)" = "$1" ]; }

# lb_nic_configs: the restored system's files that may pin a NIC by MAC (regular files only:
# a symlink in the restored tree may lead out of it).
lb_nic_configs() {
  for _f in "$LB_TARGET"/etc/network/interfaces "$LB_TARGET"/etc/network/interfaces.d/* \
    "$LB_TARGET"/etc/systemd/network/*.network "$LB_TARGET"/etc/systemd/network/*.link "$LB_TARGET"/etc/systemd/network/*.netdev \
    "$LB_TARGET"/etc/netplan/*.yaml "$LB_TARGET"/etc/NetworkManager/system-connections/* \
    "$LB_TARGET"/etc/udev/rules.d/70-persistent-net.rules "$LB_TARGET"/etc/sysconfig/network-scripts/ifcfg-*; do
    case ${_f##*/} in 10-lifeboat-*.link) continue ;; esac # ours: each names its own NIC's new MAC
    [ -f "$_f" ] && [ ! -L "$_f" ] && lb_inside_target "$_f" && printf '%s\n' "$_f"
  done
}

# lb_nic_link NAME: the .link file map_nic writes for NAME.
lb_nic_link() { printf '%s/etc/systemd/network/10-lifeboat-%s.link' "$LB_TARGET" "$1"; }

map_nic() {
  lb_args map_nic 3 3 $# || return 2
  # All three go into file names and sed expressions: checked here as the plan builder did (server/plan/nics.ts).
  case $1 in "" | . | .. | *[!A-Za-z0-9_.-]*) echo "refused: '$1' is not a NIC name; nothing written" >&2; return 1 ;; esac
  [ ${#1} -le 15 ] || { echo "refused: NIC name '$1' is longer than 15 characters; nothing written" >&2; return 1; }
  for _m in "$2" "$3"; do
    case $_m in [0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]) ;;
      *) echo "refused: '$_m' is not a MAC (aa:bb:cc:dd:ee:ff); nothing written" >&2; return 1 ;; esac
  done
  lb_gate "$(findmnt -n --mountpoint "$LB_TARGET/" -o SOURCE)" || return 1
  _dir=$(lb_target_dir /etc/systemd/network) || return 1
  # systemd-udevd names the NIC with this MAC as the old one was named (the first .link that matches wins).
  printf '# Lifeboat: the NIC that replaced %s (%s) keeps its name.\n[Match]\nMACAddress=%s\n\n[Link]\nName=%s\n' "$1" "$2" "$3" "$1" >"$_dir/10-lifeboat-$1.link"
  echo "map_nic: $1 is the NIC with $3"
  [ "$2" = "$3" ] && return 0
  _up2=$(printf '%s' "$2" | tr a-f A-F)
  _up3=$(printf '%s' "$3" | tr a-f A-F)
  for _f in $(lb_nic_configs); do
    grep -qi "$2" "$_f" || continue
    sed -i -e "s/$2/$3/g" -e "s/$_up2/$_up3/g" "$_f" && echo "map_nic: ${_f#"$LB_TARGET"}: $2 -> $3"
  done
  return 0
}
guard_map_nic() {
  grep -qx "MACAddress=$3" "$(lb_nic_link "$1")" 2>/dev/null || return 1
  [ "$2" = "$3" ] || ! lb_nic_configs | xargs -r grep -qis "$2"
}

# lb_address_files NAME: the files set_address writes for NIC NAME, one a line, those the
# restored system has a place for (each network stack it carries: a file or directory of its).
lb_address_files() {
  [ -f "$LB_TARGET/etc/network/interfaces" ] && printf '%s\n' "$LB_TARGET/etc/network/interfaces"
  [ -d "$LB_TARGET/etc/systemd/network" ] && ls "$LB_TARGET"/etc/systemd/network/*.network >/dev/null 2>&1 &&
    printf '%s\n' "$LB_TARGET/etc/systemd/network/05-lifeboat-$1.network"
  ls "$LB_TARGET"/etc/netplan/*.yaml >/dev/null 2>&1 && printf '%s\n' "$LB_TARGET/etc/netplan/99-lifeboat-$1.yaml"
  [ -d "$LB_TARGET/etc/NetworkManager/system-connections" ] && printf '%s\n' "$LB_TARGET/etc/NetworkManager/system-connections/lifeboat-$1.nmconnection"
  return 0
}

set_address() {
  lb_args set_address 4 4 $# || return 2
  # All go into files and sed expressions: checked here as the plan builder did (plan-stages.ts staticAddress).
  case $1 in "" | . | .. | *[!A-Za-z0-9_.-]*) echo "refused: '$1' is not a NIC name; nothing written" >&2; return 1 ;; esac
  case $2 in *[!0-9./]* | */*/* | "") echo "refused: '$2' is not an IPv4 address with its prefix; nothing written" >&2; return 1 ;; esac
  case $2 in */*) ;; *) echo "refused: '$2' has no prefix (e.g. /24); nothing written" >&2; return 1 ;; esac
  case $3 in *[!0-9.]*) echo "refused: '$3' is not an IPv4 gateway; nothing written" >&2; return 1 ;; esac
  case $4 in *[!0-9.,]*) echo "refused: '$4' is not a list of IPv4 DNS servers; nothing written" >&2; return 1 ;; esac
  lb_gate "$(findmnt -n --mountpoint "$LB_TARGET/" -o SOURCE)" || return 1
  _files=$(lb_address_files "$1")
  if [ -z "$_files" ]; then
    # A system with no network configuration of its own: ifupdown's file, which Debian reads.
    lb_target_dir /etc/network >/dev/null || return 1
    : >"$LB_TARGET/etc/network/interfaces"
    _files="$LB_TARGET/etc/network/interfaces"
  fi
  _dns_sp=$(printf '%s' "$4" | tr ',' ' ')
  for _f in $_files; do
    lb_inside_target "$_f" || { echo "refused: ${_f#"$LB_TARGET"} leads out of the restored system; nothing written" >&2; return 1; }
    [ -L "$_f" ] && { echo "refused: ${_f#"$LB_TARGET"} is a symlink; nothing written" >&2; return 1; }
    case $_f in
      */etc/network/interfaces)
        # The NIC's own stanza (its iface block and auto/allow-* lines) commented out, the static one appended.
        awk -v nic="$1" '
          /^[ \t]*(iface|mapping|source|source-directory|auto|allow-[a-z]+|rename)[ \t]/ { inblock = ($1 == "iface" && $2 == nic) }
          inblock || (($1 == "auto" || $1 ~ /^allow-/) && $2 == nic && NF == 2) { print "# lifeboat: " $0; next }
          { print }' "$_f" >"$_f.lifeboat" && mv "$_f.lifeboat" "$_f"
        {
          printf '\n# Lifeboat: this clone'"'"'s own address.\nauto %s\niface %s inet static\n    address %s\n' "$1" "$1" "$2"
          [ -n "$3" ] && printf '    gateway %s\n' "$3"
          [ -n "$4" ] && printf '    dns-nameservers %s\n' "$_dns_sp"
        } >>"$_f" ;;
      *.network)
        {
          printf '# Lifeboat: this clone'"'"'s own address (ahead of the other .network files).\n[Match]\nName=%s\n\n[Network]\nAddress=%s\n' "$1" "$2"
          [ -n "$3" ] && printf 'Gateway=%s\n' "$3"
          for _d in $_dns_sp; do printf 'DNS=%s\n' "$_d"; done
        } >"$_f" ;;
      *.yaml)
        {
          printf '# Lifeboat: this clone'"'"'s own address (over the other netplan files).\nnetwork:\n  version: 2\n  ethernets:\n    %s:\n      dhcp4: false\n      addresses: [%s]\n' "$1" "$2"
          [ -n "$3" ] && printf '      routes:\n        - to: default\n          via: %s\n' "$3"
          [ -n "$4" ] && printf '      nameservers:\n        addresses: [%s]\n' "$(printf '%s' "$4" | sed 's/,/, /g')"
        } >"$_f"
        chmod 600 "$_f" ;;
      *.nmconnection)
        {
          printf '# Lifeboat: this clone'"'"'s own address (ahead of the other profiles).\n[connection]\nid=lifeboat-%s\ntype=ethernet\ninterface-name=%s\nautoconnect-priority=100\n\n[ipv4]\nmethod=manual\naddress1=%s%s\n' "$1" "$1" "$2" "${3:+,$3}"
          [ -n "$4" ] && printf 'dns=%s;\n' "$(printf '%s' "$4" | tr ',' ';')"
          printf '\n[ipv6]\nmethod=auto\n'
        } >"$_f"
        chmod 600 "$_f" ;;
    esac
    echo "set_address: ${_f#"$LB_TARGET"}: $1 $2"
  done
}
guard_set_address() {
  _files=$(lb_address_files "$1")
  [ -n "$_files" ] || return 1
  for _f in $_files; do grep -qsF "$2" "$_f" || return 1; done
}

lb_bind_system() {
  for _b in dev proc sys; do
    mkdir -p "$LB_TARGET/$_b"
    if ! findmnt -n --mountpoint "$LB_TARGET/$_b" >/dev/null; then
      # rslave: unmounting these later must never propagate back to the rescue system's own.
      mount --rbind "/$_b" "$LB_TARGET/$_b" && mount --make-rslave "$LB_TARGET/$_b"
    fi
  done
}

# lb_target_has CMD: the restored system has CMD on its PATH.
lb_target_has() { chroot "$LB_TARGET" sh -c "command -v $1" >/dev/null 2>&1; }

# lb_grub_install ARGS: grub-install (Debian) or grub2-install (Fedora family) of the restored system.
lb_grub_install() {
  for _gi in grub-install grub2-install; do
    lb_target_has $_gi && { chroot "$LB_TARGET" $_gi "$@"; return; }
  done
  echo "install_bootloader: the restored system has no grub-install or grub2-install" >&2
  return 1
}

# lb_uuid_links: /dev/disk/by-uuid links for what is mounted on the target, where udev made
# none: grub-mkconfig writes root=UUID=… only when the root's link is there, else the kernel's
# name of the day (root=/dev/sda2).
lb_uuid_links() {
  mkdir -p /dev/disk/by-uuid
  for _src in $(findmnt -rn -o SOURCE -R -M "$LB_TARGET/" | grep '^/dev/' | sed 's/\[.*//' | sort -u); do
    _u=$(blkid -o value -s UUID "$_src" 2>/dev/null)
    [ -n "$_u" ] && [ ! -e "/dev/disk/by-uuid/$_u" ] && ln -s "$_src" "/dev/disk/by-uuid/$_u"
  done
  return 0
}

# lb_grub_config: writes grub.cfg anew from the restored system's own /etc/default/grub, so
# it names the disks and UUIDs as they are now; kept as restored when there is no mkconfig.
lb_grub_config() {
  lb_uuid_links
  if lb_target_has grub-mkconfig; then
    chroot "$LB_TARGET" grub-mkconfig -o /boot/grub/grub.cfg
  elif lb_target_has grub2-mkconfig; then
    chroot "$LB_TARGET" grub2-mkconfig -o /boot/grub2/grub.cfg
  else
    echo "install_bootloader: no grub-mkconfig in the restored system; grub.cfg kept as restored"
  fi
}

install_bootloader() {
  lb_args install_bootloader 5 5 $# || return 2
  _fw=$1 _loader=$2 _disk=$3 _efi=$4 _bid=$5
  lb_gate "$_disk" || return 1
  lb_bind_system
  # A rescue system started in BIOS mode cannot write EFI boot entries: then the loader also
  # goes to the removable path (EFI/BOOT/BOOTX64.EFI) that every UEFI firmware tries.
  _nvram=yes
  [ -d /sys/firmware/efi/efivars ] || _nvram=no
  case $_fw/$_loader in
    bios/grub)
      lb_grub_install --target=i386-pc "$_disk" && lb_grub_config
      ;;
    uefi/grub)
      [ $_nvram = yes ] && mount -t efivarfs efivarfs "$LB_TARGET/sys/firmware/efi/efivars" 2>/dev/null
      set -- --target=x86_64-efi --efi-directory="$_efi" --bootloader-id="$_bid" --recheck
      if lb_grub_install --help 2>/dev/null | grep -q -- --force-extra-removable; then
        set -- "$@" --force-extra-removable
      elif [ $_nvram = no ]; then
        set -- "$@" --removable
      fi
      [ $_nvram = yes ] || set -- "$@" --no-nvram
      lb_grub_install "$@" && lb_grub_config
      ;;
    uefi/grub-shim)
      # Secure Boot: the restored system's own shim-signed and grub-efi-amd64-signed. grub-install
      # --uefi-secure-boot puts shimx64.efi (the NVRAM entry's file) beside the signed grubx64.efi;
      # the removable path is made shim too (a firmware that lost the entry still starts shim).
      for _f in /usr/lib/shim/shimx64.efi.signed /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed; do
        [ -f "$LB_TARGET$_f" ] || { echo "install_bootloader: the restored system has no $_f (shim-signed, grub-efi-amd64-signed)" >&2; return 1; }
      done
      [ $_nvram = yes ] && mount -t efivarfs efivarfs "$LB_TARGET/sys/firmware/efi/efivars" 2>/dev/null
      set -- --target=x86_64-efi --efi-directory="$_efi" --bootloader-id="$_bid" --recheck --uefi-secure-boot
      [ $_nvram = yes ] || set -- "$@" --no-nvram
      lb_grub_install "$@" || return 1
      _dir="$LB_TARGET$_efi/EFI/$_bid"
      [ -f "$_dir/shimx64.efi" ] && [ -f "$_dir/grubx64.efi" ] || { echo "install_bootloader: grub-install --uefi-secure-boot left no shimx64.efi and grubx64.efi in $_efi/EFI/$_bid" >&2; return 1; }
      mkdir -p "$LB_TARGET$_efi/EFI/BOOT"
      cp "$_dir/shimx64.efi" "$LB_TARGET$_efi/EFI/BOOT/BOOTX64.EFI" && cp "$_dir/grubx64.efi" "$LB_TARGET$_efi/EFI/BOOT/grubx64.efi" || return 1
      # The signed GRUB reads grub.cfg beside itself when its built-in /EFI/debian has none.
      if [ -f "$_dir/grub.cfg" ]; then cp "$_dir/grub.cfg" "$LB_TARGET$_efi/EFI/BOOT/grub.cfg" || return 1; fi
      lb_grub_config
      ;;
    uefi/systemd-boot)
      if [ $_nvram = yes ]; then
        chroot "$LB_TARGET" bootctl install --esp-path="$_efi"
      else
        chroot "$LB_TARGET" bootctl install --esp-path="$_efi" --no-variables
      fi
      ;;
    *)
      echo "install_bootloader: unsupported $_fw/$_loader" >&2
      return 1
      ;;
  esac
}
guard_install_bootloader() { lb_never; }

regen_initramfs() {
  lb_args regen_initramfs 1 1 $# || return 2
  lb_gate "$(findmnt -n --mountpoint "$LB_TARGET/" -o SOURCE)" || return 1
  case $1 in
    update-initramfs) set -- update-initramfs -u -k all ;;
    dracut) set -- dracut --regenerate-all -f ;;
    mkinitcpio) set -- mkinitcpio -P ;;
    *)
      echo "regen_initramfs: unknown tool $1" >&2
      return 1
      ;;
  esac
  if ! lb_target_has "$1"; then
    echo "regen_initramfs: the restored system has no $1" >&2
    return 1
  fi
  lb_bind_system
  chroot "$LB_TARGET" "$@"
}
guard_regen_initramfs() { lb_never; }

unmount_all() {
  lb_args unmount_all 0 0 $# || return 2
  # The log goes into the restored system before it is unmounted.
  if findmnt -n --mountpoint "$LB_TARGET/" >/dev/null 2>&1; then
    mkdir -p "$LB_TARGET/var/log/lifeboat"
    cp "$LB_LOG" "$LB_TARGET/var/log/lifeboat/recovery-${LB_JOB:-job}.log"
  fi
  sync
  for _m in $(findmnt -rn -o TARGET | grep "^$LB_TARGET" | sort -r); do
    umount "$_m" 2>/dev/null || umount -l "$_m" || return 1
  done
  for _d in /dev/mapper/*; do
    [ "$_d" = /dev/mapper/control ] || [ ! -b "$_d" ] && continue
    cryptsetup status "$_d" >/dev/null 2>&1 && cryptsetup close "$_d"
  done
  command -v vgchange >/dev/null && vgchange -an >/dev/null 2>&1
  command -v mdadm >/dev/null && mdadm --stop --scan >/dev/null 2>&1
  echo "unmounted everything below $LB_TARGET"
}
guard_unmount_all() { lb_never; }

plan_done() {
  lb_args plan_done 1 1 $# || return 2
  case " $LB_END_STATES " in
    *" $1 "*) ;;
    *)
      echo "plan_done: unknown end state '$1' (expected one of: $LB_END_STATES)" >&2
      return 1
      ;;
  esac
  # Read by lb_finish once Lifeboat confirmed the job done.
  mkdir -p "$LB_RUN"
  printf '%s\n' "$1" >"$LB_RUN/end-state"
  echo "plan complete; once Lifeboat confirms the job done: $(lb_end_state_words "$1")"
}
guard_plan_done() { lb_never; }
