#!/usr/bin/env bash
# Build .cache/initramfs.cpio.gz: Debian's static busybox, the kernel modules
# gathered by fetch-kernel.sh, and an /init that mounts proc/sys/dev, loads
# the modules, prints "bhyve-ts initramfs ready" and runs a shell on the
# console (ttyS0 with console=ttyS0). Only apt reaches the network.
# Also .cache/initramfs-base.cpio: the same without the modules, for guests
# with no devices to drive (unpacking costs minutes where the kernel is
# emulated, and every byte counts there).
# Idempotent: rebuilt only when the image is missing or older than its inputs.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="$ROOT/.cache"
OUT="$CACHE/initramfs.cpio.gz"
BB_DIR="$CACHE/busybox"
KMODS="$CACHE/kernel/modules"
MARKER="bhyve-ts initramfs ready"

log() { echo "build-initramfs: $*" >&2; }
die() { echo "build-initramfs: error: $*" >&2; exit 1; }

# Inputs: the kernel modules, busybox-static, cpio.
[[ -f "$KMODS/load-order" ]] || bash "$ROOT/scripts/fetch-kernel.sh"
if ! command -v cpio >/dev/null; then
  log "installing cpio"
  apt-get install -y -qq cpio >/dev/null || { apt-get update -qq && apt-get install -y -qq cpio >/dev/null; } \
    || die "cannot install cpio"
fi
mkdir -p "$BB_DIR"
BB="$BB_DIR/tree/bin/busybox"
if [[ ! -x "$BB" ]]; then
  if ! ls "$BB_DIR"/busybox-static_*.deb >/dev/null 2>&1; then
    (cd "$BB_DIR" && apt-get -q download -o APT::Sandbox::User=root busybox-static) || {
      log "apt-get download failed; running apt-get update and retrying"
      apt-get update -qq || true
      (cd "$BB_DIR" && apt-get -q download -o APT::Sandbox::User=root busybox-static)
    } || die "cannot download busybox-static"
  fi
  rm -rf "$BB_DIR/tree"
  dpkg-deb -x "$(ls "$BB_DIR"/busybox-static_*.deb | head -n1)" "$BB_DIR/tree"
  [[ -x "$BB" ]] || die "busybox-static package has no bin/busybox"
fi

SELF="$ROOT/scripts/build-initramfs.sh"
BASE="$CACHE/initramfs-base.cpio"
if [[ -f "$OUT" && -f "${OUT%.gz}" && -f "$BASE" && "$OUT" -nt "$BB" && "$OUT" -nt "$KMODS/load-order" && "$OUT" -nt "$SELF" ]]; then
  log "$OUT is up to date ($(stat -c %s "$OUT") bytes)"
  exit 0
fi

STAGE="$(mktemp -d "$CACHE/initramfs.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,etc,mnt,lib/modules}
cp "$BB" "$STAGE/bin/busybox"
# Applet links, as busybox itself lists them (it is static: it runs here too).
for applet in $("$BB" --list-full); do
  [[ "$applet" == bin/busybox || -L "$STAGE/$applet" ]] && continue
  mkdir -p "$STAGE/$(dirname "$applet")"
  ln -s /bin/busybox "$STAGE/$applet"
done
[[ -L "$STAGE/bin/sh" ]] || ln -s /bin/busybox "$STAGE/bin/sh"
# No /sbin/modprobe: /init loads its modules with insmod, in order, and the
# kernel's request_module() then starts no helper process during the boot
# (there is no modules.dep for one to use, and where kernel code is emulated
# each such exec costs seconds).
rm -f "$STAGE/sbin/modprobe"

# The modules without Debian's signatures: the kernel (no forced signing)
# then loads them without hashing each one, which is minutes of SHA-256 where
# kernel code is emulated; it notes the missing signature and taints itself.
# The trailer: struct module_signature (sig_len big-endian in its last 4 of
# 12 bytes), the signature before it, then the 28-byte magic string.
MAGIC='~Module signature appended~'
unsign() {
  local f="$1" size tail sig
  size=$(stat -c %s "$f")
  tail="$(tail -c 28 "$f" | head -c 27)"
  [[ "$tail" == "$MAGIC" ]] || return 0
  sig=$(tail -c 32 "$f" | head -c 4 | od -An -tu1 | awk '{ print (($1 * 256 + $2) * 256 + $3) * 256 + $4 }')
  (( sig > 0 && sig + 40 < size )) || die "$f: odd signature trailer"
  truncate -s $(( size - 40 - sig )) "$f"
}
# The kernel opens /dev/console before running /init; the node has to be in
# the archive (needs root; /init falls back to devtmpfs otherwise).
mknod -m 600 "$STAGE/dev/console" c 5 1 2>/dev/null || log "note: cannot mknod /dev/console (not root?)"
mknod -m 666 "$STAGE/dev/null" c 1 3 2>/dev/null || true
echo 'root:x:0:0:root:/root:/bin/sh' > "$STAGE/etc/passwd"
echo 'root:x:0:' > "$STAGE/etc/group"

cat > "$STAGE/init" <<EOF
#!/bin/sh
# bhyve-ts initramfs init
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=vt100
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
[ -t 1 ] || exec </dev/console >/dev/console 2>&1
hostname bhyve-ts
# bhyve_ts_modules=0 on the kernel command line skips the modules (a guest
# without devices to drive boots much faster where the kernel is emulated).
if [ ! -f /lib/modules/load-order ]; then
  echo "init: no modules in this initramfs"
elif grep -q 'bhyve_ts_modules=0' /proc/cmdline; then
  echo "init: not loading modules (bhyve_ts_modules=0)"
else
  echo "init: loading modules"
  for m in \$(cat /lib/modules/load-order); do
    insmod "/lib/modules/\$m" || echo "init: insmod \$m failed"
  done
fi
# Let device probing settle a moment (virtio, AHCI) before the prompt.
sleep 1
echo "$MARKER"
while true; do
  setsid cttyhack sh -l
  echo "init: shell exited; starting another"
done
EOF
chmod 755 "$STAGE/init"

CPIO_OPTS=(-o -H newc --quiet)
cpio --help 2>/dev/null | grep -q -- --reproducible && CPIO_OPTS+=(--reproducible)
archive() { (cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio "${CPIO_OPTS[@]}" -R 0:0); }
archive > "$BASE.tmp"
mv "$BASE.tmp" "$BASE"
cp "$KMODS"/*.ko "$KMODS/load-order" "$STAGE/lib/modules/"
for ko in "$STAGE"/lib/modules/*.ko; do unsign "$ko"; done
archive | gzip -9n > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
# The same archive uncompressed: where the kernel runs through an instruction
# emulator (PVM hosts), gunzip in the guest costs minutes; a copy costs nothing.
gzip -dc "$OUT" > "${OUT%.gz}.tmp" && mv "${OUT%.gz}.tmp" "${OUT%.gz}"
log "built $OUT ($(stat -c %s "$OUT") bytes, busybox $(dpkg-deb -f "$(ls "$BB_DIR"/busybox-static_*.deb | head -n1)" Version))"
