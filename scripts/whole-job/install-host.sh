#!/usr/bin/env bash
# install-host.sh DISK ROOTFS_TAR FIRMWARE HOSTNAME MAC ADDRESS/PREFIX SERVER_IP SSH_PUBKEY_FILE
#
# The installer of the whole-job story (demo/whole-job.ts): puts the sample Debian 12 system
# (scripts/sample-os) on the raw disk image DISK as a server of its own, the way an installer
# would, before Lifeboat or Amanda ever see it:
#   - GPT: UEFI: p1 EFI system partition (vfat), p2 / (ext4), p3 /home (ext4);
#          BIOS: p1 BIOS boot partition, p2 / (ext4), p3 /home (ext4)
#   - host name, a machine-id and SSH host keys of its own, root's authorized key, a static
#     address on the NIC with MAC (systemd-networkd), SERVER_IP known as "lifeboat"
#   - Debian's amanda-client as the package sets it up (amandad under inetd, auth bsdtcp), the
#     Amanda server "lifeboat" allowed in /etc/amandahosts
#   - GRUB: UEFI at the removable-media path (no NVRAM entry: the machine has none yet), through
#     Debian's signed chain when the system has it (shim-signed, grub-efi-amd64-signed: shim as
#     \EFI\BOOT\BOOTX64.EFI, the signed GRUB beside it, as Debian's installer does for Secure
#     Boot), BIOS in the MBR; `sample.stay` on the kernel command line, so the system stays up.
# Needs root, sfdisk, mkfs.ext4, mkfs.vfat, mtools, losetup. Prints the partition UUIDs as KEY=VALUE.
set -euo pipefail
DISK=$1 TAR=$2 FIRMWARE=$3 NAME=$4 MAC=$5 ADDR=$6 SERVER_IP=$7 PUBKEY=$8
log() { printf '[install %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

MNT=$(mktemp -d /tmp/lifeboat-install-XXXXXX)
LOOP=
cleanup() {
  for m in dev/pts dev proc sys boot/efi home ""; do mountpoint -q "$MNT/$m" 2>/dev/null && umount -l "$MNT/$m"; done
  [ -n "$LOOP" ] && losetup -d "$LOOP"
  rmdir "$MNT" 2>/dev/null || true
}
trap cleanup EXIT

if [ "$FIRMWARE" = uefi ]; then first="size=64MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B"; else first="size=1MiB, type=21686148-6449-6E6F-744E-656564454649"; fi
sfdisk -q "$DISK" <<EOF
label: gpt
$first
size=1536MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
EOF
LOOP=$(losetup --find --show --partscan "$DISK")
partx -u "$LOOP" 2>/dev/null || true
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid) HOME_UUID=$(cat /proc/sys/kernel/random/uuid)
mkfs.ext4 -q -U "$ROOT_UUID" -L root "${LOOP}p2"
mkfs.ext4 -q -U "$HOME_UUID" -L home "${LOOP}p3"
mount "${LOOP}p2" "$MNT"
mkdir -p "$MNT/home" "$MNT/boot/efi"
mount "${LOOP}p3" "$MNT/home"
ESP_UUID=
if [ "$FIRMWARE" = uefi ]; then
  ESP_UUID=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
  mkfs.vfat -i "$ESP_UUID" -n EFI "${LOOP}p1" >/dev/null
  ESP_UUID="${ESP_UUID:0:4}-${ESP_UUID:4:4}"
fi
log "unpacking the system"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$MNT" -xf "$TAR"

log "configuring $NAME"
{
  echo "UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1"
  echo "UUID=$HOME_UUID /home ext4 defaults 0 2"
  if [ -n "$ESP_UUID" ]; then echo "UUID=$ESP_UUID /boot/efi vfat umask=0077 0 1"; fi
} >>"$MNT/etc/fstab"
echo "$NAME" >"$MNT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n%s\tlifeboat\n' "$NAME" "$SERVER_IP" >"$MNT/etc/hosts"
tr -d '-' </proc/sys/kernel/random/uuid >"$MNT/etc/machine-id"
mkdir -p "$MNT/etc/systemd/network" "$MNT/root/.ssh"
printf '[Match]\nMACAddress=%s\n\n[Network]\nAddress=%s\n' "$MAC" "$ADDR" >"$MNT/etc/systemd/network/10-lan.network"
install -m 0600 "$PUBKEY" "$MNT/root/.ssh/authorized_keys"
sed -i 's/^GRUB_CMDLINE_LINUX="\(.*\)"/GRUB_CMDLINE_LINUX="\1 sample.stay"/' "$MNT/etc/default/grub"
# Amanda's client as Debian sets it up (amandad in inetd.conf, -auth=bsdtcp): the server may connect.
printf 'lifeboat backup amdump\n%s backup amdump\n' "$SERVER_IP" >"$MNT/etc/amandahosts"
chmod 0600 "$MNT/etc/amandahosts"
mkdir -p "$MNT/var/lib/amanda/gnutar-lists"
chroot "$MNT" chown backup:backup /etc/amandahosts /var/lib/amanda/gnutar-lists
grep -q '^amanda ' "$MNT/etc/inetd.conf" || { log "no amanda line in the system's /etc/inetd.conf"; exit 1; }
# The sample system is debootstrap's minbase, without netbase: inetd finds neither the
# protocol nor the service of that line. What netbase would put there for them:
[ -s "$MNT/etc/protocols" ] || printf 'ip\t0\tIP\ntcp\t6\tTCP\nudp\t17\tUDP\n' >"$MNT/etc/protocols"
grep -qs '^amanda[[:space:]]' "$MNT/etc/services" || printf 'amanda\t\t10080/tcp\namanda\t\t10080/udp\n' >>"$MNT/etc/services"
# A user with some data of his own on /home.
chroot "$MNT" useradd -m -u 1000 -s /bin/bash alice
mkdir -p "$MNT/home/alice/projects"
head -c 24M /dev/urandom >"$MNT/home/alice/projects/data.bin"
printf 'notes of alice, written at install time\n' >"$MNT/home/alice/notes.txt"
chroot "$MNT" chown -R alice:alice /home/alice

for m in dev dev/pts proc sys; do mount --bind "/$m" "$MNT/$m"; done
chroot "$MNT" ssh-keygen -A -q
chroot "$MNT" systemctl -q enable systemd-networkd.service
log "installing GRUB ($FIRMWARE)"
if [ "$FIRMWARE" = uefi ]; then
  # What grub-install --removable makes, without mounting the ESP (this host's kernel may have
  # no vfat): GRUB's modules under /boot/grub, and an EFI image at the removable-media path of
  # the ESP (written with mtools) that finds / by its UUID and reads /boot/grub/grub.cfg there.
  mkdir -p "$MNT/boot/grub/x86_64-efi"
  cp "$MNT"/usr/lib/grub/x86_64-efi/*.mod "$MNT"/usr/lib/grub/x86_64-efi/*.lst "$MNT/boot/grub/x86_64-efi/"
  printf 'search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n' "$ROOT_UUID" >"$MNT/tmp/early.cfg"
  mmd -i "${LOOP}p1" ::/EFI ::/EFI/BOOT
  SHIM=$MNT/usr/lib/shim/shimx64.efi.signed SIGNED_GRUB=$MNT/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
  if [ -f "$SHIM" ] && [ -f "$SIGNED_GRUB" ]; then
    # Secure Boot: shim, then the signed GRUB (monolithic: no module loads), which reads
    # \EFI\debian\grub.cfg on its own partition (its built-in prefix) and from there / by UUID.
    printf 'configfile ($root)/boot/grub/grub.cfg\n' >>"$MNT/tmp/early.cfg"
    mmd -i "${LOOP}p1" ::/EFI/debian
    mcopy -i "${LOOP}p1" "$SHIM" ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i "${LOOP}p1" "$SIGNED_GRUB" ::/EFI/BOOT/grubx64.efi
    mcopy -i "${LOOP}p1" "$MNT/tmp/early.cfg" ::/EFI/debian/grub.cfg
  else
    chroot "$MNT" grub-mkimage -O x86_64-efi -o /tmp/BOOTX64.EFI -p /boot/grub -c /tmp/early.cfg part_gpt ext2 fat search search_fs_uuid normal configfile linux echo
    mcopy -i "${LOOP}p1" "$MNT/tmp/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
  fi
  rm -f "$MNT/tmp/BOOTX64.EFI" "$MNT/tmp/early.cfg"
else
  chroot "$MNT" grub-install --target=i386-pc "$LOOP" >/dev/null 2>&1
fi
chroot "$MNT" grub-mkconfig -o /boot/grub/grub.cfg >/dev/null 2>&1
# Without udev there is no /dev/disk/by-uuid, so grub-mkconfig named the loop device: the UUID instead.
sed -i "s|root=${LOOP}p2 |root=UUID=$ROOT_UUID |" "$MNT/boot/grub/grub.cfg"
grep -q "root=UUID=$ROOT_UUID" "$MNT/boot/grub/grub.cfg" || { log "grub.cfg does not boot UUID=$ROOT_UUID"; exit 1; }
echo "ROOT_UUID=$ROOT_UUID"
echo "HOME_UUID=$HOME_UUID"
echo "ESP_UUID=$ESP_UUID"
echo "MACHINE_ID=$(cat "$MNT/etc/machine-id")"
