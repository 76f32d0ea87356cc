# Lifeboat rescue agent: the parts that are not step functions (POSIX sh, busybox).
# Sourced by /init, and by the tests on the host (every path below can be overridden).
#
# State lives in files under LB_RUN, because each step runs in a subshell:
#   armed           the job id, written only after the server handed out the plan (armed job)
#   verified/NAME   identity (serial, wwn, size) of a disk check_disk matched
#   done            "INDEX SHA" of every call finished in this boot (resume after a retry)
#   agent.log       everything the agent did; posted at the end, copied into the restored system

: "${LB_RUN:=/run/lifeboat}"
: "${LB_TARGET:=/mnt/target}"
: "${LB_CMDLINE_FILE:=/proc/cmdline}"
: "${LB_HEARTBEAT_SECONDS:=5}"
: "${LB_AGENT_BASE:=/api/v1/agent/jobs}"
: "${LB_RESOLV:=/etc/resolv.conf}"
LB_LOG="$LB_RUN/agent.log"

lb_log() {
  mkdir -p "$LB_RUN"
  printf '%s lifeboat: %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$LB_LOG" >&2
}

# --- kernel command line (contract: server/plan/cmdline.ts) -----------------------

# lb_cmdline_value KEY CMDLINE: the value of the last word "KEY=value" (the kernel's own rule).
lb_cmdline_value() {
  _key=$1 _val=""
  set -f
  for _w in $2; do
    case $_w in "$_key"=*) _val=${_w#"$_key"=} ;; esac
  done
  set +f
  printf '%s' "$_val"
}

# Sets LB_SERVER, LB_JOB, LB_TOKEN, LB_CODE (a boot medium's one-time code), LB_MAC from the command line, and the rescue network
# (RescueNet): LB_NET_BOND (MODE,MAC,MAC…), LB_NET_VLAN, LB_NET_IP (address/prefix), LB_NET_GW,
# LB_NET_DNS (comma separated). BOOTIF (pxelinux form 01-aa-bb-…) is the fallback for the MAC.
lb_parse_cmdline() {
  LB_SERVER=$(lb_cmdline_value lifeboat.server "$1")
  LB_JOB=$(lb_cmdline_value lifeboat.job "$1")
  LB_TOKEN=$(lb_cmdline_value lifeboat.token "$1")
  LB_CODE=$(lb_cmdline_value lifeboat.code "$1")
  LB_MAC=$(lb_cmdline_value lifeboat.mac "$1")
  LB_NET_BOND=$(lb_cmdline_value lifeboat.bond "$1" | tr 'A-F' 'a-f')
  LB_NET_VLAN=$(lb_cmdline_value lifeboat.vlan "$1")
  LB_NET_IP=$(lb_cmdline_value lifeboat.ip "$1")
  LB_NET_GW=$(lb_cmdline_value lifeboat.gw "$1")
  LB_NET_DNS=$(lb_cmdline_value lifeboat.dns "$1")
  if [ -z "$LB_MAC" ]; then
    _bootif=$(lb_cmdline_value BOOTIF "$1")
    [ -n "$_bootif" ] && LB_MAC=$(printf '%s' "${_bootif#??-}" | tr '-' ':')
  fi
  LB_MAC=$(printf '%s' "$LB_MAC" | tr 'A-F-' 'a-f:')
  LB_SERVER=${LB_SERVER%/}
}

# --- JSON ----------------------------------------------------------------------------

# lb_json_str: stdin → one JSON string literal (control characters dropped, lines joined by \n).
lb_json_esc() {
  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' -e 's/\r/\\r/g' | tr -d '\000-\010\013\014\016-\037' |
    awk 'BEGIN{printf "\""} {printf "%s%s", (NR>1?"\\n":""), $0} END{printf "\""}'
}
lb_json_str() { printf '%s' "$1" | lb_json_esc; }
# A string, or null when empty.
lb_json_opt() { if [ -n "$1" ]; then lb_json_str "$1"; else printf 'null'; fi; }

# --- HTTP (contract: server/plan/agent-api.ts) ------------------------------------

# Lifeboat's answer to any call once the job has ended on the server (JOB_ENDED_STATUS): stop.
LB_JOB_ENDED_HTTP=410

lb_curl() {
  (lb_curl_exec "$@")
}

# lb_curl_exec ARGS: lb_curl in place of the calling (sub)shell. `lb_curl_exec … &` makes $! curl
# itself, whose /proc/PID/io counts its writes (a function run in the background is a subshell
# that counts none of them).
lb_curl_exec() {
  exec curl -sS --connect-timeout 10 -H "Authorization: Bearer $LB_TOKEN" "$@"
}

# lb_post_try NAME JSON: one POST to an agent route. 0: accepted. 1: no answer (network down,
# server restarting, 5xx): worth trying again. 2: refused (any other 4xx; the server's reason on
# stderr). 3: the job has ended on the server (cancelled, failed, expired): LB_ENDED says which.
lb_post_try() {
  _pt_resp=$(printf '%s' "$2" | lb_curl --max-time 30 -H 'Content-Type: application/json' --data-binary @- \
    -w '\n%{http_code}' "$LB_SERVER$LB_AGENT_BASE/$LB_JOB/$1")
  _pt_code=${_pt_resp##*"
"}
  _pt_body=${_pt_resp%"$_pt_code"}
  case $_pt_code in
    2??) return 0 ;;
    "$LB_JOB_ENDED_HTTP")
      LB_ENDED=$(printf '%s' "$_pt_body" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')
      LB_ENDED=${LB_ENDED:-ended}
      return 3
      ;;
    4??)
      echo "lifeboat: Lifeboat refused POST $1 (HTTP $_pt_code): $_pt_body" >&2
      return 2
      ;;
    *) return 1 ;;
  esac
}

# lb_post NAME JSON: lb_post_try until Lifeboat answers, and its answer (0, 2 or 3). A call it did
# not hear is tried again with backoff (LB_RETRY_SECONDS doubling up to LB_RETRY_MAX_SECONDS), said
# on the console, for as long as it takes: the agent never goes on without an answer.
lb_post() {
  _p_wait=${LB_RETRY_SECONDS:-2} _p_try=1
  while :; do
    lb_post_try "$1" "$2"
    _p_rc=$?
    [ "$_p_rc" = 1 ] || return "$_p_rc"
    lb_log "no answer from Lifeboat to POST $1 (attempt $_p_try): nothing more happens here until it answers; again in $_p_wait s"
    sleep "$_p_wait"
    _p_try=$((_p_try + 1)) _p_wait=$((_p_wait * 2))
    [ "$_p_wait" -gt "${LB_RETRY_MAX_SECONDS:-60}" ] && _p_wait=${LB_RETRY_MAX_SECONDS:-60}
  done
}

lb_event() { lb_post events "$1"; }

lb_heartbeat_loop() {
  while :; do
    _hb=$(printf '{}' | lb_curl --max-time 10 -H 'Content-Type: application/json' --data-binary @- -o /dev/null \
      -w '%{http_code}' "$LB_SERVER$LB_AGENT_BASE/$LB_JOB/heartbeat" 2>/dev/null)
    if [ "$_hb" = "$LB_JOB_ENDED_HTTP" ] && [ ! -e "$LB_RUN/ended-heard" ]; then
      : >"$LB_RUN/ended-heard"
      lb_log "Lifeboat says this job has ended: nothing after the step under way (if any) runs"
    fi
    sleep "$LB_HEARTBEAT_SECONDS"
  done
}

lb_post_log() {
  lb_curl -f --max-time 60 -H 'Content-Type: text/plain' --data-binary @"$LB_LOG" -o /dev/null \
    "$LB_SERVER$LB_AGENT_BASE/$LB_JOB/log" || lb_log "posting the log failed"
}

# --- disks and hardware --------------------------------------------------------------

lb_trim() { sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'; }

# lb_devname DEV: kernel name of a block device (follows /dev/mapper and /dev/VG/LV links).
lb_devname() {
  _d=$(readlink -f "$1" 2>/dev/null || printf '%s' "$1")
  printf '%s' "${_d##*/}"
}

# lb_disk_prop DEV COLUMN FILE...: an lsblk column, else the first readable file below
# /sys/block/NAME (without a udev database lsblk knows no serial for virtio or nvme).
lb_disk_prop() {
  _n=$(lb_devname "$1") _col=$2
  shift 2
  _s=$(lsblk -dno "$_col" "/dev/$_n" 2>/dev/null | lb_trim)
  [ -z "$_s" ] && for _f in "$@"; do
    [ -r "/sys/block/$_n/$_f" ] && { _s=$(lb_trim <"/sys/block/$_n/$_f"); break; }
  done
  printf '%s' "$_s"
}
lb_disk_serial() { lb_disk_prop "$1" SERIAL serial device/serial; }
lb_disk_wwn() { lb_disk_prop "$1" WWN wwid device/wwid; }
lb_disk_size() { echo $(($(cat "/sys/class/block/$(lb_devname "$1")/size") * 512)); }

lb_disk_bus() {
  _n=$(lb_devname "$1")
  _b=$(lsblk -dno TRAN "/dev/$_n" 2>/dev/null | lb_trim)
  if [ -z "$_b" ]; then
    case $_n in vd*) _b=virtio ;; nvme*) _b=nvme ;; sd*) _b=scsi ;; esac
  fi
  printf '%s' "$_b"
}

# Whole disks worth reporting: real devices, not loop/ram/optical/dm/md.
lb_list_disks() {
  for _p in /sys/block/*; do
    _n=${_p##*/}
    case $_n in loop* | ram* | zram* | sr* | fd* | dm-* | md* | nbd*) continue ;; esac
    [ -e "$_p/device" ] || continue
    printf '%s\n' "$_n"
  done
}

lb_disk_signatures() {
  for _dev in "/dev/$1" $(cd "/sys/block/$1" && for _q in "$1"*; do [ -e "$_q/partition" ] && printf '/dev/%s ' "$_q"; done); do
    wipefs --no-act --noheadings --output TYPE,OFFSET "$_dev" 2>/dev/null | while read -r _t _o; do
      printf '%s\n' "${_dev#/dev/}:$_t@$_o"
    done
  done
}

# lb_json_array: stdin lines → JSON array of strings.
lb_json_array() {
  _first=1
  printf '['
  while IFS= read -r _l; do
    [ -z "$_l" ] && continue
    [ "$_first" = 1 ] || printf ','
    _first=0
    lb_json_str "$_l"
  done
  printf ']'
}

lb_disk_json() {
  _n=$1
  _model=""
  [ -r "/sys/block/$_n/device/model" ] && _model=$(lb_trim <"/sys/block/$_n/device/model")
  _byid=$(for _l in /dev/disk/by-id/*; do
    [ -L "$_l" ] && [ "$(readlink -f "$_l")" = "/dev/$_n" ] && printf '%s\n' "$_l"
  done)
  _rm=false
  [ "$(cat "/sys/block/$_n/removable" 2>/dev/null)" = 1 ] && _rm=true
  printf '{"name":%s,"path":%s,"sizeBytes":%s,"serial":%s,"wwn":%s,"model":%s,"bus":%s,"byId":%s,"logicalSectorSize":%s,"signatures":%s,"removable":%s}' \
    "$(lb_json_str "$_n")" "$(lb_json_str "/dev/$_n")" "$(lb_disk_size "/dev/$_n")" \
    "$(lb_json_opt "$(lb_disk_serial "/dev/$_n")")" "$(lb_json_opt "$(lb_disk_wwn "/dev/$_n")")" \
    "$(lb_json_opt "$_model")" "$(lb_json_opt "$(lb_disk_bus "/dev/$_n")")" \
    "$(printf '%s\n' "$_byid" | lb_json_array)" "$(cat "/sys/block/$_n/queue/logical_block_size")" \
    "$(lb_disk_signatures "$_n" | lb_json_array)" "$_rm"
}

lb_ip() { ip -4 -o addr show scope global 2>/dev/null | awk '{print $4; exit}' | cut -d/ -f1; }

lb_hello_json() {
  _disks=$(lb_list_disks | while read -r _n; do printf '%s\n' "$(lb_disk_json "$_n")"; done | paste -sd, -)
  _fw=bios
  [ -d /sys/firmware/efi ] && _fw=uefi
  # The machine's NICs: not our bond or VLAN, and a bond member by its own MAC (a bond gives it the bond's).
  _macs=$(for _i in /sys/class/net/*; do
    case ${_i##*/} in lo | lbbond | lbvlan*) continue ;; esac
    if [ -r "$_i/bonding_slave/perm_hwaddr" ]; then cat "$_i/bonding_slave/perm_hwaddr"; else cat "$_i/address"; fi
  done | lb_json_array)
  _uuid=$(cat /sys/class/dmi/id/product_uuid 2>/dev/null)
  _mem=$(awk '/^MemTotal:/ {print $2 * 1024}' /proc/meminfo)
  _cpus=$(grep -c '^processor' /proc/cpuinfo)
  _ip=$(lb_ip)
  printf '{"disks":[%s],"hardware":{"firmware":"%s","macs":%s,"kernel":%s,"memBytes":%s,"cpus":%s' \
    "$_disks" "$_fw" "$_macs" "$(lb_json_str "$(uname -r)")" "$_mem" "$_cpus"
  [ -n "$_uuid" ] && printf ',"smbiosUuid":%s' "$(lb_json_str "$_uuid")"
  [ -n "$_ip" ] && printf ',"ip":%s' "$(lb_json_str "$_ip")"
  printf '}'
  [ -n "${LB_SSH:-}" ] && printf ',"ssh":%s' "$(lb_json_str "$LB_SSH")"
  printf '}'
}

# --- the disk-write gate ----------------------------------------------------------------

# lb_whole_disks DEV: the whole disks below DEV (itself, those below a partition's parent, a
# dm/md device's slaves): a partition of an MD array leads to the array's member disks.
lb_whole_disks() {
  _wn=$(lb_devname "$1")
  _sys=/sys/class/block/$_wn
  [ -e "$_sys" ] || { printf '%s\n' "$_wn"; return; }
  if [ -e "$_sys/partition" ]; then
    _parent=$(readlink -f "$_sys/..")
    lb_whole_disks "/dev/${_parent##*/}"
  elif [ -n "$(ls "$_sys/slaves" 2>/dev/null)" ]; then
    for _s in $(ls "$_sys/slaves"); do lb_whole_disks "/dev/$_s"; done
  else
    printf '%s\n' "$_wn"
  fi
}

# lb_identity NAME: "serial|wwn|size" of a disk now.
lb_identity() { printf '%s|%s|%s' "$(lb_disk_serial "/dev/$1")" "$(lb_disk_wwn "/dev/$1")" "$(lb_disk_size "/dev/$1")"; }

# lb_gate DEV...: refuses (non-zero, one line) unless the plan came from an armed job and every
# whole disk under each DEV was matched by check_disk and still has that identity now.
lb_gate() {
  # Its variables are _g*: sh has no locals, and the steps calling it keep theirs (e.g. _disk).
  if [ -z "${LB_JOB:-}" ] || [ "$(cat "$LB_RUN/armed" 2>/dev/null)" != "$LB_JOB" ]; then
    echo "refused: no plan from an armed job; nothing written" >&2
    return 1
  fi
  if [ $# = 0 ]; then
    echo "refused: no device named to check; nothing written" >&2
    return 1
  fi
  for _gd in "$@"; do
    if [ -z "$_gd" ] || [ ! -b "$_gd" ]; then
      echo "refused: '$_gd' is not a block device; nothing written" >&2
      return 1
    fi
    _gws=$(lb_whole_disks "$_gd")
    if [ -z "$_gws" ]; then
      echo "refused: no whole disk found under $_gd; nothing written" >&2
      return 1
    fi
    for _gw in $_gws; do
      if [ ! -f "$LB_RUN/verified/$_gw" ]; then
        echo "refused: /dev/$_gw (under $_gd) was not matched by check_disk; nothing written" >&2
        return 1
      fi
      _gwant=$(cat "$LB_RUN/verified/$_gw")
      _gnow=$(lb_identity "$_gw")
      if [ "$_gwant" != "$_gnow" ]; then
        echo "refused: /dev/$_gw changed identity since check_disk ($_gwant, now $_gnow); nothing written" >&2
        return 1
      fi
    done
  done
}

# lb_dev_id DEV: "major:minor" of a block device (two paths to one device give the same).
lb_dev_id() { [ -b "$1" ] && stat -L -c '%t:%T' "$1"; }

# lb_only_device DEV ARG...: refuses (non-zero, one line) when an argument, or a piece of one
# between ',' '=' or ':', is a block device other than DEV: options cannot make mkfs or mount
# touch a second device (mkfs.btrfs DEV /dev/sdb, -J device=, logdev=).
lb_only_device() {
  _od=$(lb_dev_id "$1") || { echo "refused: '$1' is not a block device; nothing written" >&2; return 1; }
  _odev=$1
  shift
  for _oa in "$@"; do
    { printf '%s\n' "$_oa"; printf '%s\n' "$_oa" | tr ',=:' '\n\n\n'; } | while IFS= read -r _op; do
      if [ -n "$_op" ] && [ -b "$_op" ] && [ "$(lb_dev_id "$_op")" != "$_od" ]; then
        echo "refused: argument '$_oa' names the block device $_op, which is not $_odev; nothing written" >&2
        exit 1
      fi
    done || return 1
  done
}

# lb_normal_path PATH: PATH is absolute and in normal form: "/" or "/a/b", no empty, "." or
# ".." component, no control character (the plan builder checks the same).
lb_normal_path() {
  case $1 in
    /) return 0 ;;
    */ | *//* | */./* | */../* | */. | */..) return 1 ;;
    /*) [ "$(printf '%sx' "$1" | tr -d '\000-\037\177')" = "${1}x" ] ;;
    *) return 1 ;;
  esac
}

# lb_inside_target PATH: PATH, every symlink followed, is $LB_TARGET or below it.
lb_inside_target() {
  _ir=$(readlink -f "$LB_TARGET") && _ip=$(readlink -f "$1") || return 1
  case $_ip in "$_ir" | "$_ir"/*) return 0 ;; esac
  return 1
}

# lb_target_dir MOUNTPOINT: makes $LB_TARGET$MOUNTPOINT and prints it; refuses (one line) a
# mount point not in normal form, or one that a symlink on the target leads outside it.
lb_target_dir() {
  if ! lb_normal_path "$1"; then
    echo "refused: mount point '$1' is not an absolute path in normal form (no '..', '.' or '//'); nothing written" >&2
    return 1
  fi
  _tdir=$LB_TARGET$1
  # The deepest part that exists now, then the whole once made: both inside the target.
  _texist=$_tdir
  while [ ! -e "$_texist" ] && [ "$_texist" != "$LB_TARGET" ]; do _texist=${_texist%/*}; done
  if ! lb_inside_target "$_texist" || ! mkdir -p "$_tdir" || ! lb_inside_target "$_tdir"; then
    echo "refused: $_tdir leads outside $LB_TARGET; nothing written" >&2
    return 1
  fi
  printf '%s' "$_tdir"
}

# lb_args NAME MIN MAX ARGC: the step's arity as the contract (server/plan/steps.ts) says.
lb_args() {
  if [ "$4" -lt "$2" ] || { [ "$3" != - ] && [ "$4" -gt "$3" ]; }; then
    echo "$1: expected $2${3:+..$3} arguments, got $4" >&2
    return 2
  fi
}

# --- running a plan --------------------------------------------------------------------

# Records one call of the plan as files (every argument exactly, newlines included).
lb_record() {
  PATH=$LB_PATH
  read -r _i <"$LB_RUN/calls/count"
  _i=$((_i + 1))
  mkdir -p "$LB_RUN/calls/$_i"
  printf '%s' "$1" >"$LB_RUN/calls/$_i/fn"
  shift
  printf '%s' "$#" >"$LB_RUN/calls/$_i/argc"
  _k=0
  for _a in "$@"; do
    _k=$((_k + 1))
    printf '%s' "$_a" >"$LB_RUN/calls/$_i/$_k"
  done
  printf '%s\n' "$_i" >"$LB_RUN/calls/count"
  PATH=/nonexistent
}

# lb_load_plan FILE: turns the plan into recorded calls, without running anything: the plan is
# sourced in a subshell where each step name only records, and no other command exists (PATH
# is empty), so a plan that is not just calls to step functions fails here.
lb_load_plan() {
  rm -rf "$LB_RUN/calls"
  mkdir -p "$LB_RUN/calls"
  echo 0 >"$LB_RUN/calls/count"
  (
    for _f in $LB_STEP_NAMES; do eval "$_f() { lb_record $_f \"\$@\"; }"; done
    LB_PATH=$PATH
    PATH=/nonexistent
    set -e
    . "$1"
  ) || { echo "the plan is not a list of step-function calls (see the error above)" >&2; return 1; }
}

# lb_call_args I: prints nothing; sets the positional parameters via eval-safe variable LB_ARGV.
lb_call_sha() { cat "$LB_RUN/calls/$1/fn" "$LB_RUN/calls/$1/argc" $(seq 1 "$(cat "$LB_RUN/calls/$1/argc")" | sed "s|^|$LB_RUN/calls/$1/|") | sha256sum | cut -c1-64; }

# lb_heard ANSWER WHAT: after an lb_post answer, 0 when Lifeboat accepted it; otherwise sets
# LB_STOP (ended: the job ended on the server; refused: it refused the call), says so, non-zero.
lb_heard() {
  case $1 in
    0) return 0 ;;
    3) LB_STOP=ended
      lb_log "Lifeboat says job $LB_JOB is $LB_ENDED: stopping $2; the disks are left as they are, nothing more is written" ;;
    *) LB_STOP=refused
      lb_log "Lifeboat refused the agent's report (see above): stopping $2; the disks are left as they are" ;;
  esac
  return 1
}

# lb_run_call I OF: runs call I, posting step-start/step-end; non-zero when it failed. The call
# runs only once Lifeboat acknowledged its step-start (its job is still running): a cancel, or an
# answer that never comes, stops the plan before anything else is written (LB_STOP says why).
lb_run_call() {
  _i=$1 _of=$2 _dir="$LB_RUN/calls/$1"
  _fn=$(cat "$_dir/fn")
  set --
  _k=0
  while [ "$_k" -lt "$(cat "$_dir/argc")" ]; do
    _k=$((_k + 1))
    _v=$(cat "$_dir/$_k"; printf x)
    set -- "$@" "${_v%x}"
  done
  _sha=$(lb_call_sha "$_i")
  lb_event "{\"type\":\"step-start\",\"step\":$_i,\"of\":$_of,\"name\":$(lb_json_str "$_fn")}"
  lb_heard $? "before step $_i/$_of ($_fn)" || return 1
  lb_log "step $_i/$_of: $_fn $*"
  _out="$LB_RUN/step-$_i.out"
  _skipped=false
  if grep -qx "$_i $_sha" "$LB_RUN/done" 2>/dev/null && (guard_"$_fn" "$@") >"$_out" 2>&1; then
    _skipped=true _rc=0
    echo "skipped: finished before in this boot and its guard still holds" >>"$_out"
  else
    ("$_fn" "$@") >"$_out" 2>&1 </dev/null
    _rc=$?
  fi
  sed 's/^/    /' "$_out" >>"$LB_LOG"
  lb_log "step $_i/$_of: $_fn exit $_rc"
  # On the console too, for whoever stands at the machine.
  [ "$_rc" = 0 ] || tail -n 20 "$_out" >&2
  [ "$_rc" = 0 ] && printf '%s %s\n' "$_i" "$_sha" >>"$LB_RUN/done"
  lb_event "{\"type\":\"step-end\",\"step\":$_i,\"of\":$_of,\"name\":$(lb_json_str "$_fn"),\"exitStatus\":$_rc,\"output\":$(tail -c 4000 "$_out" | lb_json_esc),\"skipped\":$_skipped}"
  lb_heard $? "after step $_i/$_of ($_fn)" || return 1
  return "$_rc"
}

# lb_run_plan FILE: runs every call in order; stops at the first failure (posts it, returns 1) or
# when Lifeboat stops it (LB_STOP set, returns 1: nothing to post, the job is no longer running).
lb_run_plan() {
  LB_STOP=
  lb_load_plan "$1" >"$LB_RUN/load.out" 2>&1 || {
    cat "$LB_RUN/load.out" >>"$LB_LOG"
    lb_event "{\"type\":\"failed\",\"error\":$(printf 'plan rejected by the agent: %s' "$(tail -c 1000 "$LB_RUN/load.out")" | lb_json_esc)}"
    return 1
  }
  _n=$(cat "$LB_RUN/calls/count")
  _c=0
  while [ "$_c" -lt "$_n" ]; do
    _c=$((_c + 1))
    if ! lb_run_call "$_c" "$_n"; then
      [ -n "$LB_STOP" ] && return 1
      _fname=$(cat "$LB_RUN/calls/$_c/fn")
      lb_event "{\"type\":\"failed\",\"step\":$_c,\"error\":$(printf 'step %s (%s) failed: %s' "$_c" "$_fname" "$(tail -n 5 "$LB_RUN/step-$_c.out")" | lb_json_esc)}"
      return 1
    fi
  done
}

# --- boot-time setup -----------------------------------------------------------------

lb_load_modules() {
  mkdir -p /run/udev
  if /lib/systemd/systemd-udevd --daemon --resolve-names=never 2>>"$LB_LOG"; then
    udevadm trigger --type=subsystems --action=add
    udevadm trigger --type=devices --action=add
    udevadm settle --timeout=60
  else
    lb_log "udevd failed; loading drivers by modalias"
    find /sys/devices -name modalias -exec cat {} + 2>/dev/null | sort -u | xargs modprobe -a -b -q 2>/dev/null
  fi
  for _m in dm_mod dm_crypt md_mod raid0 raid1 raid10 raid456 ext4 xfs vfat btrfs isofs efivarfs nls_cp437 nls_iso8859_1; do
    modprobe -q "$_m" 2>/dev/null
  done
}

# lb_iface_by_mac MAC: the NIC with this MAC (our own bond and VLAN devices left out).
lb_iface_by_mac() {
  [ -n "$1" ] || return 1
  for _i in /sys/class/net/*; do
    _n=${_i##*/}
    case $_n in lo | lbbond | lbvlan*) continue ;; esac
    [ "$(cat "$_i/address" 2>/dev/null)" = "$1" ] && { printf '%s' "$_n"; return 0; }
  done
  return 1
}

# lb_first_linked_nic: the first NIC (a device behind it) that has a link once up.
lb_first_linked_nic() {
  for _i in /sys/class/net/*; do
    [ -e "$_i/device" ] || continue
    ip link set "${_i##*/}" up 2>/dev/null
    [ "$(cat "$_i/carrier" 2>/dev/null)" = 1 ] && { printf '%s' "${_i##*/}"; return 0; }
  done
  return 1
}

# lb_net_configure: the rescue network of the command line (server/plan/cmdline.ts RescueNet):
# a bond "lbbond" of the NICs with the given MACs, or the boot NIC (LB_MAC); a VLAN "lbvlanID"
# on top of it; a static address (gateway, DNS) or DHCP on top of that. Sets LB_IFACE; 1 when a
# part failed (what is left of an earlier try is removed first, so it can be called again).
lb_net_configure() {
  [ -e /sys/class/net/lbbond ] && echo -lbbond >/sys/class/net/bonding_masters
  [ -n "$LB_NET_VLAN" ] && ip link del "lbvlan$LB_NET_VLAN" 2>/dev/null
  if [ -n "$LB_NET_BOND" ]; then
    _members=""
    # Every member is found before any is enslaved: a bond gives its members its own MAC.
    for _m in $(printf '%s' "${LB_NET_BOND#*,}" | tr ',' ' '); do
      _if=$(lb_iface_by_mac "$_m") || { lb_log "network: no NIC with MAC $_m for the bond"; return 1; }
      _members="$_members $_if"
    done
    # Through sysfs (busybox ip makes no bonds); max_bonds=0: no bond0 of the driver's own.
    [ -e /sys/class/net/bonding_masters ] || modprobe -q bonding max_bonds=0 2>>"$LB_LOG"
    { echo +lbbond >/sys/class/net/bonding_masters && echo "${LB_NET_BOND%%,*}" >/sys/class/net/lbbond/bonding/mode &&
      echo 100 >/sys/class/net/lbbond/bonding/miimon; } 2>>"$LB_LOG" || { lb_log "network: cannot make a ${LB_NET_BOND%%,*} bond"; return 1; }
    for _if in $_members; do
      ip link set "$_if" down
      echo "+$_if" 2>>"$LB_LOG" >/sys/class/net/lbbond/bonding/slaves || { lb_log "network: cannot add $_if to the bond"; return 1; }
    done
    _dev=lbbond
  else
    if [ -n "$LB_MAC" ]; then
      _dev=$(lb_iface_by_mac "$LB_MAC") || { lb_log "network: no NIC with MAC $LB_MAC"; return 1; }
    else
      # A boot medium names no NIC (lifeboat image iso): the first one with a link.
      _dev=$(lb_first_linked_nic) || { lb_log "network: no NIC has a link (cable?)"; return 1; }
    fi
  fi
  ip link set "$_dev" up
  if [ -n "$LB_NET_VLAN" ]; then
    modprobe -q 8021q 2>/dev/null
    ip link add link "$_dev" name "lbvlan$LB_NET_VLAN" type vlan id "$LB_NET_VLAN" >>"$LB_LOG" 2>&1 || { lb_log "network: cannot make VLAN $LB_NET_VLAN on $_dev"; return 1; }
    _dev=lbvlan$LB_NET_VLAN
    ip link set "$_dev" up
  fi
  if [ -n "$LB_NET_IP" ]; then
    ip -4 addr flush dev "$_dev"
    ip addr add "$LB_NET_IP" dev "$_dev" >>"$LB_LOG" 2>&1 || { lb_log "network: cannot set $LB_NET_IP on $_dev"; return 1; }
    if [ -n "$LB_NET_GW" ]; then
      ip route replace default via "$LB_NET_GW" dev "$_dev" >>"$LB_LOG" 2>&1 || { lb_log "network: cannot route via $LB_NET_GW"; return 1; }
    fi
    : >"$LB_RESOLV"
    for _d in $(printf '%s' "$LB_NET_DNS" | tr ',' ' '); do echo "nameserver $_d" >>"$LB_RESOLV"; done
  else
    udhcpc -i "$_dev" -n -q -t 5 -T 2 -s /lifeboat/udhcpc.sh >>"$LB_LOG" 2>&1 || return 1
  fi
  LB_IFACE=$_dev
}

# The network: the rescue network the command line names, else DHCP on the NIC with LB_MAC,
# else on every NIC with a link in turn.
lb_net_up() {
  ip link set lo up
  for _try in 1 2 3 4 5 6 7 8 9 10; do
    if [ -n "$LB_NET_BOND$LB_NET_VLAN$LB_NET_IP" ]; then
      if lb_net_configure; then
        lb_log "network: $LB_IFACE $(lb_ip)"
        return 0
      fi
    else
      for _i in /sys/class/net/*; do
        _if=${_i##*/}
        [ "$_if" = lo ] && continue
        [ -n "$LB_MAC" ] && [ "$(cat "$_i/address")" != "$LB_MAC" ] && continue
        ip link set "$_if" up
        if udhcpc -i "$_if" -n -q -t 5 -T 2 -s /lifeboat/udhcpc.sh >>"$LB_LOG" 2>&1; then
          LB_IFACE=$_if
          lb_log "network: $_if $(lb_ip)"
          return 0
        fi
      done
    fi
    sleep 2
  done
  lb_log "network: not up on ${LB_MAC:-any NIC}"
  return 1
}

# Remote help: dropbear when the image carries admin keys (config adminSshKeys).
lb_ssh_up() {
  [ -s /root/.ssh/authorized_keys ] || return 0
  mkdir -p /etc/dropbear
  if dropbear -R -s -p 22 2>>"$LB_LOG"; then
    LB_SSH="root@$(lb_ip)"
    lb_log "remote help: ssh $LB_SSH"
  fi
}

lb_fetch_plan() {
  while :; do
    _code=$(lb_curl --max-time 60 -o "$LB_RUN/plan.sh" -w '%{http_code}' "$LB_SERVER$LB_AGENT_BASE/$LB_JOB/plan")
    case $_code in
      200)
        # Only an armed job gets a plan: from here on steps may write the matched disks.
        printf '%s' "$LB_JOB" >"$LB_RUN/armed"
        return 0
        ;;
      409) lb_log "plan refused by Lifeboat: $(cat "$LB_RUN/plan.sh"); asking again in 15 s" ;;
      "$LB_JOB_ENDED_HTTP")
        LB_STOP=ended
        lb_log "Lifeboat says this job has ended: no plan, nothing written: $(cat "$LB_RUN/plan.sh")"
        return 1
        ;;
      *) lb_log "plan: HTTP ${_code:-no answer}; asking again in 15 s" ;;
    esac
    sleep 15
  done
}

# Never reboot into a half-restored disk: stay up for the admin (ssh, console).
lb_wait_forever() {
  lb_log "stopped; waiting for the admin (the machine is NOT rebooted); log: $LB_LOG"
  lb_wait_admin
}

# lb_wait_admin: never returns (LB_NO_WAIT, for tests: returns 1 at once).
lb_wait_admin() {
  [ -n "${LB_NO_WAIT:-}" ] && return 1
  # lifeboat.shell=1 on the kernel command line: a root shell on the console while waiting.
  if [ "$(lb_cmdline_value lifeboat.shell "$(cat "$LB_CMDLINE_FILE")")" = 1 ]; then
    while :; do setsid cttyhack sh; done
  fi
  while :; do sleep 3600; done
}

# lb_ask PROMPT: one line typed on the console (stdin); empty when nothing could be read (then
# after a pause, so a console that gives nothing is not asked in a tight loop).
lb_ask() {
  printf '%s' "$1" >&2
  IFS= read -r _ans || { _ans=""; sleep 2; }
  printf '%s' "$_ans" | tr -d '\r'
}

# lb_json_field NAME JSON: a string field of a flat JSON answer (Lifeboat's: no escaped quotes in these).
lb_json_field() { printf '%s' "$2" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

# lb_redeem: booted from a medium (lifeboat image iso: no lifeboat.token), trades the one-time
# code (lifeboat.code, else typed on the console) for the job and a boot token at the server
# (lifeboat.server, else typed), once: POST /boot/code. A refused code is said on the console with
# Lifeboat's reason, and another is asked for; nothing is done to any disk before a code is taken.
lb_redeem() {
  _rs_typed=
  while :; do
    while [ -z "$LB_SERVER" ]; do
      LB_SERVER=$(lb_ask "Lifeboat server URL (e.g. http://10.0.0.5:8080): ") _rs_typed=1
      LB_SERVER=${LB_SERVER%/}
    done
    while [ -z "$LB_CODE" ]; do LB_CODE=$(lb_ask "one-time code of this machine's job (lifeboat jobs code JOB, or the page): "); done
    _rmac=$(cat "/sys/class/net/${LB_IFACE:-none}/address" 2>/dev/null)
    _rr=$(printf '{"code":%s,"mac":%s}' "$(lb_json_str "$LB_CODE")" "$(lb_json_str "$_rmac")" |
      curl -sS --connect-timeout 10 --max-time 30 -H 'Content-Type: application/json' --data-binary @- -w '\n%{http_code}' "$LB_SERVER/boot/code")
    _rc=${_rr##*"
"}
    _rb=${_rr%"$_rc"}
    case $_rc in
      200)
        LB_JOB=$(lb_json_field job "$_rb") LB_TOKEN=$(lb_json_field token "$_rb")
        if [ -n "$LB_JOB" ] && [ -n "$LB_TOKEN" ]; then
          lb_log "one-time code taken: job $LB_JOB"
          return 0
        fi
        lb_log "Lifeboat's answer to the code names no job and token: $_rb"
        ;;
      4??)
        lb_log "Lifeboat refused the one-time code: $(lb_json_field message "$_rb")"
        LB_CODE=
        ;;
      *)
        lb_log "no answer from Lifeboat at $LB_SERVER (HTTP ${_rc:-none})"
        # A typed URL may be mistyped: ask again; the medium's own is tried again.
        if [ -n "$_rs_typed" ]; then LB_SERVER=; else sleep 10; fi
        ;;
    esac
    [ -n "${LB_NO_WAIT:-}" ] && return 1
  done
}

lb_main() {
  mkdir -p "$LB_RUN/verified"
  lb_parse_cmdline "$(cat "$LB_CMDLINE_FILE")"
  lb_log "job ${LB_JOB:-?} server ${LB_SERVER:-?} mac ${LB_MAC:-any}"
  if [ -n "$LB_TOKEN" ] && { [ -z "$LB_SERVER" ] || [ -z "$LB_JOB" ]; }; then
    lb_log "missing lifeboat.server or lifeboat.job on the kernel command line"
    lb_wait_forever
    return 1
  fi
  [ -n "${LB_SKIP_HW_SETUP:-}" ] || { lb_load_modules; lb_net_up || { lb_wait_forever; return 1; }; lb_ssh_up; }
  # No token: booted from a medium (lifeboat image iso), which carries none.
  if [ -z "$LB_TOKEN" ]; then
    lb_log "booted from a medium: the one-time code of this machine's job gets its token"
    lb_redeem || { lb_wait_forever; return 1; }
  fi
  lb_post hello "$(lb_hello_json)"
  lb_heard $? "before anything" || { lb_post_log; lb_wait_forever; return 1; }
  lb_heartbeat_loop &
  LB_HEARTBEAT_PID=$!
  if lb_fetch_plan && lb_run_plan "$LB_RUN/plan.sh"; then
    kill "$LB_HEARTBEAT_PID" 2>/dev/null
    lb_log "recovery finished"
    lb_post_log
    lb_report_done && return 0
  fi
  kill "$LB_HEARTBEAT_PID" 2>/dev/null
  lb_post_log
  lb_wait_forever
  return 1
}

# lb_report_done: tells Lifeboat the recovery finished; 0 only once it confirmed. The machine
# leaves the rescue system (lb_finish) only then: a "done" that was not heard is said again (lb_post),
# never assumed, so a machine cannot boot the rescue system a second time and redo its plan.
lb_report_done() {
  lb_log "telling Lifeboat the recovery is done; then: $(lb_end_state_words "$(lb_end_state)")"
  lb_event '{"type":"done"}'
  lb_heard $? "without rebooting" || return 1
  lb_log "Lifeboat confirmed: job $LB_JOB is done"
}

# --- the end state (plan_done's argument) ------------------------------------------------

# lb_end_state: what plan_done recorded; reboot when nothing was (a plan cut short never gets here).
lb_end_state() {
  _es=$(cat "$LB_RUN/end-state" 2>/dev/null)
  printf '%s' "${_es:-reboot}"
}

lb_end_state_words() {
  case $1 in
    reboot) printf 'reboot into the restored system' ;;
    poweroff) printf 'power off' ;;
    hold) printf 'hold in the rescue system for remote help (not rebooted)' ;;
    *) printf '%s' "$1" ;;
  esac
}

# lb_finish: after Lifeboat confirmed the job done, does what plan_done said. hold keeps the
# rescue system up (PID 1 never returns) and says so on the console; Lifeboat's job events hold
# the same (plan_done's output and the done event's endState).
lb_finish() {
  _fe=$(lb_end_state)
  sync
  case $_fe in
    poweroff)
      lb_log "recovery done: powering off"
      poweroff -f
      ;;
    hold)
      lb_log "recovery done: holding in the rescue system for remote help${LB_SSH:+ (ssh $LB_SSH)}; the restored disks are unmounted and the machine is NOT rebooted"
      lb_wait_admin
      ;;
    *)
      lb_log "recovery done: rebooting into the restored system"
      reboot -f
      ;;
  esac
}
