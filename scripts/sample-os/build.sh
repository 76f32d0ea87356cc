#!/usr/bin/env bash
# build.sh OUT — a small real Debian 12 system to protect, restore and boot in tests and the
# demo: debootstrap --variant=minbase of bookworm with Debian's kernel, initramfs-tools, GRUB
# for BIOS (i386-pc) and UEFI (x86_64-efi), systemd, e2fsprogs and fdisk (capture.sh runs
# there), and what a protected server of the whole-job story runs: Debian's amanda-client
# (amandad under inetd, auth bsdtcp; dma is the mail transport its bsd-mailx needs, with no
# daemon), openssh-server and curl (`lifeboat capture install`). Written as OUT/rootfs.tar
# (numeric owners, xattrs) plus OUT/info (kernel version, package count, size, build date).
#
# The machine prints one line on its serial console when it has booted —
#   LIFEBOAT-SAMPLE booted host=… root=<UUID of /> kernel=… boot=<bios|uefi>
# (under UEFI also `LIFEBOAT-SAMPLE efi-entry=<label of the boot entry used>`; where a test
# put capture.sh in /root, `LIFEBOAT-SAMPLE captured exit=N` after writing
# /root/capture.json) — and powers off, unless the kernel command line holds `sample.stay`.
# No /etc/fstab entries and no /boot/grub/grub.cfg: they belong to the disk it is installed
# on (the installer writes them; a restore brings them back).
#
# Kernel modules no server needs (sound, GPU, media, wireless, infiniband, staging, IIO) are
# removed so the tree is ~530 MiB (amanda-client and Perl included), not ~930. Takes about
# 3½ minutes on an idle machine, most of it debootstrap unpacking and configuring, and its
# initramfs build; the packages stay in OUT/debs, so a
# rebuild downloads only what changed.
# Needs root and debootstrap. Called by test/helpers/sample-os.ts, which caches OUT.
set -euo pipefail
OUT=$1
MIRROR=${LIFEBOAT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { printf '[sample-os %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap not found: install it (scripts/apt-packages.txt)"

ROOT=$OUT/root.tmp
# A build killed half-way leaves its chroot mounts: they go first, and rm never leaves ROOT's filesystem.
# (grep finds none on a clean machine: its exit 1 must not end the build under pipefail.)
findmnt -rn -o TARGET | { grep "^$ROOT/" || true; } | sort -r | xargs -r -n1 umount -l
rm -rf --one-file-system "$ROOT" "$OUT/rootfs.tar" "$OUT/info"
mkdir -p "$ROOT"
cleanup() { for m in dev/pts dev proc sys; do umount "$ROOT/$m" 2>/dev/null || true; done; }
trap cleanup EXIT

log "debootstrap bookworm from $MIRROR (about 3 minutes)"
mkdir -p "$OUT/debs"   # debootstrap keeps the packages here: a rebuild downloads only what changed
debootstrap --variant=minbase --cache-dir="$OUT/debs" \
  --include=linux-image-amd64,initramfs-tools,fdisk,grub-pc-bin,grub-efi-amd64-bin,grub2-common,efibootmgr,shim-signed,grub-efi-amd64-signed,mokutil,systemd-sysv,udev,e2fsprogs,kmod,amanda-client,dma,openssh-server,curl,dosfstools \
  bookworm "$ROOT" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 || die "debootstrap failed: see $OUT/debootstrap.log"

KVER=$(ls "$ROOT/lib/modules")
log "kernel $KVER; removing modules a server does not need"
for d in sound drivers/gpu drivers/media drivers/net/wireless net/wireless net/mac80211 drivers/infiniband \
  drivers/staging drivers/iio drivers/bluetooth net/bluetooth drivers/isdn; do
  rm -rf "$ROOT/lib/modules/$KVER/kernel/$d"
done
rm -rf "$ROOT"/lib/firmware/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
  "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/* "$ROOT"/boot/*.dpkg-bak

log "configuring: host name, serial console, GRUB defaults, the boot report"
echo sample >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tsample\n' >"$ROOT/etc/hosts"
: >"$ROOT/etc/machine-id"
cat >"$ROOT/etc/default/grub" <<'EOF'
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
EOF
cat >"$ROOT/usr/local/sbin/sample-report" <<'EOF'
#!/bin/sh
# Says on the console that this system booted from its own disk, then powers off (tests).
boot=bios; [ -d /sys/firmware/efi ] && boot=uefi
echo "LIFEBOAT-SAMPLE booted host=$(hostname) root=$(findmnt -n -o UUID /) kernel=$(uname -r) boot=$boot" >/dev/console
if [ $boot = uefi ]; then
  # The firmware's boot entry this boot came through (its label), or none.
  cur=$(efibootmgr 2>/dev/null | sed -n 's/^BootCurrent: *//p')
  entry=$(efibootmgr 2>/dev/null | sed -n "s/^Boot$cur[* ] *//p" | cut -f1 | tr ' ' _)
  echo "LIFEBOAT-SAMPLE efi-entry=${entry:-none}" >/dev/console
fi
# Where a test left Lifeboat's capture.sh in /root, the layout is captured as the cron job
# would capture it, into /root/capture.json (read from the disk after power-off).
if [ -f /root/capture.sh ]; then
  sh /root/capture.sh --stdout >/root/capture.json 2>/root/capture.err
  echo "LIFEBOAT-SAMPLE captured exit=$?" >/dev/console
fi
grep -qw sample.stay /proc/cmdline || systemctl --no-block poweroff
EOF
chmod 755 "$ROOT/usr/local/sbin/sample-report"
cat >"$ROOT/etc/systemd/system/sample-report.service" <<'EOF'
[Unit]
Description=Lifeboat sample machine: report the boot on the console
After=local-fs.target swap.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/sample-report

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/sample-report.service "$ROOT/etc/systemd/system/multi-user.target.wants/sample-report.service"
# Nothing waits for a network or a time sync that the test machine has no use for (an
# installer that gives the machine a network enables systemd-networkd itself). The SSH host
# keys debootstrap made would be every install's: an installer makes the machine's own.
rm -f "$ROOT"/etc/systemd/system/*.wants/systemd-timesyncd.service "$ROOT"/etc/systemd/system/*.wants/systemd-networkd*.service
rm -f "$ROOT"/etc/ssh/ssh_host_*
printf '# <file system> <mount point> <type> <options> <dump> <pass>\n' >"$ROOT/etc/fstab"

# The initramfs debootstrap made stays: MODULES=most takes storage, NIC and filesystem
# drivers, none of which were removed.
log "depmod for the pruned module tree"
chroot "$ROOT" depmod "$KVER"

log "writing rootfs.tar"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$ROOT" -cf "$OUT/rootfs.tar.tmp" .
mv "$OUT/rootfs.tar.tmp" "$OUT/rootfs.tar"
{
  echo "kernel=$KVER"
  echo "packages=$(chroot "$ROOT" dpkg-query -W | wc -l)"
  echo "bytes=$(du -sb "$ROOT" | cut -f1)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$OUT/info"
rm -rf "$ROOT"
log "done: $OUT/rootfs.tar ($(du -h "$OUT/rootfs.tar" | cut -f1)), $(cat "$OUT/info" | tr '\n' ' ')"
