#!/usr/bin/env bash
# npm test: build, prepare guests and Debian's kernel, then run every test
# (unit tests beside the code, end-to-end tests that boot guests on /dev/kvm).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v iasl >/dev/null || need+=(acpica-tools)
command -v cpio >/dev/null || need+=(cpio)
command -v gcc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v xorriso >/dev/null || need+=(xorriso)
command -v debugfs >/dev/null || need+=(e2fsprogs)
command -v flock >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v dmidecode >/dev/null || need+=(dmidecode)
[ -e /usr/share/seabios/bios-256k.bin ] || need+=(seabios)
[ -d /usr/lib/ipxe/qemu ] || need+=(ipxe-qemu)
[ -e /usr/share/OVMF/OVMF_CODE.fd ] || need+=(ovmf)
[ -e /boot/memtest86+x64.bin ] || need+=(memtest86+)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "test: installing ${need[*]}"
  (apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null; }) || echo "test: could not install ${need[*]}"
fi
npm run -s build
make -s -C tests/guests
bash scripts/fetch-kernel.sh || echo "test: WARNING: fetching Debian's kernel failed; the Linux tests will fail"
bash scripts/build-initramfs.sh || echo "test: WARNING: building the initramfs failed; the Linux tests will fail"
if [ ! -e /dev/kvm ]; then
  echo "################################################################"
  echo "# NO /dev/kvm ON THIS HOST: the KVM tests below will be skipped #"
  echo "################################################################"
fi
mapfile -t files < <(find dist -name '*.test.js' | sort)
exec node --test --test-concurrency=1 "${files[@]}"
