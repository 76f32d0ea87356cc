#!/bin/sh
# Lifeboat capture: collects what a bare-metal recovery needs apart from the data (disks,
# partition tables, MD/LVM/LUKS, filesystems, mounts, boot facts, OS facts) as one JSON
# document and uploads it to Lifeboat, or prints it. Run it from cron as root, as a local
# file checked against the sha256 `lifeboat capture script --sha256` prints (never piped from
# the network into a root shell); `lifeboat capture install web1 | ssh root@web1 sh` sets up:
#
#   /usr/local/sbin/lifeboat-capture --server http://lifeboat:8080 \
#        --host web1 --token-file /etc/lifeboat/token
#
# It only reads: no file is written, nothing is changed on any disk. POSIX sh, util-linux
# (lsblk, sfdisk, blkid, findmnt), coreutils and awk; LVM, mdadm, cryptsetup, btrfs,
# dumpe2fs, xfs_info and efibootmgr are used when present. The server parses the raw
# tool output, so this script stays small and the same on every distribution.
set -u
LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}

usage() {
	cat <<'EOF'
usage: capture.sh [--stdout] [--server URL --host NAME (--token TOKEN | --token-file FILE)]
                  [--devices "DEV ..."] [--include-removable] [--dle NAME=MOUNTPOINT ...]

  --stdout            print the JSON document instead of uploading it
  --server URL        Lifeboat server (PUT URL/api/v1/hosts/NAME/layout)
  --host NAME         host name registered with `lifeboat hosts add NAME`
  --token TOKEN       the host's capture token (`lifeboat hosts token NAME`);
  --token-file FILE   or read it from FILE (keeps it out of `ps`); $LIFEBOAT_TOKEN works too
  --devices "DEV..."  capture only these whole disks (default: every internal disk)
  --include-removable also removable and USB disks (left out by default: a backup
                      disk or a stick plugged in now is not part of the machine)
  --dle NAME=MP       the Amanda DLE NAME restores to mount point MP (repeatable)
EOF
}

die() { echo "capture.sh: $*" >&2; exit 2; }

stdout=0 server="" host="" token="${LIFEBOAT_TOKEN:-}" devices="" dles="" include_removable=0
while [ $# -gt 0 ]; do
	case $1 in
	--stdout) stdout=1; shift ;;
	--include-removable) include_removable=1; shift ;;
	--server | --host | --token | --token-file | --devices | --dle)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--server) server=${2%/} ;;
		--host) host=$2 ;;
		--token) token=$2 ;;
		--token-file) token=$(cat "$2") || die "cannot read $2" ;;
		--devices) devices="$devices $2" ;;
		--dle) dles="$dles$2
" ;;
		esac
		shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
if [ $stdout = 0 ]; then
	[ -n "$server" ] && [ -n "$host" ] && [ -n "$token" ] || { usage >&2; die "give --stdout, or --server, --host and a token"; }
	command -v curl >/dev/null || die "curl not found (needed to upload; --stdout works without it)"
fi
command -v lsblk >/dev/null || die "lsblk not found (util-linux)"
have() { command -v "$1" >/dev/null 2>&1; }

# Whole disks worth capturing, from `lsblk -dnpo NAME,TYPE,RM,TRAN` on stdin: the kinds
# Lifeboat recreates (sd, hd, vd, xvd, nvme, mmcblk); removable and USB ones only with
# --include-removable. TRAN is last: it may be empty.
pick_disks() {
	awk -v all="$include_removable" '$2 == "disk" && $1 ~ /^\/dev\/((sd|hd|vd|xvd)[a-z]+|nvme[0-9]+n[0-9]+|mmcblk[0-9]+)$/ &&
		(all == 1 || ($3 != 1 && $4 != "usb")) { print $1 }'
}

for d in $devices; do
	[ -b "$d" ] || die "--devices: $d is not a block device"
	if [ $include_removable = 0 ] && lsblk -dno RM,TRAN "$d" 2>/dev/null | awk '$1 == 1 || $2 == "usb" { f = 1 } END { exit !f }'; then
		die "--devices: $d is removable or on USB; add --include-removable to capture it"
	fi
done

# Prints stdin as one JSON string. The trailing "x" keeps a final newline visible to awk;
# control characters become \uXXXX, so any file content gives valid JSON.
jstr() {
	{ tr -d '\000'; printf x; } | awk '
	BEGIN { ORS = ""; for (i = 1; i < 32; i++) esc[sprintf("%c", i)] = sprintf("\\u%04x", i)
		esc["\t"] = "\\t"; esc["\r"] = "\\r"; printf "\"" }
	# index/substr instead of gsub: awks disagree on backslashes in gsub replacements.
	function rep(s, from, to,   out, i) {
		out = ""
		while ((i = index(s, from)) > 0) { out = out substr(s, 1, i - 1) to; s = substr(s, i + 1) }
		return out s
	}
	function emit(s,   out, i, ch) {
		s = rep(rep(s, "\\", "\\\\"), "\"", "\\\"")
		if (s !~ /[\001-\037]/) { printf "%s", s; return }
		out = ""
		for (i = 1; i <= length(s); i++) { ch = substr(s, i, 1); out = out ((ch in esc) ? esc[ch] : ch) }
		printf "%s", out
	}
	NR > 1 { emit(prev); printf "\\n" }
	{ prev = $0 }
	END { emit(substr(prev, 1, length(prev) - 1)); printf "\"" }'
}
# A JSON string from an argument.
jval() { printf '%s' "$1" | jstr; }
# A file's content as a JSON string, or null when it is not there.
jfile() { if [ -r "$1" ]; then jstr <"$1"; else printf null; fi; }
# A command's output as a JSON string, or null when it fails or is missing.
jcmdtext() { if out=$("$@" 2>/dev/null); then printf '%s\n' "$out" | jstr; else printf null; fi; }
# A command's JSON output as is, or null when it fails, is missing or prints nothing.
jcmdjson() { if out=$("$@" 2>/dev/null) && [ -n "$out" ]; then printf '%s' "$out"; else printf null; fi; }

# The interface of the IPv4 default route (the lowest metric), from the kernel's main table
# (/proc/net/route, or the table file given): iproute2 is not needed, which minimal systems lack.
default_route_dev() {
	awk 'NR > 1 && $2 == "00000000" && $8 == "00000000" && (dev == "" || $7 + 0 < best) { dev = $1; best = $7 + 0 }
		END { if (dev != "") print dev }' "${1:-/proc/net/route}" 2>/dev/null
}

# The block devices to look at: the whole disks, then everything lsblk shows below them.
if [ -n "$devices" ]; then
	disks=$devices
else
	disks=$(lsblk -dnpo NAME,TYPE,RM,TRAN | pick_disks)
fi
# shellcheck disable=SC2086
alldevs=$(lsblk -lnpo NAME $disks 2>/dev/null | awk '!seen[$0]++')
# MD arrays below them (not their partitions): their details, and a partition table of their own.
# shellcheck disable=SC2086
arrays=$(lsblk -lnpo NAME,TYPE $disks 2>/dev/null | awk '($2 ~ /^raid/ || $2 == "linear") && !seen[$1]++ {print $1}' | tr '\n' ' ')

LSBLK_COLS=NAME,KNAME,PATH,TYPE,SIZE,MODEL,SERIAL,WWN,TRAN,LOG-SEC,PHY-SEC,PKNAME,RM,RO,HCTL,FSTYPE,UUID,LABEL,PTTYPE,PTUUID,PARTTYPE,PARTUUID,PARTLABEL,MOUNTPOINT
lsblk_json() {
	# shellcheck disable=SC2086
	lsblk -J -b -o "$LSBLK_COLS" $disks 2>/dev/null || lsblk -J -b -O $disks 2>/dev/null
}

capture() {
	printf '{"format":"lifeboat-capture/1","capturedAt":'
	jval "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf ',"hostname":'
	jval "$(uname -n)"
	printf ',"includeRemovable":'
	if [ $include_removable = 1 ]; then printf true; else printf false; fi
	printf ',"devicesFilter":'
	if [ -n "$devices" ]; then printf '%s' "$devices" | awk 'BEGIN{ORS=""; printf "["} {for(i=1;i<=NF;i++){printf "%s\"%s\"", (n++?",":""), $i}} END{printf "]"}'; else printf null; fi
	printf ',"lsblk":'
	jcmdjson lsblk_json

	# Stable names: /dev/disk/by-id links and what they point to.
	printf ',"byId":'
	jcmdtext sh -c 'for l in /dev/disk/by-id/*; do [ -L "$l" ] && echo "$l $(readlink -f "$l")"; done; true'

	printf ',"partitionTables":['
	sep=""
	for d in $disks $arrays; do
		printf '%s{"disk":' "$sep"; jval "$d"
		printf ',"sfdisk":'; jcmdjson sfdisk -J "$d"
		printf '}'; sep=,
	done
	printf ']'

	# Low-level probes (blkid -p reads the device itself: right even without udev or a cache).
	printf ',"probes":['
	sep=""
	for d in $alldevs; do
		printf '%s{"dev":' "$sep"; jval "$d"
		printf ',"blkid":'; jcmdtext blkid -p -o export "$d"
		printf ',"sizeBytes":'; s=$(blockdev --getsize64 "$d" 2>/dev/null) && printf '%s' "$s" || printf null
		type=$(blkid -p -s TYPE -o value "$d" 2>/dev/null)
		case $type in
		ext2 | ext3 | ext4) printf ',"dumpe2fs":'; jcmdtext dumpe2fs -h "$d" ;;
		xfs) printf ',"xfsInfo":'; jcmdtext xfs_info "$d" ;;
		esac
		case " $arrays " in
		*" $d "*) printf ',"mdadm":'; jcmdtext mdadm --detail "$d" ;;
		esac
		printf '}'; sep=,
	done
	printf ']'

	printf ',"mounts":'
	jcmdjson findmnt -J -b -o SOURCE,TARGET,FSTYPE,OPTIONS,SIZE,USED,FSROOT
	# btrfs subvolumes, per mounted btrfs (the list needs a mounted filesystem).
	printf ',"btrfs":['
	sep=""
	if have btrfs; then
		for mp in $(findmnt -rn -t btrfs -o TARGET 2>/dev/null | awk '!seen[$0]++'); do
			printf '%s{"mountpoint":' "$sep"; jval "$mp"
			printf ',"source":'; jval "$(findmnt -rn -o SOURCE --target "$mp" | sed 's/\[.*//' | head -n1)"
			printf ',"subvolumes":'; jcmdtext btrfs subvolume list -a "$mp"
			# The default subvolume (what a mount without subvol= opens: snapper's root), and
			# whether the subvolume mounted here (FSROOT) is NOCOW: the C flag, as ReaR reads it.
			printf ',"getDefault":'; jcmdtext btrfs subvolume get-default "$mp"
			printf ',"fsroot":'; jcmdtext sh -c 'findmnt -ln -o FSROOT --mountpoint "$1" | tail -n1' sh "$mp"
			printf ',"lsattr":'; jcmdtext lsattr -d "$mp"
			printf '}'; sep=,
		done
	fi
	printf ']'

	printf ',"lvm":{"pvs":'
	if have lvm; then
		jcmdjson lvm pvs --reportformat json --units b --nosuffix -o pv_name,pv_uuid,vg_name,pv_size,dev_size,pe_start
		printf ',"vgs":'; jcmdjson lvm vgs --reportformat json --units b --nosuffix -o vg_name,vg_uuid,vg_extent_size,vg_size
		printf ',"lvs":'; jcmdjson lvm lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_uuid,lv_size,segtype,lv_path,devices
	else
		printf 'null,"vgs":null,"lvs":null'
	fi
	printf '}'

	printf ',"files":{"/etc/fstab":'; jfile /etc/fstab
	for f in /etc/crypttab /etc/os-release /etc/mdadm/mdadm.conf /etc/mdadm.conf /etc/default/grub; do
		printf ','; jval "$f"; printf ':'; jfile "$f"
	done
	printf '}'

	printf ',"firmware":'
	if [ -d /sys/firmware/efi ]; then printf '"uefi"'; else printf '"bios"'; fi
	printf ',"efibootmgr":'; if have efibootmgr && [ -d /sys/firmware/efi ]; then jcmdtext efibootmgr -v; else printf null; fi
	# Secure Boot as the firmware reports it: mokutil's line, else the same words from the SecureBoot variable's value byte.
	printf ',"secureBoot":'
	sbvar=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
	if have mokutil && [ -d /sys/firmware/efi ]; then jcmdtext mokutil --sb-state
	elif [ -r "$sbvar" ]; then
		if [ "$(od -An -t u1 -j 4 -N 1 "$sbvar" | tr -d ' ')" = 1 ]; then jval "SecureBoot enabled"; else jval "SecureBoot disabled"; fi
	else printf null; fi
	# The EFI directories on the system partition name the installed boot loaders.
	printf ',"efiDirs":'; jcmdtext sh -c 'for d in /boot/efi/EFI/* /efi/EFI/* /boot/EFI/*; do [ -d "$d" ] && echo "$d"; done; true'
	# BIOS boot code: which disks carry GRUB in their first sector.
	printf ',"bootCode":['
	sep=""
	for d in $disks; do
		printf '%s{"disk":' "$sep"; jval "$d"
		printf ',"grub":'
		if dd if="$d" bs=512 count=1 2>/dev/null | od -An -c | tr -d ' \n' | grep -q GRUB; then printf true; else printf false; fi
		printf '}'; sep=,
	done
	printf ']'
	printf ',"bootloaders":'
	jcmdtext sh -c 'for c in grub-install grub2-install bootctl; do command -v $c >/dev/null 2>&1 && echo $c; done; true'

	printf ',"kernel":'; jval "$(uname -r)"
	printf ',"initramfsTool":'
	tool=null
	for t in update-initramfs dracut mkinitcpio; do have $t && { tool="\"$t\""; break; }; done
	printf '%s' "$tool"
	printf ',"packages":'
	if have dpkg-query; then
		printf '{"manager":"dpkg","list":'; jcmdtext dpkg-query -W -f '${Package}\t${Version}\n'; printf '}'
	elif have rpm; then
		printf '{"manager":"rpm","list":'; jcmdtext rpm -qa --qf '%{NAME}\t%{VERSION}-%{RELEASE}\n'; printf '}'
	else
		printf null
	fi

	printf ',"nics":['
	sep=""
	route_dev=$(default_route_dev)
	for n in /sys/class/net/*; do
		[ -r "$n/address" ] || continue
		name=${n##*/}
		[ "$name" = lo ] && continue
		printf '%s{"name":' "$sep"; jval "$name"
		printf ',"mac":'; jval "$(cat "$n/address")"
		printf ',"physical":'; if [ -e "$n/device" ]; then printf true; else printf false; fi
		printf ',"driver":'; if [ -e "$n/device/driver" ]; then jval "$(basename "$(readlink "$n/device/driver")")"; else printf null; fi
		printf ',"defaultRoute":'; if [ -n "$route_dev" ] && [ "$name" = "$route_dev" ]; then printf true; else printf false; fi
		printf '}'; sep=,
	done
	printf ']'

	printf ',"dles":'; jval "$dles"
	printf ',"amandaGnutarLists":'; jcmdtext ls /var/lib/amanda/gnutar-lists
	printf '}\n'
}

if [ $stdout = 1 ]; then
	capture
	exit 0
fi
# The token goes to curl through a here-document on fd 3, never on its command line.
capture | curl -fsS -X PUT -H 'Content-Type: application/json' --data-binary @- -K /dev/fd/3 \
	"$server/api/v1/hosts/$host/layout" 3<<EOF
header = "Authorization: Bearer $token"
EOF
rc=$?
[ $rc = 0 ] || die "upload to $server failed (curl exit $rc)"
echo
