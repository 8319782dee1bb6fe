#!/usr/bin/env bash
# Fetch Debian's stock amd64 kernel with apt and lay it out for bhyve-ts:
#   .cache/kernel/vmlinuz        the bzImage (64-bit boot protocol)
#   .cache/kernel/vmlinux        the uncompressed ELF (PVH entry)
#   .cache/kernel/modules/       the modules the initramfs loads, plus
#   .cache/kernel/modules/load-order   one file name a line, dependencies first
#   .cache/kernel/version        the package version (built-from: package and version)
# Idempotent: every step is skipped when its output is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/.cache/kernel"
DEB_DIR="$OUT/deb"
TREE="$OUT/tree"
mkdir -p "$OUT" "$DEB_DIR"

# Modules we want in the guest; their dependencies come from each module's .modinfo.
# crc-t10dif and crc64-rocksoft look their algorithms up by alias at init
# (a softdep modprobe would load these), so name the generic ones first; the
# same for ext4 and jbd2, which ask the crypto API for "crc32c".
WANTED=(crct10dif_generic crc64_rocksoft_generic crc32c_generic
        virtio_pci virtio_blk virtio_net virtio-rng virtio_balloon ahci sd_mod sr_mod ext4)

log() { echo "fetch-kernel: $*" >&2; }
die() { echo "fetch-kernel: error: $*" >&2; exit 1; }

resolve_pkg() { # the image package linux-image-amd64 depends on
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'
}
download() { # package -> its .deb in $DEB_DIR (quietly fails if apt cannot)
  (cd "$DEB_DIR" && apt-get -q download -o APT::Sandbox::User=root "$1") && ls "$DEB_DIR"/"$1"_*.deb >/dev/null 2>&1
}

# 1-2. Which package (kept in $OUT/package once downloaded), download, unpack.
PKG="$(cat "$OUT/package" 2>/dev/null || true)"
DEB="$( [[ -n "$PKG" ]] && ls "$DEB_DIR"/"${PKG}"_*.deb 2>/dev/null | head -n1 || true)"
if [[ -z "$DEB" ]]; then
  PKG="$(resolve_pkg)"
  if [[ -z "$PKG" ]] || ! download "$PKG"; then
    # Old or missing package lists: the mirror may have moved on to a new ABI.
    log "apt cannot fetch ${PKG:-the kernel package}; running apt-get update"
    apt-get update -qq || true
    PKG="$(resolve_pkg)"
    [[ -n "$PKG" ]] || die "cannot find the linux-image-amd64 dependency with apt-cache"
    download "$PKG" || die "apt-get download $PKG failed"
  fi
  DEB="$(ls "$DEB_DIR"/"${PKG}"_*.deb | head -n1)"
  echo "$PKG" > "$OUT/package"
fi
KREL="${PKG#linux-image-}"
log "package $PKG (kernel release $KREL)"
VERSION="$PKG $(dpkg-deb -f "$DEB" Version)"
if [[ "$(cat "$OUT/built-from" 2>/dev/null || true)" != "$VERSION" ]]; then
  # A new package: drop what was made from the old one.
  rm -rf "$TREE" "$OUT/vmlinuz" "$OUT/vmlinux" "$OUT/compression" "$OUT/modules"
  find "$DEB_DIR" -name '*.deb' ! -name "$(basename "$DEB")" -delete
fi
if [[ ! -d "$TREE/lib/modules/$KREL" ]]; then
  rm -rf "$TREE"
  dpkg-deb -x "$DEB" "$TREE"
fi
echo "$VERSION" > "$OUT/built-from"
dpkg-deb -f "$DEB" Version > "$OUT/version"

# 3. The bzImage.
if [[ ! -f "$OUT/vmlinuz" ]]; then
  cp "$TREE/boot/vmlinuz-$KREL" "$OUT/vmlinuz.tmp"
  mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
fi

# 4. The ELF vmlinux from the bzImage payload (payload_offset/length in the
#    setup header, relative to the protected-mode code after the setup sectors).
u8()  { od -An -t u1 -j "$2" -N 1 "$1" | tr -d ' '; }
u32() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
if [[ ! -f "$OUT/vmlinux" ]]; then
  Z="$OUT/vmlinuz"
  [[ "$(dd if="$Z" bs=1 skip=514 count=4 status=none)" == "HdrS" ]] || die "$Z is not a bzImage"
  SETUP_SECTS="$(u8 "$Z" 0x1f1)"; (( SETUP_SECTS == 0 )) && SETUP_SECTS=4
  PM_START=$(( (SETUP_SECTS + 1) * 512 ))
  POFF=$(( PM_START + $(u32 "$Z" 0x248) ))
  PLEN="$(u32 "$Z" 0x24c)"
  MAGIC="$(od -An -t x1 -j "$POFF" -N 6 "$Z" | tr -d ' \n')"
  case "$MAGIC" in
    1f8b*)         COMP=gzip;  DEC=(gzip -dc) ;;
    fd377a585a00)  COMP=xz;    DEC=(xz -dc) ;;
    28b52ffd*)     COMP=zstd;  DEC=(zstd -dcq) ;;
    5d0000*)       COMP=lzma;  DEC=(xz -dc --format=lzma) ;;
    02214c18*)     COMP=lz4;   DEC=(lz4 -dcq) ;;
    *) die "unknown payload compression (magic $MAGIC at offset $POFF)" ;;
  esac
  log "payload: $COMP, $PLEN bytes at offset $POFF"
  # The payload ends with the uncompressed size (u32), which the
  # decompressors do not expect; they may complain, so check the size instead.
  USIZE="$(u32 "$Z" $(( POFF + PLEN - 4 )))"
  dd if="$Z" bs=4M iflag=skip_bytes,count_bytes skip="$POFF" count="$PLEN" status=none \
    | "${DEC[@]}" > "$OUT/vmlinux.tmp" 2>/dev/null || true
  [[ "$(stat -c %s "$OUT/vmlinux.tmp")" == "$USIZE" ]] \
    || die "cannot decompress the $COMP payload (got $(stat -c %s "$OUT/vmlinux.tmp") bytes, expected $USIZE)"
  [[ "$(od -An -c -N 4 "$OUT/vmlinux.tmp" | tr -d ' ')" == '177ELF' ]] || die "payload is not an ELF file"
  echo "$COMP" > "$OUT/compression"
  mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
fi
# The PVH entry note (Xen, XEN_ELFNOTE_PHYS32_ENTRY = 18) must be present.
readelf -n "$OUT/vmlinux" | grep -qE 'Xen.*(0x00000012|PHYS32_ENTRY)' \
  || die "$OUT/vmlinux has no PVH entry note (Xen note type 18)"

# 5. Modules, with their dependencies, in load order. The package ships no
#    modules.dep (depmod makes it at install time), so read each module's
#    .modinfo "depends=" (and "softdep=pre:") strings and map names to files
#    through modules.order.
MODROOT="$TREE/lib/modules/$KREL"
MODOUT="$OUT/modules"
if [[ ! -f "$MODOUT/load-order" || "$(cat "$MODOUT/wanted" 2>/dev/null || true)" != "${WANTED[*]}" ]]; then
  rm -rf "$MODOUT"; mkdir -p "$MODOUT"
  declare -A SEEN=()
  ORDER=()
  path_of() { # module name (- and _ alike) -> path relative to $MODROOT, or empty
    local n="${1//-/_}"
    awk -v n="$n" '{ f=$1; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f); gsub(/-/, "_", f);
      if (f == n) { print $1; exit } }' "$MODROOT/modules.order"
  }
  is_builtin() { grep -qE "/${1//[-_]/[-_]}\.ko$" "$MODROOT/modules.builtin"; }
  modinfo_deps() { # path -> names this module needs loaded first
    local f="$MODROOT/$1"
    case "$f" in
      *.xz) xz -dc "$f" ;; *.zst) zstd -dcq "$f" ;; *.gz) gzip -dc "$f" ;; *) cat "$f" ;;
    esac | tr '\0' '\n' | awk '
      /^depends=/ { sub(/^depends=/, ""); gsub(/,/, " "); print }
      /^softdep=/ { sub(/^softdep=/, ""); if (match($0, /pre:[^:]*/)) {
                      s = substr($0, RSTART + 4, RLENGTH - 4); sub(/ post$/, "", s); print s } }'
  }
  visit() { # name: dependencies first, then the module itself
    local name="$1" rel dep
    rel="$(path_of "$name")"
    if [[ -z "$rel" ]]; then
      is_builtin "$name" && return 0
      return 1
    fi
    [[ -n "${SEEN[$rel]:-}" ]] && return 0
    SEEN[$rel]=1
    for dep in $(modinfo_deps "$rel"); do
      visit "$dep" || log "note: $name wants $dep, which is neither a module nor built in (an alias?)"
    done
    ORDER+=("$rel")
  }
  for m in "${WANTED[@]}"; do visit "$m" || die "module $m not found in $MODROOT"; done
  : > "$MODOUT/load-order.tmp"
  for rel in "${ORDER[@]}"; do
    base="$(basename "$rel")"
    case "$base" in
      *.ko.xz)  xz -dc "$MODROOT/$rel" > "$MODOUT/${base%.xz}"; base="${base%.xz}" ;;
      *.ko.zst) zstd -dcq "$MODROOT/$rel" > "$MODOUT/${base%.zst}"; base="${base%.zst}" ;;
      *.ko.gz)  gzip -dc "$MODROOT/$rel" > "$MODOUT/${base%.gz}"; base="${base%.gz}" ;;
      *)        cp "$MODROOT/$rel" "$MODOUT/$base" ;;
    esac
    echo "$base" >> "$MODOUT/load-order.tmp"
  done
  echo "${WANTED[*]}" > "$MODOUT/wanted"
  mv "$MODOUT/load-order.tmp" "$MODOUT/load-order"
fi

log "version $(cat "$OUT/version"), compression $(cat "$OUT/compression")"
log "vmlinuz $(stat -c %s "$OUT/vmlinuz") bytes, vmlinux $(stat -c %s "$OUT/vmlinux") bytes"
log "modules: $(tr '\n' ' ' < "$MODOUT/load-order")"
