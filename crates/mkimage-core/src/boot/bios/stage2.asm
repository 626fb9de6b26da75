; unikernel-mkimage stage 2: loads a Multiboot 1 kernel as the boot record describes and enters it.
;
; Contract
;   Loaded by the MBR code to 0000:8000 together with the boot record, which follows at
;   0000:A000 (STAGE2_SECTORS sectors after the start of stage 2). Entered at 0000:8000 in real
;   mode with DL = BIOS boot drive. Stage 2 is at most 8 KiB, the boot record at most 8 KiB.
;
;   It checks, in order, and stops at the first failure with one line on COM1 and a halt:
;     1. the boot record: signature, format version, length, CRC-32; and stage 2's own CRC-32
;        (recorded by the image builder), so a damaged boot area is never executed further;
;        then, trusting nothing the record says even with a correct CRC: every table and
;        string lies inside the record; no flag it does not know is set; every run reads only
;        sectors of the kernel file (skip < 512, sectors = ceil((skip + length) / 512), length
;        not zero); every run and zero range lies in [1 MiB, 4 GiB), so none touches the
;        loader's own memory; no two ranges overlap; the entry point lies in loaded bytes;
;     2. INT 13h extensions for the boot drive;
;     3. the A20 line: enabled through the BIOS, the keyboard controller or port 92h, and
;        verified by an alias test after each attempt;
;     4. the BIOS memory map (INT 15h E820h): collected straight into Multiboot mmap format;
;        every byte the loader itself uses and every byte the kernel occupies must lie in
;        memory the map reports usable (type 1) and in no other entry;
;     5. the kernel: every run of the boot record is read with INT 13h extended reads (at most
;        127 sectors per call, into a 64 KiB-aligned bounce buffer so no transfer crosses a
;        64 KiB boundary, interrupts enabled, status checked, three tries with a disk reset in
;        between) and copied to its destination from 32-bit protected mode; bss ranges are
;        zeroed; a checksum over all loaded bytes must match the record's (it catches a FAT
;        partition edited after the build).
;   It then builds the Multiboot information structure in low memory (flags 0, 1, 2, 6, 9)
;   and enters the kernel in the state Multiboot 1 specifies: EAX = 2BADB002h, EBX = address of
;   the information structure, CS a flat 32-bit code segment, DS/ES/FS/GS/SS flat 32-bit data
;   segments, A20 on, CR0.PE = 1, CR0.PG = 0, EFLAGS = 2 (IF = 0, DF = 0, VM = 0).
;
; Why protected mode and not "unreal" mode for the copies: unreal mode relies on segment
; descriptor caches surviving a return to real mode, which some hypervisors and BIOS calls do
; not preserve. Each copy enters protected mode with interrupts off, copies, and returns to real
; mode before the next BIOS call, so BIOS calls always run in genuine real mode with
; interrupts on. NMIs are not masked during the few microseconds of each copy.
;
; Memory used (all below 128 KiB, checked against the E820 map before use):
;   0500h-05FFh  variables        0600h-7BFFh  stack (grows down from 7C00h)
;   8000h-9FFFh  stage 2          A000h-BFFFh  boot record
;   C000h-C07Fh  Multiboot info   C200h-CDFFh  memory map (128 entries of 24 bytes)
;   10000h-1FDFFh bounce buffer for disk reads (127 sectors)
;
; Boot record (little-endian; see boot/record.rs, which writes it):
;   00h  8  signature "UKMKBREC"      08h  2  format version (2)   0Ah  2  header length (96)
;   0Ch  4  total length              10h  4  CRC-32 of the record with this field zero
;   14h  4  flags (bit 0: quiet; bit 1: video mode, refused here)
;   18h  4  kernel entry point (physical)
;   1Ch  2  number of runs            1Eh  2  number of zero ranges
;   20h  2  offset of the runs        22h  2  offset of the zero ranges
;   24h  2  offset of the command line    26h  2  offset of the kernel name
;   28h  2  offset of the loader name     2Ah  2  reserved (0)
;   2Ch  1  boot partition index      2Dh  3  reserved (0)
;   30h  4  checksum A                34h  4  checksum B  (over the loaded bytes, see below)
;   38h  4  kernel file size          3Ch  4  CRC-32 of stage 2's 16 sectors
;   40h  8  first LBA of the kernel file
;   48h 16  video request: mode type, width, height, depth (for the UEFI loader; unused here)
;   58h  8  reserved (0)
;   run (24 bytes): LBA u64, destination u32, skip u16 (bytes to skip in the first sector),
;     reserved u16, length u32 (bytes), sectors u32 (sectors covering skip + length)
;   zero range (8 bytes): destination u32, length u32
;   Checksum: A = B = 0; for each run, for each little-endian dword of its bytes (the last one
;   zero-padded): A += dword; B += A (both modulo 2^32).

bits 16
org 0x8000

%include "serial.inc"

STAGE_VERSION    equ 2
RECORD_VERSION   equ 2

STAGE2_ADDR      equ 0x8000
STAGE2_BYTES     equ 16 * 512
RECORD           equ 0xa000
RECORD_MAX       equ 16 * 512
RECORD_HEADER    equ 96
RUN_LEN          equ 24
ZERO_LEN         equ 8
LOAD_MIN         equ 0x100000      ; lowest address a kernel range may use
INFO             equ 0xc000
MMAP             equ 0xc200
MMAP_MAX         equ 128
MMAP_ENTRY       equ 24            ; size field (4) + base (8) + length (8) + type (4)
BOUNCE_SEG       equ 0x1000
BOUNCE           equ 0x10000
MAX_SECTORS      equ 127           ; per INT 13h call
WORK_START       equ 0x500         ; loader's own memory: variables to end of bounce buffer
WORK_LAST        equ 0x1ffff
STACK_TOP        equ 0x7c00
READ_TRIES       equ 3
MULTIBOOT_MAGIC  equ 0x2badb002
MB_INFO_FLAGS    equ 0x247         ; mem (0), boot_device (1), cmdline (2), mmap (6), loader name (9)
E820_SMAP        equ 0x534d4150
CRC32_POLY       equ 0xedb88320
KBC_TIMEOUT      equ 0xffff

; record header fields
R_SIGNATURE      equ RECORD + 0x00
R_VERSION        equ RECORD + 0x08
R_HEADER_LEN     equ RECORD + 0x0a
R_TOTAL_LEN      equ RECORD + 0x0c
R_CRC            equ RECORD + 0x10
R_FLAGS          equ RECORD + 0x14
R_ENTRY          equ RECORD + 0x18
R_RUN_COUNT      equ RECORD + 0x1c
R_ZERO_COUNT     equ RECORD + 0x1e
R_RUNS           equ RECORD + 0x20
R_ZEROS          equ RECORD + 0x22
R_CMDLINE        equ RECORD + 0x24
R_KERNEL_NAME    equ RECORD + 0x26
R_LOADER_NAME    equ RECORD + 0x28
R_BOOT_PART      equ RECORD + 0x2c
R_SUM_A          equ RECORD + 0x30
R_SUM_B          equ RECORD + 0x34
R_KERNEL_SIZE    equ RECORD + 0x38
R_STAGE2_CRC     equ RECORD + 0x3c
R_KERNEL_LBA     equ RECORD + 0x40
FLAG_QUIET       equ 1

; variables (0500h-05FFh)
v_drive          equ 0x500         ; u8
v_tries          equ 0x501         ; u8
v_status         equ 0x502         ; u8
v_mmap_count     equ 0x504         ; u16
v_pm_target      equ 0x506         ; u16: 32-bit routine called by pm_call
v_dap            equ 0x510         ; 16 bytes: INT 13h disk address packet
v_lba            equ 0x520         ; u64: next LBA of the current run
v_dest           equ 0x528         ; u32: next destination of the current run
v_left           equ 0x52c         ; u32: bytes of the current run still to copy
v_sectors        equ 0x530         ; u32: sectors of the current run still to read
v_skip           equ 0x534         ; u32: bytes to skip in the buffer
v_copy_src       equ 0x538         ; u32: source of a copy
v_copy_dst       equ 0x53c         ; u32: destination of a copy, zeroing or checksum
v_copy_len       equ 0x540         ; u32: length of a copy, zeroing or checksum
v_sum_a          equ 0x544         ; u32: running checksum
v_sum_b          equ 0x548         ; u32
v_range_first    equ 0x54c         ; u32: range being checked against the memory map
v_range_last     equ 0x550         ; u32 (inclusive)
v_run_ptr        equ 0x554         ; u16: current run / zero range in the record
v_run_left       equ 0x556         ; u16: runs / zero ranges still to process
v_cursor         equ 0x558         ; u32: scratch for the memory map walks
v_fused          equ 0x55c         ; u8: 1 when the current run is checksummed while copied
v_kernel_end     equ 0x560         ; u64: one past the kernel file's last LBA
v_range_count    equ 0x568         ; u16: runs + zero ranges

; ---------------------------------------------------------------------------------------------
header:
    jmp short entry
    nop
    nop
    db "UKMKSTG2"                  ; signature checked by the MBR code (offset 4)
    dw STAGE_VERSION               ; offset 12
    dw RECORD_VERSION              ; offset 14

entry:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, STACK_TOP
    sti
    cld
    mov [v_drive], dl
    call serial_init

    call check_record
    call check_plan
    test byte [R_FLAGS], FLAG_QUIET
    jnz .quiet
    call print_start_line
.quiet:
    call check_extensions
    call enable_a20
    call read_memory_map
    call check_memory
    call load_kernel
    call build_info
    jmp enter_kernel

; ---------------------------------------------------------------------------------------------
; 1. Boot record and stage 2 integrity.

check_record:
    mov si, msg_no_record
    cmp dword [R_SIGNATURE], 'UKMK'
    jne fatal
    cmp dword [R_SIGNATURE + 4], 'BREC'
    jne fatal
    cmp word [R_VERSION], RECORD_VERSION
    je .version_ok
    mov si, msg_record_version
    call error_prefix
    movzx eax, word [R_VERSION]
    call print_dec
    mov si, msg_record_version2
    jmp fatal_tail
.version_ok:
    mov si, msg_record_damaged
    cmp word [R_HEADER_LEN], RECORD_HEADER
    jne fatal
    mov ecx, [R_TOTAL_LEN]
    cmp ecx, RECORD_HEADER
    jb fatal
    cmp ecx, RECORD_MAX
    ja fatal
    ; CRC over the record with the CRC field taken as zero.
    mov eax, 0xffffffff
    mov si, RECORD
    mov ecx, R_CRC - RECORD
    call crc32_update
    mov si, zero_dword
    mov ecx, 4
    call crc32_update
    mov si, R_CRC + 4
    mov ecx, [R_TOTAL_LEN]
    sub ecx, R_CRC + 4 - RECORD
    call crc32_update
    not eax
    mov si, msg_record_damaged
    cmp eax, [R_CRC]
    jne fatal
    ; Offsets and counts must stay inside the record, after its header.
    movzx eax, word [R_RUN_COUNT]
    imul eax, eax, RUN_LEN
    movzx ebx, word [R_RUNS]
    call check_table
    movzx eax, word [R_ZERO_COUNT]
    shl eax, 3
    movzx ebx, word [R_ZEROS]
    call check_table
    mov bx, [R_CMDLINE]
    call check_string
    mov bx, [R_KERNEL_NAME]
    call check_string
    mov bx, [R_LOADER_NAME]
    call check_string
    ; Stage 2 itself, as the image builder wrote it.
    mov eax, 0xffffffff
    mov si, STAGE2_ADDR
    mov ecx, STAGE2_BYTES
    call crc32_update
    not eax
    mov si, msg_stage2_damaged
    cmp eax, [R_STAGE2_CRC]
    jne fatal
    ret

; A table of EAX bytes at record offset EBX must lie after the header and inside the record.
check_table:
    mov si, msg_record_damaged
    cmp ebx, RECORD_HEADER
    jb fatal
    add eax, ebx
    cmp eax, [R_TOTAL_LEN]
    ja fatal
    ret

; The string at record offset BX must start after the header and end (NUL) inside the record.
check_string:
    mov si, msg_record_damaged
    cmp bx, RECORD_HEADER
    jb fatal
    movzx ecx, word [R_TOTAL_LEN]
    sub cx, bx
    jbe fatal
    lea di, [bx + RECORD]
    xor al, al
    repne scasb
    jne fatal
    ret

; EAX = CRC-32 state, SI = data, ECX = length. Returns the updated state in EAX.
crc32_update:
    jecxz .done
.byte:
    xor al, [si]
    inc si
    mov dl, 8
.bit:
    shr eax, 1
    jnc .next
    xor eax, CRC32_POLY
.next:
    dec dl
    jnz .bit
    dec ecx
    jnz .byte
.done:
    ret

; The record's plan, checked field by field: what a correct CRC cannot vouch for.
check_plan:
    mov si, msg_bad_flags
    test dword [R_FLAGS], ~FLAG_QUIET
    jnz fatal
    ; One past the kernel file's last sector: its LBA + ceil(size / 512), in 64 bits.
    mov si, msg_bad_run
    mov eax, [R_KERNEL_SIZE]
    test eax, eax
    jz fatal
    xor edx, edx
    add eax, 511
    adc edx, 0
    shrd eax, edx, 9
    shr edx, 9
    add eax, [R_KERNEL_LBA]
    adc edx, [R_KERNEL_LBA + 4]
    jc fatal
    mov [v_kernel_end], eax
    mov [v_kernel_end + 4], edx
    cmp word [R_RUN_COUNT], 0
    je fatal
    mov ax, [R_RUN_COUNT]
    add ax, [R_ZERO_COUNT]
    mov [v_range_count], ax
    ; Every run reads only the kernel file's sectors, and just the ones it needs.
    mov si, [R_RUNS]
    add si, RECORD
    mov cx, [R_RUN_COUNT]
.run:
    call check_run
    add si, RUN_LEN
    loop .run
    ; Every range lies in [1 MiB, 4 GiB); none overlaps another; the entry point is loaded.
    xor bx, bx
.range:
    cmp bx, [v_range_count]
    jae .ranges_done
    call range_at
    call check_bounds
    inc bx
    jmp .range
.ranges_done:
    call check_overlaps
    jmp check_entry

; Checks the run at SI (clobbers EAX, EDX, DI).
check_run:
    mov di, msg_bad_run
    cmp word [si + 12], 512                 ; skip
    jae .bad
    mov eax, [si + 16]                      ; length
    test eax, eax
    jz .bad
    movzx edx, word [si + 12]
    add eax, edx                            ; skip + length, then whole sectors, in 64 bits
    mov edx, 0
    adc edx, edx
    add eax, 511
    adc edx, 0
    shrd eax, edx, 9
    shr edx, 9
    jnz .bad
    cmp eax, [si + 20]                      ; sectors
    jne .bad
    mov eax, [si]                           ; LBA >= the kernel's first LBA
    mov edx, [si + 4]
    cmp edx, [R_KERNEL_LBA + 4]
    jb .bad
    ja .start_ok
    cmp eax, [R_KERNEL_LBA]
    jb .bad
.start_ok:
    add eax, [si + 20]                      ; LBA + sectors <= one past the kernel's last
    adc edx, 0
    cmp edx, [v_kernel_end + 4]
    ja .bad
    jb .end_ok
    cmp eax, [v_kernel_end]
    ja .bad
.end_ok:
    ret
.bad:
    mov si, di
    jmp fatal

; Range BX (the runs first, then the zero ranges): EAX = destination, ECX = length.
; Clobbers SI.
range_at:
    cmp bx, [R_RUN_COUNT]
    jae .zero
    imul si, bx, RUN_LEN
    add si, [R_RUNS]
    mov eax, [si + RECORD + 8]
    mov ecx, [si + RECORD + 16]
    ret
.zero:
    mov si, bx
    sub si, [R_RUN_COUNT]
    shl si, 3
    add si, [R_ZEROS]
    mov eax, [si + RECORD]
    mov ecx, [si + RECORD + 4]
    ret

; The range EAX, ECX (length; empty is fine) must lie in [LOAD_MIN, 4 GiB).
check_bounds:
    jecxz .ok
    mov si, msg_bad_range
    cmp eax, LOAD_MIN
    jb fatal
    add eax, ecx
    jnc .ok
    jnz fatal                               ; beyond 4 GiB (exactly 4 GiB leaves zero)
.ok:
    ret

; No two non-empty ranges may overlap (every pair is compared).
check_overlaps:
    xor bx, bx
.outer:
    cmp bx, [v_range_count]
    jae .done
    call range_at
    jecxz .next_outer
    mov [v_range_first], eax
    lea eax, [eax + ecx - 1]
    mov [v_range_last], eax
    mov di, bx
.inner:
    inc di
    cmp di, [v_range_count]
    jae .next_outer
    push bx
    mov bx, di
    call range_at
    pop bx
    jecxz .inner
    cmp eax, [v_range_last]
    ja .inner
    lea eax, [eax + ecx - 1]
    cmp eax, [v_range_first]
    jb .inner
    mov si, msg_overlap
    jmp fatal
.next_outer:
    inc bx
    jmp .outer
.done:
    ret

; The entry point must lie in the bytes some run loads.
check_entry:
    mov edx, [R_ENTRY]
    xor bx, bx
.run:
    cmp bx, [R_RUN_COUNT]
    jae .outside
    call range_at
    inc bx
    cmp edx, eax
    jb .run
    sub edx, eax
    cmp edx, ecx
    lea edx, [edx + eax]                    ; restore the entry point (flags unchanged)
    jae .run
    ret
.outside:
    mov si, msg_bad_entry
    jmp fatal

print_start_line:
    mov si, [R_LOADER_NAME]
    add si, RECORD
    call print
    mov si, msg_start1
    call print
    mov si, [R_KERNEL_NAME]
    add si, RECORD
    call print
    mov si, msg_start2
    call print
    mov eax, [R_KERNEL_SIZE]
    call print_dec
    mov si, msg_start3
    jmp print

; ---------------------------------------------------------------------------------------------
; 2. INT 13h extensions.

check_extensions:
    mov ah, 0x41
    mov bx, 0x55aa
    mov dl, [v_drive]
    int 0x13
    jc .missing
    cmp bx, 0xaa55
    jne .missing
    test cl, 1                     ; fixed disk access subset: AH=42h available
    jz .missing
    ret
.missing:
    mov si, msg_no_ext
    call error_prefix
    mov al, [v_drive]
    call print_hex8
    mov si, msg_crlf
    jmp fatal_tail

; ---------------------------------------------------------------------------------------------
; 3. A20.

; ZF = 1 if A20 is off (the byte at 0000:7DFE aliases FFFF:7E0E, i.e. 107DFEh).
a20_off:
    push ds
    push es
    xor ax, ax
    mov ds, ax
    not ax
    mov es, ax
    mov al, [ds:0x7dfe]
    mov ah, [es:0x7e0e]
    push ax
    mov byte [ds:0x7dfe], 0x00
    mov byte [es:0x7e0e], 0xff
    cmp byte [ds:0x7dfe], 0xff
    pop ax
    mov [es:0x7e0e], ah
    mov [ds:0x7dfe], al
    pop es
    pop ds
    ret

enable_a20:
    call a20_off
    jnz .on
    mov ax, 0x2401                 ; BIOS: enable A20
    int 0x15
    call a20_settle
    jnz .on
    call kbc_wait                  ; keyboard controller: write output port with A20 set
    jnz .fast
    mov al, 0xd1
    out 0x64, al
    call kbc_wait
    jnz .fast
    mov al, 0xdf
    out 0x60, al
    call kbc_wait
    call a20_settle
    jnz .on
.fast:
    in al, 0x92                    ; "fast A20" through system control port A
    test al, 2
    jnz .fast_done
    or al, 2
    and al, 0xfe                   ; never write bit 0: it resets the machine
    out 0x92, al
.fast_done:
    call a20_settle
    jnz .on
    mov si, msg_a20
    jmp fatal
.on:
    ret

; Re-tests A20 for a while (some methods take effect with a delay). ZF = 1 if still off.
a20_settle:
    mov cx, 0x1000
.again:
    push cx
    call a20_off
    pop cx
    jnz .done
    loop .again
    cmp al, al                     ; ZF = 1: still off
.done:
    ret

; Waits until the keyboard controller can take a byte. ZF = 0 on timeout (or no controller).
kbc_wait:
    mov cx, KBC_TIMEOUT
.poll:
    in al, 0x64
    test al, 2
    jz .ready
    loop .poll
    or al, 1                       ; ZF = 0
    ret
.ready:
    cmp al, al                     ; ZF = 1
    ret

; ---------------------------------------------------------------------------------------------
; 4. Memory map.

read_memory_map:
    mov word [v_mmap_count], 0
    mov di, MMAP + 4               ; E820 writes base/length/type after our size field
    xor ebx, ebx
.next:
    mov dword [di + 20], 1         ; ACPI 3.0 attributes: "valid" unless the BIOS says otherwise
    mov eax, 0xe820
    mov edx, E820_SMAP
    mov ecx, 24
    int 0x15
    jc .end
    cmp eax, E820_SMAP
    jne .end
    cmp ecx, 20
    jb .skip
    je .valid
    test byte [di + 20], 1         ; extended attributes: bit 0 clear means "ignore this entry"
    jz .skip
.valid:
    mov eax, [di + 8]              ; zero-length entries carry nothing
    or eax, [di + 12]
    jz .skip
    mov dword [di - 4], 20         ; Multiboot size field: the entry is 20 bytes after it
    add di, MMAP_ENTRY
    inc word [v_mmap_count]
    cmp word [v_mmap_count], MMAP_MAX
    je .end
.skip:
    test ebx, ebx
    jnz .next
.end:
    cmp word [v_mmap_count], 0
    jne .done
    mov si, msg_no_e820
    jmp fatal
.done:
    ret

; Checks that [v_range_first, v_range_last] lies in memory of type 1 and overlaps no entry of
; another type. CF = 1 if not.
check_range:
    ; No other entry may overlap.
    mov si, MMAP
    mov cx, [v_mmap_count]
.overlap:
    cmp dword [si + 20], 1
    je .overlap_next
    call entry_last                ; EDX:EAX = last byte of the entry
    test edx, edx
    jnz .ends_high
    cmp eax, [v_range_first]
    jb .overlap_next               ; ends before the range
.ends_high:
    cmp dword [si + 8], 0
    jne .overlap_next              ; starts above 4 GiB
    mov eax, [si + 4]
    cmp eax, [v_range_last]
    jbe .bad                       ; starts inside or before the range and ends inside or after
.overlap_next:
    add si, MMAP_ENTRY
    loop .overlap
    ; Usable entries must cover it, possibly several adjacent ones.
    mov eax, [v_range_first]
    mov [v_cursor], eax
.cover:
    call usable_at_cursor
    jc .bad
    test edx, edx
    jnz .covered                   ; reaches past 4 GiB: covers the rest
    cmp eax, [v_range_last]
    jae .covered
    inc eax
    mov [v_cursor], eax
    jmp .cover
.bad:
    stc
    ret
.covered:
    clc
    ret

; Finds the usable (type 1) map entry starting below 4 GiB that contains the address in
; v_cursor. CF = 0 and EDX:EAX = the entry's last byte if there is one, CF = 1 if not.
; Clobbers SI and CX.
usable_at_cursor:
    mov si, MMAP
    mov cx, [v_mmap_count]
.entry:
    cmp dword [si + 20], 1
    jne .next
    cmp dword [si + 8], 0
    jne .next
    mov eax, [si + 4]
    cmp eax, [v_cursor]
    ja .next                       ; starts after the cursor
    call entry_last
    test edx, edx
    jnz .found                     ; reaches past 4 GiB
    cmp eax, [v_cursor]
    jae .found
.next:
    add si, MMAP_ENTRY
    loop .entry
    stc
    ret
.found:
    clc
    ret

; EDX:EAX = base + length - 1 of the map entry at SI.
entry_last:
    mov eax, [si + 4]
    mov edx, [si + 8]
    add eax, [si + 12]
    adc edx, [si + 16]
    sub eax, 1
    sbb edx, 0
    ret

check_memory:
    mov dword [v_range_first], WORK_START
    mov dword [v_range_last], WORK_LAST
    call check_range
    jnc .work_ok
    mov si, msg_low_memory
    jmp fatal
.work_ok:
    mov si, [R_RUNS]
    add si, RECORD
    mov cx, [R_RUN_COUNT]
.runs:
    jcxz .zeros
    mov eax, [si + 8]              ; destination
    mov ebx, [si + 12 + 4]         ; length (skip u16 and reserved u16 before it)
    call check_dest
    add si, 24
    dec cx
    jmp .runs
.zeros:
    mov si, [R_ZEROS]
    add si, RECORD
    mov cx, [R_ZERO_COUNT]
.zero:
    jcxz .done
    mov eax, [si]
    mov ebx, [si + 4]
    call check_dest
    add si, 8
    dec cx
    jmp .zero
.done:
    ret

; Checks the destination EAX, length EBX (not zero) against the memory map.
check_dest:
    test ebx, ebx
    jz .ok
    push si
    push cx
    mov [v_range_first], eax
    lea eax, [eax + ebx - 1]
    mov [v_range_last], eax
    call check_range
    pop cx
    pop si
    jc .bad
.ok:
    ret
.bad:
    mov si, msg_not_covered
    call error_prefix
    mov eax, [v_range_first]
    call print_hex32
    mov al, '-'
    call putc
    mov eax, [v_range_last]
    call print_hex32
    mov si, msg_not_covered2
    jmp fatal_tail

; ---------------------------------------------------------------------------------------------
; 5. Loading.

load_kernel:
    mov dword [v_sum_a], 0
    mov dword [v_sum_b], 0
    mov ax, [R_RUNS]
    add ax, RECORD
    mov [v_run_ptr], ax
    mov ax, [R_RUN_COUNT]
    mov [v_run_left], ax
.run:
    cmp word [v_run_left], 0
    je .zeros
    mov si, [v_run_ptr]
    mov eax, [si]
    mov [v_lba], eax
    mov eax, [si + 4]
    mov [v_lba + 4], eax
    mov eax, [si + 8]
    mov [v_dest], eax
    movzx eax, word [si + 12]
    mov [v_skip], eax
    mov eax, [si + 16]
    mov [v_left], eax
    mov eax, [si + 20]
    mov [v_sectors], eax
    ; A run whose first byte is dword-aligned in its sector is copied in chunks that are whole
    ; dwords (all but the last), so it can be checksummed while it is copied; any other run is
    ; checksummed in a second pass once it is in place.
    test byte [v_skip], 3
    setz byte [v_fused]
.chunk:
    mov eax, [v_sectors]
    test eax, eax
    jz .run_done
    cmp eax, MAX_SECTORS
    jbe .count_ok
    mov eax, MAX_SECTORS
.count_ok:
    push ax
    call read_chunk                ; AX sectors at v_lba into the bounce buffer
    pop ax
    movzx eax, ax
    sub [v_sectors], eax
    add [v_lba], eax
    adc dword [v_lba + 4], 0
    shl eax, 9                     ; bytes read
    sub eax, [v_skip]
    cmp eax, [v_left]
    jbe .len_ok
    mov eax, [v_left]
.len_ok:
    mov [v_copy_len], eax
    mov ebx, [v_skip]
    add ebx, BOUNCE
    mov [v_copy_src], ebx
    mov ebx, [v_dest]
    mov [v_copy_dst], ebx
    mov bx, pm_copy
    call pm_call
    mov eax, [v_copy_len]
    add [v_dest], eax
    sub [v_left], eax
    mov dword [v_skip], 0
    jmp .chunk
.run_done:
    cmp byte [v_fused], 0
    jne .run_next
    ; Checksum the run where it now lies: a checksumming copy of the run onto itself.
    mov byte [v_fused], 1
    mov si, [v_run_ptr]
    mov eax, [si + 8]
    mov [v_copy_src], eax
    mov [v_copy_dst], eax
    mov eax, [si + 16]
    mov [v_copy_len], eax
    mov bx, pm_copy
    call pm_call
.run_next:
    add word [v_run_ptr], 24
    dec word [v_run_left]
    jmp .run
.zeros:
    mov ax, [R_ZEROS]
    add ax, RECORD
    mov [v_run_ptr], ax
    mov ax, [R_ZERO_COUNT]
    mov [v_run_left], ax
.zero:
    cmp word [v_run_left], 0
    je .verify
    mov si, [v_run_ptr]
    mov eax, [si]
    mov [v_copy_dst], eax
    mov eax, [si + 4]
    mov [v_copy_len], eax
    mov bx, pm_zero
    call pm_call
    add word [v_run_ptr], 8
    dec word [v_run_left]
    jmp .zero
.verify:
    mov eax, [v_sum_a]
    cmp eax, [R_SUM_A]
    jne .mismatch
    mov eax, [v_sum_b]
    cmp eax, [R_SUM_B]
    jne .mismatch
    ret
.mismatch:
    mov si, msg_checksum
    jmp fatal

; Reads AX sectors (1..127) from v_lba into the bounce buffer, with retries.
read_chunk:
    mov byte [v_tries], READ_TRIES
.try:
    mov byte [v_dap], 16
    mov byte [v_dap + 1], 0
    mov [v_dap + 2], ax
    mov word [v_dap + 4], 0
    mov word [v_dap + 6], BOUNCE_SEG
    mov ebx, [v_lba]
    mov [v_dap + 8], ebx
    mov ebx, [v_lba + 4]
    mov [v_dap + 12], ebx
    push ax
    mov si, v_dap
    mov ah, 0x42
    mov dl, [v_drive]
    int 0x13
    mov [v_status], ah
    pop bx
    jc .failed
    cmp [v_dap + 2], bx            ; the BIOS reports how many sectors it transferred
    jne .failed
    ret
.failed:
    push bx
    xor ax, ax                     ; reset the disk system, then try again
    mov dl, [v_drive]
    int 0x13
    pop ax
    dec byte [v_tries]
    jnz .try
    mov si, msg_read
    call error_prefix
    mov eax, [v_lba + 4]
    call print_hex32
    mov eax, [v_lba]
    call print_hex32
    mov si, msg_read2
    call print
    mov al, [v_status]
    call print_hex8
    mov si, msg_read3
    jmp fatal_tail

; ---------------------------------------------------------------------------------------------
; Protected-mode excursions.

; Calls the 32-bit routine at BX in flat protected mode with interrupts off, then returns to
; real mode with interrupts on.
pm_call:
    cli
    mov [v_pm_target], bx
    lgdt [gdt_descriptor]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    jmp 0x08:.pm32
bits 32
.pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    movzx esp, sp
    movzx eax, word [v_pm_target]
    call eax
    jmp 0x18:.pm16
bits 16
.pm16:
    mov ax, 0x20                   ; 64 KiB limits again before leaving protected mode
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov eax, cr0
    and al, 0xfe
    mov cr0, eax
    jmp 0x0000:.rm
.rm:
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    sti
    ret

bits 32
; Copies v_copy_len bytes from v_copy_src to v_copy_dst; when v_fused is set, also adds them to
; the running checksum (whole dwords, a last partial dword zero-padded), in the same pass.
pm_copy:
    mov esi, [v_copy_src]
    mov edi, [v_copy_dst]
    mov ecx, [v_copy_len]
    mov edx, ecx
    cmp byte [v_fused], 0
    jne .fused
    shr ecx, 2
    rep movsd
    mov ecx, edx
    and ecx, 3
    rep movsb
    ret
.fused:
    mov ebx, [v_sum_a]
    mov ebp, [v_sum_b]
    shr ecx, 4                     ; four dwords per iteration
    jz .dwords
.four:
    mov eax, [esi]
    mov [edi], eax
    add ebx, eax
    add ebp, ebx
    mov eax, [esi + 4]
    mov [edi + 4], eax
    add ebx, eax
    add ebp, ebx
    mov eax, [esi + 8]
    mov [edi + 8], eax
    add ebx, eax
    add ebp, ebx
    mov eax, [esi + 12]
    mov [edi + 12], eax
    add ebx, eax
    add ebp, ebx
    add esi, 16
    add edi, 16
    dec ecx
    jnz .four
.dwords:
    mov ecx, edx
    shr ecx, 2
    and ecx, 3
    jz .tail
.dword:
    mov eax, [esi]
    mov [edi], eax
    add ebx, eax
    add ebp, ebx
    add esi, 4
    add edi, 4
    dec ecx
    jnz .dword
.tail:
    and edx, 3
    jz .done
    xor eax, eax                   ; last partial dword, zero-padded
    mov ecx, edx
    dec ecx
.tail_byte:
    shl eax, 8
    mov al, [esi + ecx]
    mov [edi + ecx], al
    dec ecx
    jns .tail_byte
    add ebx, eax
    add ebp, ebx
.done:
    mov [v_sum_a], ebx
    mov [v_sum_b], ebp
    ret

; Zeroes v_copy_len bytes at v_copy_dst.
pm_zero:
    mov edi, [v_copy_dst]
    mov ecx, [v_copy_len]
    mov edx, ecx
    xor eax, eax
    shr ecx, 2
    rep stosd
    mov ecx, edx
    and ecx, 3
    rep stosb
    ret
bits 16

; ---------------------------------------------------------------------------------------------
; Multiboot information and kernel entry.

build_info:
    mov di, INFO
    mov cx, 0x80 / 2
    xor ax, ax
    rep stosw
    mov dword [INFO + 0], MB_INFO_FLAGS
    ; mem_lower: usable KiB from address 0 (at most 640), from the entry that starts at 0.
    mov si, MMAP
    mov cx, [v_mmap_count]
.lower:
    cmp dword [si + 20], 1
    jne .lower_next
    mov eax, [si + 4]
    or eax, [si + 8]
    jnz .lower_next
    mov eax, [si + 12]
    cmp dword [si + 16], 0
    jne .lower_cap
    cmp eax, 0xa0000
    jbe .lower_set
.lower_cap:
    mov eax, 0xa0000
.lower_set:
    shr eax, 10
    mov [INFO + 4], eax
    jmp .upper
.lower_next:
    add si, MMAP_ENTRY
    loop .lower
.upper:
    ; mem_upper: usable KiB contiguous from 1 MiB, following adjacent usable entries, up to
    ; 4 GiB.
    mov dword [v_cursor], 0x100000
.upper_scan:
    call usable_at_cursor
    jc .upper_end
    test edx, edx
    jnz .upper_4g
    cmp eax, 0xffffffff
    je .upper_4g
    inc eax
    mov [v_cursor], eax
    jmp .upper_scan
.upper_end:
    mov eax, [v_cursor]
    sub eax, 0x100000
    shr eax, 10
    jmp .upper_set
.upper_4g:
    mov eax, (0x100000000 - 0x100000) >> 10
.upper_set:
    mov [INFO + 8], eax
    ; boot_device: drive, partition, no sub-partitions.
    mov al, [v_drive]
    mov [INFO + 15], al
    mov al, [R_BOOT_PART]
    mov [INFO + 14], al
    mov word [INFO + 12], 0xffff
    ; command line and loader name live in the boot record.
    movzx eax, word [R_CMDLINE]
    add eax, RECORD
    mov [INFO + 16], eax
    movzx eax, word [R_LOADER_NAME]
    add eax, RECORD
    mov [INFO + 64], eax
    ; memory map
    movzx eax, word [v_mmap_count]
    imul eax, eax, MMAP_ENTRY
    mov [INFO + 44], eax
    mov dword [INFO + 48], MMAP
    ret

enter_kernel:
    cli
    lgdt [gdt_descriptor]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    jmp 0x08:.flat
bits 32
.flat:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov esp, STACK_TOP
    push dword 2                   ; EFLAGS: only the reserved bit; IF = DF = 0
    popfd
    mov ebx, INFO
    xor ecx, ecx
    xor edx, edx
    xor esi, esi
    xor edi, edi
    xor ebp, ebp
    mov eax, MULTIBOOT_MAGIC
    jmp [R_ENTRY]
bits 16

; ---------------------------------------------------------------------------------------------
; Serial console and messages.

serial_init:
    SERIAL_INIT
    ret

; Sends AL to COM1.
putc:
    PUTC_ROUTINE

; Prints the NUL-terminated string at SI.
print:
    push ax
.next:
    lodsb
    test al, al
    jz .done
    call putc
    jmp .next
.done:
    pop ax
    ret

; Prints AL as two hex digits.
print_hex8:
    push ax
    shr al, 4
    call hex_digit
    pop ax
    and al, 0x0f
hex_digit:
    add al, '0'
    cmp al, '9'
    jbe putc
    add al, 'a' - '0' - 10
    jmp putc

; Prints EAX as eight hex digits.
print_hex32:
    push cx
    mov cx, 4
.byte:
    rol eax, 8
    push eax
    call print_hex8
    pop eax
    loop .byte
    pop cx
    ret

; Prints EAX in decimal.
print_dec:
    push bx
    push cx
    push edx
    mov ebx, 10
    xor cx, cx
.divide:
    xor edx, edx
    div ebx
    push dx
    inc cx
    test eax, eax
    jnz .divide
.emit:
    pop ax
    add al, '0'
    call putc
    loop .emit
    pop edx
    pop cx
    pop bx
    ret

; Prints the error prefix, then the string at SI.
error_prefix:
    push si
    mov si, msg_error
    call print
    pop si
    jmp print

; Prints the error prefix and the message at SI, then halts.
fatal:
    call error_prefix
    jmp halt

; Prints the rest of an error line at SI, then halts.
fatal_tail:
    call print
halt:
    sti
    hlt
    jmp halt

; ---------------------------------------------------------------------------------------------
; Data. Descriptors are stored with their "accessed" bit set, so loading them never writes to
; this area (whose CRC-32 is checked at start).

align 8
gdt:
    dq 0
    dq 0x00cf9b000000ffff          ; 08h: 32-bit code, base 0, limit 4 GiB
    dq 0x00cf93000000ffff          ; 10h: 32-bit data, base 0, limit 4 GiB
    dq 0x00009b000000ffff          ; 18h: 16-bit code, base 0, limit 64 KiB
    dq 0x000093000000ffff          ; 20h: 16-bit data, base 0, limit 64 KiB
gdt_end:
gdt_descriptor:
    dw gdt_end - gdt - 1
    dd gdt

zero_dword: dd 0

msg_error:           db "unikernel-mkimage boot stage: error: ", 0
msg_no_record:       db "boot record missing (the boot area does not hold one)", 13, 10, 0
msg_record_version:  db "boot record format ", 0
msg_record_version2: db " is not supported by this boot stage (it reads format 2)", 13, 10, 0
msg_record_damaged:  db "boot record damaged (checksum or lengths wrong)", 13, 10, 0
msg_stage2_damaged:  db "boot stage damaged (its checksum does not match the boot record)", 13, 10, 0
msg_bad_flags:       db "boot record asks for features this boot stage lacks (a video mode?)", 13, 10, 0
msg_bad_run:         db "boot record invalid: a run does not read the kernel file's own sectors", 13, 10, 0
msg_bad_range:       db "boot record invalid: a load range lies below 1 MiB or beyond 4 GiB", 13, 10, 0
msg_overlap:         db "boot record invalid: two load ranges overlap", 13, 10, 0
msg_bad_entry:       db "boot record invalid: the entry point is not in the loaded bytes", 13, 10, 0
msg_start1:          db " (boot stage 2): loading ", 0
msg_start2:          db " (", 0
msg_start3:          db " bytes)", 13, 10, 0
msg_no_ext:          db "BIOS has no INT 13h extensions for drive 0x", 0
msg_a20:             db "cannot enable the A20 line", 13, 10, 0
msg_no_e820:         db "BIOS memory map (INT 15h, E820h) unavailable", 13, 10, 0
msg_low_memory:      db "memory map does not report 0x00000500-0x0001ffff usable, which the boot stage needs", 13, 10, 0
msg_not_covered:     db "memory map does not cover 0x", 0
msg_not_covered2:    db ", where the kernel must be loaded", 13, 10, 0
msg_read:            db "disk read failed at LBA 0x", 0
msg_read2:           db " (BIOS status 0x", 0
msg_read3:           db ")", 13, 10, 0
msg_checksum:        db "kernel on disk does not match the boot record (was the FAT partition changed after the image was built?)", 13, 10, 0
msg_crlf:            db 13, 10, 0

%if ($ - $$) > STAGE2_BYTES
%error "stage 2 is larger than its 16 sectors"
%endif
