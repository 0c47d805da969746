# shellcheck shell=bash
# tests/vm/lib/disks.sh - the VM's disks, made on the host without mounting anything.
#
# The layout below is the one source of truth: run.sh turns it into disk images, QEMU
# devices, the guest's /etc/vm-mounts and /etc/vm-files.
#
#   id  controller  nsid  LBA   table  start  fs    MiB   note
VM_DISKS=(
	"a1 A 1 512  mbr 2049 ext4 160 -"	# odd partition start, 512 B LBAs
	"a2 A 2 4096 gpt 300  xfs  320 -"	# 4 KiB LBAs, GPT
	"b1 B 1 512  gpt 3001 xfs  320 -"	# controller B: small MDTS (16 KiB)
	"b2 B 2 4096 mbr 263  ext4 160 verity"	# ext4's verity feature (test-verity)
	"md C 1 512  none 0   ext4 32  meta"	# 8 bytes of metadata (PI type 1) per LBA, separate
	"mx C 2 512  none 0   ext4 32  metaext"	# the same, extended LBAs (mset=1): no integrity profile
	"vb V 0 512  none 0   ext4 16  -"	# virtio-blk, not NVMe
	"hr D 1 4096 none 0   ext4 48  hotremove"	# controller D: removed by final-hotremove
	"fz E 1 4096 none 0   ext4 48  hotremove"	# controller E: removed under test-fuzz (final phase)
)
# Controllers: serial and extra nvme device properties.
# A allows 4 MiB commands (mdts=10; Linux caps there): a page-aligned 4 MiB command has
# PRP1 and 1023 list entries, a chained second list page. QEMU fails commands of more
# than 1024 PRP entries (its IOV_MAX), which a 4 MiB command to an unaligned destination
# has, so test-read starts reads over 2 MiB page aligned. B's 16 KiB (mdts=2) forces
# splits.
declare -A VM_CTRL=([A]="p2pA,mdts=10" [B]="p2pB,mdts=2" [C]="p2pC" [D]="p2pD" [E]="p2pE")

# vm_stage_files DIR TAG LBA BIG: the host-made test files of one file system.
# Names start with the tag so that no two file systems hold the same name (the content
# follows from the name).
vm_stage_files() {
	local dir=$1 tag=$2 lba=$3 big=$4
	mkdir -p "$dir"
	"$MKPATTERN" \
		"$dir/$tag-lba" "$lba" \
		"$dir/$tag-small" 12345 \
		"$dir/$tag-1m" $((1048576 + 3 * 4096)) \
		"$dir/$tag-odd" $((3 * 1048576 + 1000)) \
		"$dir/$tag-big" $((big * 1048576)) \
		"$dir/$tag-pub" 65536 \
		"$dir/$tag-secret" 65536 \
		"$dir/$tag-wr" 65536
	chmod 0600 "$dir/$tag-secret"
	chmod 0644 "$dir/$tag-pub" "$dir/$tag-wr"
	printf '%s\n' "$tag-lba data" "$tag-small data" "$tag-1m data" "$tag-odd data" \
		"$tag-big data" "$tag-pub data" "$tag-secret secret" "$tag-wr data" >"$dir.list"
}

# vm_mkfs IMG FSTYPE MIB LBA STAGEDIR [NOTE]
# NOTE "verity" gives an ext4 file system the verity feature (FS_IOC_ENABLE_VERITY works
# on it), unless VM_EXT4_VERITY is set empty: a kernel without CONFIG_FS_VERITY refuses
# to mount such a file system read-write (run.sh checks the kernels it boots).
vm_mkfs() {
	local img=$1 fs=$2 mib=$3 lba=$4 dir=$5 note=${6:-} proto f opts=""
	rm -f "$img"
	truncate -s "${mib}M" "$img"
	case $fs in
	ext4)
		[ "$note" = verity ] && [ -n "${VM_EXT4_VERITY-1}" ] && opts="-O verity"
		# shellcheck disable=SC2086 # $opts: no option, or one option and its value
		mkfs.ext4 -q -F -b 4096 $opts -d "$dir" "$img" >/dev/null ;;
	xfs)
		# mkfs.xfs copies files in from a prototype file.
		proto=$img.proto
		{
			echo "vm"; echo "0 0"; echo "d--755 0 0"
			for f in "$dir"/*; do
				printf '%s ---%s 0 0 %s\n' "$(basename "$f")" \
					"$(stat -c %a "$f")" "$f"
			done
			echo '$'
		} >"$proto"
		mkfs.xfs -q -f -s size="$lba" -p "$proto" "$img" >/dev/null ;;
	esac
}

# vm_mkdisk OUT LBA TABLE START PARTIMG [meta]: a namespace image holding PARTIMG in a
# partition starting at LBA START (or the whole namespace when TABLE is none).
vm_mkdisk() {
	local out=$1 lba=$2 table=$3 start=$4 part=$5 meta=$6 psize data nlba
	psize=$(stat -c %s "$part")
	rm -f "$out"
	if [ "$table" = none ]; then
		cp --sparse=always "$part" "$out"
	else
		# room for the partition and a GPT backup at the end
		truncate -s $((start * lba + psize + 1048576)) "$out"
		# fdisk, not sfdisk: only fdisk takes a sector size (-b) for 4 KiB LBAs
		if [ "$table" = gpt ]; then
			printf 'g\nn\n1\n%s\n%s\nw\n' "$start" $((start + psize / lba - 1))
		else
			printf 'o\nn\np\n1\n%s\n%s\nw\n' "$start" $((start + psize / lba - 1))
		fi | fdisk -b "$lba" "$out" >"$out.fdisk" 2>&1 ||
			{ cat "$out.fdisk" >&2; return 1; }
		rm -f "$out.fdisk"
		fdisk -b "$lba" -l "$out" | awk -v s="$start" '$1 ~ /1$/ && $2 == s { f = 1 } END { exit !f }' ||
			{ echo "disks: no partition at $start in $out" >&2; return 1; }
		dd if="$part" of="$out" bs=1M seek=$((start * lba)) oflag=seek_bytes \
			conv=notrunc,sparse status=none
	fi
	if [ "$meta" = meta ] || [ "$meta" = metaext ]; then
		# QEMU keeps the metadata after the data, whether the host sees it
		# interleaved (mset=1) or not: nlbas = size / (lba + 8). An
		# application tag of 0xffff turns PI checking off for blocks the host wrote.
		data=$(stat -c %s "$out")
		nlba=$((data / lba))
		head -c $((nlba * 8)) /dev/zero | tr '\0' '\377' >>"$out"
	fi
}

# vm_make_disks WORKDIR: every image, and the guest's /etc files, under WORKDIR.
vm_make_disks() {
	local work=$1 d id ctrl nsid lba table start fs mib note big
	mkdir -p "$work/etc"
	: >"$work/etc/vm-files"
	: >"$work/etc/vm-mounts"
	for d in "${VM_DISKS[@]}"; do
		read -r id ctrl nsid lba table start fs mib note <<<"$d"
		big=16
		case $id in a1|b2) big=64 ;; md|mx|vb) big=1 ;; hr) big=16 ;; esac
		vm_stage_files "$work/stage/$id" "$id" "$lba" "$big"
		# files a caller adds to every NVMe file system (the demo's model)
		if [ -n "${VM_STAGE_EXTRA:-}" ] && [ "$ctrl" != V ]; then
			cp "$VM_STAGE_EXTRA"/* "$work/stage/$id/"
		fi
		if [ "$id" = a1 ]; then
			# a small ext4 image for the loop-device refusal, on a1
			vm_stage_files "$work/stage/lp" lp 512 1
			vm_mkfs "$work/stage/$id/lp.img" ext4 16 512 "$work/stage/lp"
			while read -r name kind; do
				echo "/mnt/lp $name $(stat -c %s "$work/stage/lp/$name") $kind"
			done <"$work/stage/lp.list" >>"$work/etc/vm-files"
		fi
		vm_mkfs "$work/$id.part" "$fs" "$mib" "$lba" "$work/stage/$id" "$note"
		vm_mkdisk "$work/$id.img" "$lba" "$table" "$start" "$work/$id.part" "$note"
		rm -f "$work/$id.part" "$work/$id.part.proto"
		local part=1 opts=rw
		[ "$table" = none ] && part=0
		[ "$fs" = xfs ] && opts=rw,allocsize=4k
		echo "/mnt/$id $( [ "$ctrl" = V ] && echo virtio || echo "${VM_CTRL[$ctrl]%%,*}") $nsid $part $fs $opts" \
			>>"$work/etc/vm-mounts"
		# files of the controller that goes away are not "data" for other tests
		while read -r name kind; do
			[ "$note" = hotremove ] && kind=hotremove
			echo "/mnt/$id $name $(stat -c %s "$work/stage/$id/$name") $kind"
		done <"$work/stage/$id.list" >>"$work/etc/vm-files"
	done
	# the host keeps the staged files only as long as it needs their sizes
	rm -rf "$work/stage"
}

# vm_disk_args WORKDIR: QEMU arguments for the images made by vm_make_disks.
vm_disk_args() {
	local work=$1 d id ctrl nsid lba table start fs mib note c
	for c in "${!VM_CTRL[@]}"; do
		echo "-device nvme,id=nv$c,serial=${VM_CTRL[$c]}"
	done
	for d in "${VM_DISKS[@]}"; do
		read -r id ctrl nsid lba table start fs mib note <<<"$d"
		if [ "$ctrl" = V ]; then
			echo "-drive file=$work/$id.img,if=none,id=$id,format=raw,cache=unsafe,snapshot=on"
			echo "-device virtio-blk-pci,drive=$id"
			continue
		fi
		echo "-drive file=$work/$id.img,if=none,id=$id,format=raw,cache=unsafe,snapshot=on"
		local extra=""
		[ "$note" = meta ] && extra=",ms=8,pi=1"
		[ "$note" = metaext ] && extra=",ms=8,pi=1,mset=1"
		echo "-device nvme-ns,drive=$id,bus=nv$ctrl,nsid=$nsid,logical_block_size=$lba,physical_block_size=$lba$extra"
	done
}

# Number of NVMe namespaces the guest must see.
vm_nr_namespaces() {
	local d n=0 id ctrl rest
	for d in "${VM_DISKS[@]}"; do
		read -r id ctrl rest <<<"$d"
		[ "$ctrl" = V ] || n=$((n + 1))
	done
	echo "$n"
}
