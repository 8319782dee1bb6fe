#!/usr/bin/env bash
# Build the GRUB test images with Debian's tools (grub-pc-bin, grub-common,
# e2fsprogs, fdisk, xorriso), without loop devices or root file systems, and
# make sure Debian's SeaBIOS (package seabios) is there to boot them:
#   .cache/grub/disk.img   raw disk: MBR with GRUB's boot.img, core.img in the
#                          gap after it, one ext2 partition (type 0x83) at 1 MiB
#                          holding /boot/grub/grub.cfg and /hello.txt
#   .cache/grub/cd.iso     El Torito (no emulation) ISO 9660 image: GRUB's
#                          i386-pc-eltorito core image, the same grub.cfg and file
#   .cache/grub/payload    the text of /hello.txt, for the tests to compare
# grub.cfg sends GRUB's console to COM1 (115200 8N1), prints a start marker,
# cats /hello.txt, prints an end marker and halts (ACPI S5, else APM, else hlt).
# Idempotent: rebuilds only when an image is missing or older than this script.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/.cache/grub"
WORK="$OUT/work"
SELF="$ROOT/scripts/build-grub-images.sh"
GRUBLIB=/usr/lib/grub/i386-pc
DISK_MB=16
PART_START=2048 # sectors: the partition starts at 1 MiB, GRUB's core.img sits before it

log() { echo "build-grub-images: $*" >&2; }
die() { echo "build-grub-images: error: $*" >&2; exit 1; }

fresh() { [[ -s "$1" && "$1" -nt "$SELF" ]]; }
SEABIOS=/usr/share/seabios/bios-256k.bin
if fresh "$OUT/disk.img" && fresh "$OUT/cd.iso" && fresh "$OUT/payload" && [[ -f "$SEABIOS" ]]; then exit 0; fi

# 1. Tools, from Debian's packages.
need=()
[[ -f "$SEABIOS" ]] || need+=(seabios)
[[ -f "$GRUBLIB/boot.img" && -f "$GRUBLIB/cdboot.img" ]] || need+=(grub-pc-bin)
command -v grub-mkimage >/dev/null || need+=(grub-common)
command -v xorriso >/dev/null || need+=(xorriso)
command -v mkfs.ext2 >/dev/null || need+=(e2fsprogs)
command -v sfdisk >/dev/null || need+=(fdisk)
if ((${#need[@]})); then
  [[ "$(id -u)" == 0 ]] || die "missing ${need[*]}: apt-get install them (needs root)"
  log "installing ${need[*]}"
  # grub-pc-bin only: grub-pc (the bootloader for this host) is not wanted.
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } ||
    die "apt-get install ${need[*]} failed"
fi

if fresh "$OUT/disk.img" && fresh "$OUT/cd.iso" && fresh "$OUT/payload"; then exit 0; fi
rm -rf "$WORK"
mkdir -p "$WORK/tree/boot/grub" "$WORK/iso/boot/grub"

# 2. The payload and the configuration.
PAYLOAD="bhyve-ts grub payload: the quick brown fox read from the guest file system"
printf '%s\n' "$PAYLOAD" >"$WORK/tree/hello.txt"
cat >"$WORK/tree/boot/grub/grub.cfg" <<'EOF'
serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
terminal_input serial
terminal_output serial
echo GRUB-CFG-START
cat /hello.txt
echo GRUB-CFG-END
halt
EOF
cp "$WORK/tree/hello.txt" "$WORK/iso/hello.txt"
cp "$WORK/tree/boot/grub/grub.cfg" "$WORK/iso/boot/grub/grub.cfg"

MODULES=(normal configfile echo cat serial terminal halt test)

# 3. The disk: ext2 file system image, partition table, boot.img, core.img.
PART_BYTES=$(((DISK_MB * 1024 * 1024) - PART_START * 512))
rm -f "$WORK/part.img"
mkfs.ext2 -q -F -L grubtest -b 1024 -d "$WORK/tree" "$WORK/part.img" "$((PART_BYTES / 1024))" >/dev/null
truncate -s "${DISK_MB}M" "$WORK/disk.img"
printf 'label: dos\nstart=%d, type=83, bootable\n' "$PART_START" | sfdisk -q "$WORK/disk.img" >/dev/null
dd if="$WORK/part.img" of="$WORK/disk.img" bs=512 seek="$PART_START" conv=notrunc status=none
grub-mkimage -O i386-pc -o "$WORK/core.img" -p '(hd0,msdos1)/boot/grub' \
  biosdisk part_msdos ext2 "${MODULES[@]}"
core_sectors=$((($(stat -c %s "$WORK/core.img") + 511) / 512))
((core_sectors < PART_START - 1)) || die "core.img ($core_sectors sectors) does not fit before the partition"
# boot.img's code only (440 bytes): the disk signature and partition table stay.
# Its built-in kernel sector is 1 and grub-mkimage filled in core.img's own
# block list, so core.img goes right after the MBR with no grub-setup step.
dd if="$GRUBLIB/boot.img" of="$WORK/disk.img" bs=440 count=1 conv=notrunc status=none
dd if="$WORK/core.img" of="$WORK/disk.img" bs=512 seek=1 conv=notrunc status=none

# 4. The CD: an El Torito no-emulation image (cdboot.img + core) on ISO 9660.
grub-mkimage -O i386-pc-eltorito -o "$WORK/iso/boot/grub/eltorito.img" -p /boot/grub \
  biosdisk iso9660 "${MODULES[@]}"
xorriso -as mkisofs -quiet -R -V GRUBTEST -o "$WORK/cd.iso" \
  -b boot/grub/eltorito.img -no-emul-boot -boot-load-size 4 -boot-info-table \
  "$WORK/iso" 2>/dev/null

mv "$WORK/disk.img" "$OUT/disk.img"
mv "$WORK/cd.iso" "$OUT/cd.iso"
printf '%s\n' "$PAYLOAD" >"$OUT/payload"
rm -rf "$WORK"
log "built $OUT/disk.img and $OUT/cd.iso"
