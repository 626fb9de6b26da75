#!/bin/sh
# The pipeline unikernel-mkimage replaces, rebuilt from Debian's programs for tests and
# benchmarks only (the product never runs any of them): a 1 GiB sparse disk with SYSLINUX's
# MBR, one bootable FAT32 partition made by sfdisk and mkdosfs, SYSLINUX installed in it, and
# mboot.c32 loading the kernel (stored as unikernel.bin) with the a.out kludge. Like the
# original it extracts the partition with dd, fills it with mtools, and reassembles the disk
# with another dd pass; "tar" output is GNU tar's sparse old-GNU tarball of disk.raw.
#
# Usage: syslinux-mkimage.sh raw|tar IMAGE UNIKERNEL [ARGUMENTS...]
# Needs: sfdisk (fdisk), mkdosfs (dosfstools), syslinux + syslinux-common, mtools, GNU tar.
set -eu
format=$1
image=$2
kernel=$3
shift 3
syslinux_dir=/usr/lib/syslinux
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

cp "$syslinux_dir/mbr/mbr.bin" "$work/head"
truncate -s 1G "$work/head"
echo ',,0xc,*' | sfdisk -q "$work/head" >/dev/null
# Partition start and size in sectors, from sfdisk's dump.
start=$(sfdisk -d "$work/head" | sed -n 's/.*start= *\([0-9]*\).*type=c.*/\1/p')
sectors=$(sfdisk -d "$work/head" | sed -n 's/.*size= *\([0-9]*\).*type=c.*/\1/p')
dd if="$work/head" of="$work/part" bs=512 skip="$start" conv=sparse 2>/dev/null
truncate -s $((start * 512)) "$work/head"

mkdosfs -F 32 "$work/part" $((sectors / 2)) >/dev/null
syslinux --install "$work/part"
printf 'SERIAL 0 115200\nDEFAULT unikernel\nLABEL unikernel\n  KERNEL mboot.c32\n  APPEND -aout unikernel.bin %s\n' "$*" >"$work/syslinux.cfg"
export MTOOLS_SKIP_CHECK=1
mcopy -i "$work/part" "$work/syslinux.cfg" ::syslinux.cfg
mcopy -i "$work/part" "$syslinux_dir/modules/bios/libcom32.c32" ::libcom32.c32
mcopy -i "$work/part" "$syslinux_dir/modules/bios/mboot.c32" ::mboot.c32
mcopy -i "$work/part" "$kernel" ::unikernel.bin

if [ "$format" = raw ]; then
    cat "$work/head" "$work/part" | dd of="$image" bs=512 conv=sparse 2>/dev/null
else
    cat "$work/head" "$work/part" | dd of="$work/disk.raw" bs=512 conv=sparse 2>/dev/null
    tar -C "$work" -Sczf "$image" disk.raw
fi
