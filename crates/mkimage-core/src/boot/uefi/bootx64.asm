; unikernel-mkimage UEFI loader: \EFI\BOOT\BOOTX64.EFI. Loads a Multiboot 1 kernel as the boot
; record describes and enters it, from x86-64 UEFI firmware.
;
; Contract
;   An x86-64 EFI application (PE32+, subsystem 10), position-independent (it runs wherever the
;   firmware loads it; the .reloc section is an empty block for firmware that insists on one).
;   Started by the firmware's boot manager from the FAT partition that also holds the kernel
;   file, with the image handle and the system table (Microsoft x64 calling convention). The
;   boot record, the same bytes the BIOS stage follows (format 2, see boot/bios/stage2.asm),
;   is the last RECORD_MAX bytes of this file: the image builder writes it there.
;
;   Before ExitBootServices, in order, stopping at the first failure with one line on the
;   firmware console (which the firmware mirrors on the serial port), freeing what it
;   allocated and returning EFI_LOAD_ERROR to the firmware:
;     1. the boot record: signature, format, lengths, CRC-32, tables and strings inside it;
;        then its plan, trusting nothing the CRC vouches for, with the same checks, order and
;        words as stage 2 (only the flags "quiet" and "video" are allowed here);
;     2. the start line (unless the record says quiet); the firmware watchdog is disabled;
;     3. the kernel file, \NAME on the partition this loader was loaded from (Loaded Image,
;        Simple File System): its size must be the record's;
;     4. memory: every page a run or zero range touches must be in the firmware's memory map as
;        free, loader or boot-services memory (boot-services memory is free after
;        ExitBootServices); the free parts are reserved at once with AllocatePages;
;        runtime-services, ACPI, MMIO, reserved or unmapped memory is refused;
;     5. the file is read whole into a staging buffer below 4 GiB; the checksum over the runs'
;        bytes (file offset = (LBA - kernel LBA) * 512 + skip) must match the record's;
;     6. the ACPI RSDP is taken from the configuration table (ACPI 2.0, else 1.0), checksums
;        verified;
;     7. with the video flag: the Graphics Output Protocol; the kernel's width x height if a
;        mode has it, else the current mode; it must have a linear framebuffer;
;     8. the low block (below 640 KiB if possible, else below 4 GiB, as loader code): the
;        Multiboot information, command line, loader name, a GDT, the trampoline, the copy list
;        and room for the memory map.
;   Then ExitBootServices, retried with a fresh memory map and key (at most EBS_TRIES times),
;   with nothing printed in between. After it, failures print one line on COM1 and halt:
;     9. the RSDP is copied to E0000h, where Multiboot 1 kernels (Solo5, Xen) scan for it, if
;        none is there already, the chipset is an i440FX or a Q35 (their PAM registers then
;        make E0000h-E3FFFh RAM, which is not in the firmware's map and so used by nobody),
;        and the copy reads back; the segment is left read-only and reported reserved;
;    10. the final map becomes the Multiboot map: free, loader and boot-services memory usable
;        (1), ACPI reclaimable 3, ACPI NVS 4, unusable 5, everything else (and specific-purpose
;        memory) reserved 2; sorted, adjacent entries of one type merged; every kernel page must
;        lie in one usable entry; mem_lower and mem_upper follow from it;
;    11. the trampoline (in the low block) leaves long mode: compatibility mode on its own GDT,
;        paging off, EFER.LME off, CR4 = 0; checks A20 (enabling it through port 92h if
;        needed); copies the runs from the staging buffer and zeroes the zero ranges; and
;        enters the kernel as Multiboot 1 specifies: EAX = 2BADB002h, EBX = the information
;        structure (flags 0, 1, 2, 6, 9, and 12 with a framebuffer), CS a flat 32-bit code
;        segment, DS/ES/FS/GS/SS flat 32-bit data segments, A20 on, CR0.PE = 1, CR0.PG = 0,
;        EFLAGS = 2.
;   No kernel range can overwrite the staging buffer or the low block: they are allocated after
;   the kernel's free pages are reserved, boot-services pages are in use until ExitBootServices,
;   and a memory map buffer the firmware outgrows is kept, not freed, so that no hole opens in
;   a kernel range for a later allocation (the map itself is read before anything is copied).
;   Every structure the kernel receives is in the low block, which the map reports usable.
;
; Loader header (start of .text, read by boot/uefi/mod.rs):
;   00h 8 signature "UKMKEFI1"   08h 2 loader version   0Ah 2 boot record format read (2)
;   0Ch 4 offset of the boot record in this file       10h 4 bytes reserved for it
;
; Low block (LB_* below): info 000h, GDT 080h, GDTR 098h, entry 0A8h, copy count 0ACh, A20
; probe 0B0h, A20 message 0C0h, trampoline 200h, stack to 1000h, strings 1000h, copy list
; 3000h (16 bytes an entry: source, destination, length, 0 copy / 1 zero), map 7000h.

bits 64
default rel
org 0

LOADER_VERSION      equ 1
RECORD_VERSION      equ 2
SECTION_ALIGN       equ 0x1000
IMAGE_BASE          equ 0x10000000

; boot record (offsets from its start; see boot/record.rs)
RECORD_MAX          equ 8192
RECORD_HEADER       equ 96
RUN_LEN             equ 24
ZERO_LEN            equ 8
R_VERSION           equ 0x08
R_HEADER_LEN        equ 0x0a
R_TOTAL_LEN         equ 0x0c
R_CRC               equ 0x10
R_FLAGS             equ 0x14
R_ENTRY             equ 0x18
R_RUN_COUNT         equ 0x1c
R_ZERO_COUNT        equ 0x1e
R_RUNS              equ 0x20
R_ZEROS             equ 0x22
R_CMDLINE           equ 0x24
R_KERNEL_NAME       equ 0x26
R_LOADER_NAME       equ 0x28
R_BOOT_PART         equ 0x2c
R_SUM_A             equ 0x30
R_SUM_B             equ 0x34
R_KERNEL_SIZE       equ 0x38
R_KERNEL_LBA        equ 0x40
R_VIDEO_TYPE        equ 0x48
R_VIDEO_WIDTH       equ 0x4c
R_VIDEO_HEIGHT      equ 0x50
RUN_LBA             equ 0
RUN_DEST            equ 8
RUN_SKIP            equ 12
RUN_LENGTH          equ 16
RUN_SECTORS         equ 20
FLAG_QUIET          equ 1
FLAG_VIDEO          equ 2
ALLOWED_FLAGS       equ FLAG_QUIET | FLAG_VIDEO
LOAD_MIN            equ 0x100000
SECTOR_SHIFT        equ 9
MAX_RANGES          equ (RECORD_MAX - RECORD_HEADER) / ZERO_LEN
CRC32_POLY          equ 0xedb88320

; UEFI
EFI_LOAD_ERROR      equ 1                  ; with the error bit (bit 63)
EFI_BUFFER_TOO_SMALL equ 5
EFI_NOT_FOUND       equ 14
ST_SIGNATURE        equ 0x5453595320494249 ; "IBI SYST"
ST_CONOUT           equ 64
ST_BOOT_SERVICES    equ 96
ST_TABLE_COUNT      equ 104
ST_TABLES           equ 112
CONFIG_ENTRY        equ 24                 ; GUID, pointer
CONOUT_OUTPUT_STRING equ 8
BS_ALLOCATE_PAGES   equ 0x28
BS_FREE_PAGES       equ 0x30
BS_GET_MEMORY_MAP   equ 0x38
BS_ALLOCATE_POOL    equ 0x40
BS_FREE_POOL        equ 0x48
BS_HANDLE_PROTOCOL  equ 0x98
BS_EXIT_BOOT_SERVICES equ 0xe8
BS_SET_WATCHDOG     equ 0x100
BS_LOCATE_PROTOCOL  equ 0x140
ALLOCATE_MAX_ADDRESS equ 1
ALLOCATE_ADDRESS    equ 2
EFI_LOADER_CODE     equ 1
EFI_LOADER_DATA     equ 2
LI_DEVICE_HANDLE    equ 24
SFS_OPEN_VOLUME     equ 8
FILE_OPEN           equ 8
FILE_CLOSE          equ 16
FILE_READ           equ 32
FILE_GET_INFO       equ 64
FILE_MODE_READ      equ 1
FILE_INFO_SIZE      equ 8                  ; EFI_FILE_INFO.FileSize
FILE_INFO_MAX       equ 1024
READ_CHUNK          equ 0x400000
GOP_QUERY_MODE      equ 0
GOP_SET_MODE        equ 8
GOP_MODE            equ 24
MODE_MAX_MODE       equ 0
MODE_MODE           equ 4
MODE_INFO           equ 8
MODE_FB_BASE        equ 24
GI_WIDTH            equ 4
GI_HEIGHT           equ 8
GI_FORMAT           equ 12
GI_MASKS            equ 16                 ; red, green, blue, reserved
GI_SCANLINE         equ 32
PIXEL_RGBX          equ 0
PIXEL_BGRX          equ 1
PIXEL_BITMASK       equ 2
MD_TYPE             equ 0
MD_START            equ 8
MD_PAGES            equ 24
MD_ATTRIBUTE        equ 32
MD_MIN_SIZE         equ 40
MEMORY_SP_BIT       equ 18                 ; EFI_MEMORY_SP: specific-purpose memory
EFI_CONVENTIONAL    equ 7
EFI_UNUSABLE        equ 8
EFI_ACPI_RECLAIM    equ 9
EFI_ACPI_NVS        equ 10
EFI_TYPE_NAMES      equ 16                 ; UEFI memory types with a name in type_names
TYPE_SPECIFIC_PURPOSE equ 0xffffffff        ; stands for memory with EFI_MEMORY_SP
PAGE_SHIFT          equ 12
PAGE_SIZE           equ 0x1000
MAP_SLACK           equ 64                 ; descriptors of room beyond what the map needs now
MAP_TRIES           equ 4
OLD_MAPS_MAX        equ 8                  ; smaller map buffers kept until the end
EBS_TRIES           equ 8
ALLOC_MAX           equ 128                ; page allocations tracked for clean-up
LOW_MAX             equ 0x9ffff            ; highest address of the preferred low block
BELOW_4G            equ 0xffffffff
LINE_MAX            equ 480

; Multiboot
MB_MAGIC            equ 0x2badb002
MB_INFO_FLAGS       equ 0x247              ; mem (0), boot_device (1), cmdline (2), mmap (6), loader name (9)
MB_INFO_FB          equ 1 << 12
MB_BOOT_DRIVE       equ 0x80
MB_MMAP_ENTRY       equ 24                 ; size field (4) + base (8) + length (8) + type (4)
MB_USABLE           equ 1
MB_RESERVED         equ 2
MB_ACPI             equ 3
MB_NVS              equ 4
MB_BAD              equ 5
MB_FB_TYPE_RGB      equ 1
I_MEM_LOWER         equ 4
I_MEM_UPPER         equ 8
I_BOOT_DEVICE       equ 12
I_CMDLINE           equ 16
I_MMAP_LENGTH       equ 44
I_MMAP_ADDR         equ 48
I_LOADER_NAME       equ 64
I_FB_ADDR           equ 88
I_FB_PITCH          equ 96
I_FB_WIDTH          equ 100
I_FB_HEIGHT         equ 104
I_FB_BPP            equ 108
I_FB_TYPE           equ 109
I_FB_COLORS         equ 110
LOW_MEMORY_END      equ 0xa0000
ONE_MIB             equ 0x100000

; ACPI and the chipset
RSDP_V1_LEN         equ 20
RSDP_V2_MIN         equ 36
RSDP_MAX            equ 64
RSDP_LENGTH         equ 20
RSDP_REVISION       equ 15
RSDP_AREA           equ 0xe0000
RSDP_AREA_END       equ 0x100000
RSDP_SEGMENT_LEN    equ 0x4000             ; E0000h-E3FFFh, one PAM segment
PCI_ADDRESS         equ 0xcf8
PCI_DATA            equ 0xcfc
PCI_ENABLE          equ 0x80000000         ; bus 0, device 0, function 0
I440FX_ID           equ 0x12378086
Q35_MCH_ID          equ 0x29c08086
I440FX_PAM_E0000    equ 0x5e               ; PAM5, low nibble: E0000h-E3FFFh
Q35_PAM_E0000       equ 0x95
PAM_RW_DRAM         equ 3
PAM_RO_DRAM         equ 1
RSDP_NONE           equ 0                  ; states of v_rsdp_state
RSDP_PRESENT        equ 1
RSDP_PLACED         equ 2
RSDP_UNKNOWN_CHIPSET equ 3
RSDP_AREA_IN_MAP    equ 4
RSDP_NO_READBACK    equ 5

; the machine
COM1                equ 0x3f8
UART_POLLS          equ 0x100000
UART_THR_EMPTY      equ 0x20                ; line status: transmitter holding register empty
SEL_CODE32          equ 0x08
SEL_DATA32          equ 0x10
GDT_CODE32          equ 0x00cf9b000000ffff ; flat 32-bit code, accessed
GDT_DATA32          equ 0x00cf93000000ffff ; flat 32-bit data, accessed
CR0_PG              equ 1 << 31
CR0_TS              equ 1 << 3
MSR_EFER            equ 0xc0000080
EFER_LME            equ 1 << 8
EFER_NXE            equ 1 << 11
A20_PORT            equ 0x92
A20_BIT             equ 2
A20_RESET_BIT       equ 1
EFLAGS_CLEAN        equ 2

; low block
LB_INFO             equ 0x0000
LB_GDT              equ 0x0080
LB_GDTR             equ 0x0098
LB_ENTRY            equ 0x00a8
LB_COPY_COUNT       equ 0x00ac
LB_A20_PROBE        equ 0x00b0
LB_MSG              equ 0x00c0
LB_MSG_MAX          equ 0x140
LB_TRAMP            equ 0x0200
LB_STACK_BOTTOM     equ 0x0800
LB_STACK_TOP        equ 0x1000
LB_STRINGS          equ 0x1000
LB_COPY             equ 0x3000
LB_COPY_ENTRY       equ 16
LB_MMAP             equ 0x7000
COPY_SRC            equ 0
COPY_DEST           equ 4
COPY_LEN            equ 8
COPY_KIND           equ 12
KIND_COPY           equ 0
KIND_ZERO           equ 1

%if LB_COPY + (MAX_RANGES + 1) * LB_COPY_ENTRY > LB_MMAP
%error "the copy list does not fit below the memory map"
%endif
%if LB_STRINGS + RECORD_MAX > LB_COPY
%error "the strings do not fit below the copy list"
%endif

; UART_SEND: sends AH on COM1, waiting at most UART_POLLS polls of the line status register for
; the transmitter, so a machine without a UART cannot hang the loader. The same bytes work in
; 64-bit code and in the 32-bit trampoline. Clobbers AL, ECX, DX.
%macro UART_SEND 0
    mov ecx, UART_POLLS
    mov dx, COM1 + 5
%%wait:
    in al, dx
    test al, UART_THR_EMPTY
    jnz %%send
    dec ecx
    jnz %%wait
%%send:
    mov al, ah
    mov dx, COM1
    out dx, al
%endmacro

; ---------------------------------------------------------------------------------------------
; PE32+ headers.

dos_header:
    db "MZ"
    times 0x3c - ($ - $$) db 0
    dd pe_header
pe_header:
    db "PE", 0, 0
    dw 0x8664                      ; machine: x86-64
    dw SECTION_COUNT
    dd 0                           ; time stamp: none, for reproducible bytes
    dd 0, 0                        ; no symbol table
    dw optional_end - optional
    dw 0x0022                      ; executable, large-address aware
optional:
    dw 0x020b                      ; PE32+
    db 0, 0                        ; linker version
    dd text_end - text_start       ; size of code
    dd data_end - reloc_start      ; size of initialized data
    dd bss_size                    ; size of uninitialized data
    dd entry                       ; entry point (RVA)
    dd text_start                  ; base of code
    dq IMAGE_BASE
    dd SECTION_ALIGN               ; section alignment
    dd SECTION_ALIGN               ; file alignment (equal: file offsets are RVAs)
    dw 0, 0, 0, 0, 0, 0            ; OS, image and subsystem versions
    dd 0                           ; Win32 version
    dd image_end                   ; size of image
    dd text_start                  ; size of headers
    dd 0                           ; checksum (not used by UEFI)
    dw 10                          ; subsystem: EFI application
    dw 0                           ; DLL characteristics
    dq 0x10000, 0x10000, 0x10000, 0x10000 ; stack and heap sizes (not used by UEFI)
    dd 0                           ; loader flags
    dd 16                          ; data directories
    dq 0, 0, 0, 0, 0               ; export, import, resource, exception, security
    dd reloc_start, reloc_block_end - reloc_start ; base relocations
    times 10 dq 0
optional_end:
section_table:
    db ".text", 0, 0, 0
    dd text_end - text_start, text_start, text_end - text_start, text_start
    dd 0, 0
    dw 0, 0
    dd 0x60000020                  ; code, execute, read
    db ".reloc", 0, 0
    dd reloc_block_end - reloc_start, reloc_start, reloc_end - reloc_start, reloc_start
    dd 0, 0
    dw 0, 0
    dd 0x42000040                  ; initialized data, discardable, read
    db ".data", 0, 0, 0
    dd data_end - data_start, data_start, data_end - data_start, data_start
    dd 0, 0
    dw 0, 0
    dd 0xc0000040                  ; initialized data, read, write
    db ".bss", 0, 0, 0, 0
    dd bss_size, data_end, 0, 0
    dd 0, 0
    dw 0, 0
    dd 0xc0000080                  ; uninitialized data, read, write
SECTION_COUNT equ ($ - section_table) / 40
    align SECTION_ALIGN, db 0

; ---------------------------------------------------------------------------------------------
; .text

text_start:
loader_header:
    db "UKMKEFI1"
    dw LOADER_VERSION
    dw RECORD_VERSION
    dd record
    dd RECORD_MAX

entry:
    push rbp
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8                     ; 16-byte aligned from here
    mov r12, rcx
    mov r13, rdx
    lea rdi, [bss_start]
    mov ecx, bss_size
    xor eax, eax
    cld
    rep stosb
    mov [v_saved_rsp], rsp
    mov [v_image], r12
    mov [v_systab], r13
    mov rax, ST_SIGNATURE
    cmp [r13], rax
    jne .bad_table
    mov rax, [r13 + ST_CONOUT]
    mov [v_conout], rax
    mov rax, [r13 + ST_BOOT_SERVICES]
    mov [v_bs], rax
    test rax, rax
    jnz .tables_ok
.bad_table:
    mov eax, EFI_LOAD_ERROR
    bts rax, 63
    jmp epilogue
.tables_ok:
    call check_record
    call check_plan
    test dword [record + R_FLAGS], FLAG_QUIET
    jnz .quiet
    call print_start_line
.quiet:
    call disable_watchdog
    call open_kernel
    call collect_pages
    call reserve_kernel_memory
    call read_kernel
    call verify_checksum
    call find_rsdp
    test dword [record + R_FLAGS], FLAG_VIDEO
    jz .no_video
    call setup_gop
.no_video:
    call alloc_low_block
    call fill_low_block
    call exit_boot_services
    ; From here on the firmware's services are gone: no calls, COM1 only.
    call place_rsdp
    call convert_map
    call check_final_pages
    call finish_info
    jmp enter_trampoline

epilogue:
    mov rsp, [v_saved_rsp]
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    pop rbp
    ret

; Calls the firmware function at RAX with arguments RCX, RDX, R8, R9 and (fifth, sixth) R10,
; R11, on a 16-byte aligned stack with shadow space. Returns its status in RAX; clobbers the
; volatile registers.
efi_call:
    push rbp
    mov rbp, rsp
    and rsp, -16
    sub rsp, 48
    mov [rsp + 32], r10
    mov [rsp + 40], r11
    call rax
    mov rsp, rbp
    pop rbp
    ret

; ---------------------------------------------------------------------------------------------
; 1. The boot record.

check_record:
    lea rbx, [record]
    lea rsi, [msg_no_record]
    cmp dword [rbx], "UKMK"
    jne fail
    cmp dword [rbx + 4], "BREC"
    jne fail
    movzx eax, word [rbx + R_VERSION]
    cmp eax, RECORD_VERSION
    je .version_ok
    call line_error
    lea rsi, [msg_record_version]
    call line_str
    call line_dec
    lea rsi, [msg_record_version2]
    call line_str
    jmp fail_line
.version_ok:
    cmp word [rbx + R_HEADER_LEN], RECORD_HEADER
    jne record_damaged
    mov ecx, [rbx + R_TOTAL_LEN]
    cmp ecx, RECORD_HEADER
    jb record_damaged
    cmp ecx, RECORD_MAX
    ja record_damaged
    mov eax, 0xffffffff
    mov rsi, rbx
    mov ecx, R_CRC
    call crc32_update
    lea rsi, [zero_dword]
    mov ecx, 4
    call crc32_update
    lea rsi, [rbx + R_CRC + 4]
    mov ecx, [rbx + R_TOTAL_LEN]
    sub ecx, R_CRC + 4
    call crc32_update
    not eax
    cmp eax, [rbx + R_CRC]
    jne record_damaged
    movzx eax, word [rbx + R_RUN_COUNT]
    imul eax, eax, RUN_LEN
    movzx edx, word [rbx + R_RUNS]
    call check_table
    movzx eax, word [rbx + R_ZERO_COUNT]
    imul eax, eax, ZERO_LEN
    movzx edx, word [rbx + R_ZEROS]
    call check_table
    movzx edx, word [rbx + R_CMDLINE]
    call check_string
    movzx edx, word [rbx + R_KERNEL_NAME]
    call check_string
    movzx edx, word [rbx + R_LOADER_NAME]
    jmp check_string

; A table of EAX bytes at record offset EDX must lie after the header and inside the record.
check_table:
    cmp edx, RECORD_HEADER
    jb record_damaged
    add eax, edx
    cmp eax, [rbx + R_TOTAL_LEN]
    ja record_damaged
    ret

; The string at record offset EDX must start after the header and end inside the record.
check_string:
    cmp edx, RECORD_HEADER
    jb record_damaged
    mov ecx, [rbx + R_TOTAL_LEN]
    sub ecx, edx
    jbe record_damaged
    lea rdi, [rbx + rdx]
    xor eax, eax
    repne scasb
    jne record_damaged
    ret

record_damaged:
    lea rsi, [msg_record_damaged]
    jmp fail

; EAX = CRC-32 state, RSI = data, ECX = length. Returns the state in EAX; clobbers DL.
crc32_update:
    test ecx, ecx
    jz .done
.byte:
    xor al, [rsi]
    inc rsi
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

; The record's plan, in stage 2's order and words. Fills v_ranges with every run and zero range
; (start, end), runs first.
check_plan:
    lea rbx, [record]
    lea rsi, [msg_bad_flags]
    test dword [rbx + R_FLAGS], ~ALLOWED_FLAGS
    jnz fail
    lea rsi, [msg_bad_run]
    mov eax, [rbx + R_KERNEL_SIZE]
    test eax, eax
    jz fail
    add rax, (1 << SECTOR_SHIFT) - 1
    shr rax, SECTOR_SHIFT
    add rax, [rbx + R_KERNEL_LBA]
    jc fail
    mov [v_kernel_end], rax
    movzx ecx, word [rbx + R_RUN_COUNT]
    test ecx, ecx
    jz fail
    movzx edi, word [rbx + R_RUNS]
    add rdi, rbx
.run:
    movzx eax, word [rdi + RUN_SKIP]
    cmp eax, 1 << SECTOR_SHIFT
    jae fail
    mov edx, [rdi + RUN_LENGTH]
    test edx, edx
    jz fail
    add rdx, rax
    add rdx, (1 << SECTOR_SHIFT) - 1
    shr rdx, SECTOR_SHIFT
    mov eax, [rdi + RUN_SECTORS]
    cmp rdx, rax
    jne fail
    mov rdx, [rdi + RUN_LBA]
    cmp rdx, [rbx + R_KERNEL_LBA]
    jb fail
    add rdx, rax
    jc fail
    cmp rdx, [v_kernel_end]
    ja fail
    add rdi, RUN_LEN
    dec ecx
    jnz .run
    ; The ranges, runs then zero ranges, as (start, end) in v_ranges.
    lea rdi, [v_ranges]
    movzx ecx, word [rbx + R_RUN_COUNT]
    movzx esi, word [rbx + R_RUNS]
    add rsi, rbx
.collect_run:
    mov eax, [rsi + RUN_DEST]
    mov edx, [rsi + RUN_LENGTH]
    add rdx, rax
    mov [rdi], rax
    mov [rdi + 8], rdx
    add rdi, 16
    add rsi, RUN_LEN
    dec ecx
    jnz .collect_run
    movzx ecx, word [rbx + R_ZERO_COUNT]
    movzx esi, word [rbx + R_ZEROS]
    add rsi, rbx
    test ecx, ecx
    jz .collected
.collect_zero:
    mov eax, [rsi]
    mov edx, [rsi + 4]
    add rdx, rax
    mov [rdi], rax
    mov [rdi + 8], rdx
    add rdi, 16
    add rsi, ZERO_LEN
    dec ecx
    jnz .collect_zero
.collected:
    lea rax, [v_ranges]
    sub rdi, rax
    shr rdi, 4
    mov [v_range_count], rdi
    ; Every non-empty range in [1 MiB, 4 GiB).
    lea rsi, [msg_bad_range]
    lea rdi, [v_ranges]
    mov rcx, [v_range_count]
    mov r8, 1 << 32
.bounds:
    mov rax, [rdi]
    cmp rax, [rdi + 8]
    je .bounds_next
    cmp rax, LOAD_MIN
    jb fail
    cmp [rdi + 8], r8
    ja fail
.bounds_next:
    add rdi, 16
    dec rcx
    jnz .bounds
    ; No two non-empty ranges overlap.
    lea rsi, [msg_overlap]
    lea rdi, [v_ranges]
    mov rcx, [v_range_count]
.outer:
    mov rax, [rdi]
    mov rdx, [rdi + 8]
    cmp rax, rdx
    je .outer_next
    lea r8, [rdi + 16]
    lea r9, [rcx - 1]
.inner:
    test r9, r9
    jz .outer_next
    mov r10, [r8]
    mov r11, [r8 + 8]
    cmp r10, r11
    je .inner_next
    cmp r10, rdx
    jae .inner_next
    cmp rax, r11
    jb fail
.inner_next:
    add r8, 16
    dec r9
    jmp .inner
.outer_next:
    add rdi, 16
    dec rcx
    jnz .outer
    ; The entry point lies in bytes a run loads.
    lea rsi, [msg_bad_entry]
    mov eax, [rbx + R_ENTRY]
    lea rdi, [v_ranges]
    movzx ecx, word [rbx + R_RUN_COUNT]
.entry:
    cmp rax, [rdi]
    jb .entry_next
    cmp rax, [rdi + 8]
    jb .entry_ok
.entry_next:
    add rdi, 16
    dec ecx
    jnz .entry
    jmp fail
.entry_ok:
    ret

; ---------------------------------------------------------------------------------------------
; 2. The start line, the watchdog.

print_start_line:
    call line_reset
    movzx esi, word [record + R_LOADER_NAME]
    lea rax, [record]
    add rsi, rax
    call line_str
    lea rsi, [msg_start1]
    call line_str
    call line_kernel_name
    lea rsi, [msg_start2]
    call line_str
    mov eax, [record + R_KERNEL_SIZE]
    call line_dec
    lea rsi, [msg_start3]
    call line_str
    jmp emit_line

line_kernel_name:
    movzx esi, word [record + R_KERNEL_NAME]
    lea rax, [record]
    add rsi, rax
    jmp line_str

; The boot manager arms a five-minute watchdog before starting a loader; reading a large kernel
; under emulation can take longer. Failure to disable it is not an error.
disable_watchdog:
    xor ecx, ecx
    xor edx, edx
    xor r8d, r8d
    xor r9d, r9d
    mov rax, [v_bs]
    mov rax, [rax + BS_SET_WATCHDOG]
    jmp efi_call

; ---------------------------------------------------------------------------------------------
; 3. The kernel file.

open_kernel:
    mov rcx, [v_image]
    lea rdx, [guid_loaded_image]
    lea r8, [v_loaded_image]
    mov rax, [v_bs]
    mov rax, [rax + BS_HANDLE_PROTOCOL]
    call efi_call
    lea rsi, [msg_no_device]
    test rax, rax
    jnz fail_status
    mov rax, [v_loaded_image]
    mov rcx, [rax + LI_DEVICE_HANDLE]
    test rcx, rcx
    jz fail
    lea rdx, [guid_file_system]
    lea r8, [v_file_system]
    mov rax, [v_bs]
    mov rax, [rax + BS_HANDLE_PROTOCOL]
    call efi_call
    lea rsi, [msg_no_file_system]
    test rax, rax
    jnz fail_status
    mov rcx, [v_file_system]
    lea rdx, [v_root]
    mov rax, [rcx + SFS_OPEN_VOLUME]
    call efi_call
    lea rsi, [msg_no_volume]
    test rax, rax
    jnz fail_status
    ; The path: a backslash and the kernel's name, UTF-8 to UCS-2.
    movzx esi, word [record + R_KERNEL_NAME]
    lea rax, [record]
    add rsi, rax
    lea rdi, [v_path]
    mov word [rdi], "\"
    add rdi, 2
    mov ecx, PATH_CHARS - 2        ; after the backslash, before the NUL
    call utf8_to_ucs2
    mov rcx, [v_root]
    lea rdx, [v_kernel_file]
    lea r8, [v_path]
    mov r9d, FILE_MODE_READ
    xor r10d, r10d
    mov rax, [rcx + FILE_OPEN]
    call efi_call
    test rax, rax
    jz .opened
    mov rdx, rax
    btr rdx, 63
    cmp rdx, EFI_NOT_FOUND
    jne .open_failed
    call line_error
    lea rsi, [msg_kernel_missing1]
    call line_str
    call line_kernel_name
    lea rsi, [msg_kernel_missing2]
    call line_str
    jmp fail_line
.open_failed:
    mov [v_status], rax
    call line_error
    lea rsi, [msg_kernel_open]
    call line_str
    call line_kernel_name
    jmp fail_with_status
.opened:
    mov qword [v_info_size], FILE_INFO_MAX
    mov rcx, [v_kernel_file]
    lea rdx, [guid_file_info]
    lea r8, [v_info_size]
    lea r9, [v_file_info]
    mov rax, [rcx + FILE_GET_INFO]
    call efi_call
    test rax, rax
    jz .sized
    mov [v_status], rax
    call line_error
    lea rsi, [msg_kernel_info]
    call line_str
    call line_kernel_name
    jmp fail_with_status
.sized:
    mov eax, [record + R_KERNEL_SIZE]
    cmp [v_file_info + FILE_INFO_SIZE], rax
    je .size_ok
    call line_error
    lea rsi, [msg_kernel_size1]
    call line_str
    call line_kernel_name
    lea rsi, [msg_kernel_size2]
    call line_str
    mov rax, [v_file_info + FILE_INFO_SIZE]
    call line_dec
    lea rsi, [msg_kernel_size3]
    call line_str
    mov eax, [record + R_KERNEL_SIZE]
    call line_dec
    lea rsi, [msg_kernel_size4]
    call line_str
    jmp fail_line
.size_ok:
    ret

; ---------------------------------------------------------------------------------------------
; 4. Memory for the kernel.

; The pages the kernel's ranges touch, as sorted, merged (start, end) pairs in v_pages.
collect_pages:
    lea rsi, [v_ranges]
    lea rdi, [v_pages]
    mov rcx, [v_range_count]
.copy:
    mov rax, [rsi]
    mov rdx, [rsi + 8]
    cmp rax, rdx
    je .skip
    and rax, -PAGE_SIZE
    add rdx, PAGE_SIZE - 1
    and rdx, -PAGE_SIZE
    mov [rdi], rax
    mov [rdi + 8], rdx
    add rdi, 16
.skip:
    add rsi, 16
    dec rcx
    jnz .copy
    lea rax, [v_pages]
    sub rdi, rax
    shr rdi, 4
    mov [v_page_count], rdi
    lea rsi, [v_pages]
    mov rcx, rdi
    call sort_pairs
    ; Merge overlapping and touching pairs.
    mov rcx, [v_page_count]
    lea rsi, [v_pages]
    mov rdi, rsi                   ; last kept pair
    mov r8d, 1                     ; pairs kept
    cmp rcx, 1
    jbe .merged
    add rsi, 16
    dec rcx
.merge:
    mov rax, [rsi]
    cmp rax, [rdi + 8]
    ja .keep
    mov rax, [rsi + 8]
    cmp rax, [rdi + 8]
    jbe .next
    mov [rdi + 8], rax
    jmp .next
.keep:
    add rdi, 16
    mov rax, [rsi]
    mov [rdi], rax
    mov rax, [rsi + 8]
    mov [rdi + 8], rax
    inc r8
.next:
    add rsi, 16
    dec rcx
    jnz .merge
    mov [v_page_count], r8
.merged:
    ret

; Sorts RCX pairs of u64 at RSI by their first element (insertion sort; a few hundred at most).
sort_pairs:
    cmp rcx, 1
    jbe .done
    mov r8d, 1
.outer:
    mov rax, r8
    shl rax, 4
    mov r10, [rsi + rax]
    mov r11, [rsi + rax + 8]
    mov r9, r8
.inner:
    test r9, r9
    jz .place
    lea rdx, [r9 - 1]
    shl rdx, 4
    cmp [rsi + rdx], r10
    jbe .place
    mov rax, [rsi + rdx]
    mov [rsi + rdx + 16], rax
    mov rax, [rsi + rdx + 8]
    mov [rsi + rdx + 24], rax
    dec r9
    jmp .inner
.place:
    mov rax, r9
    shl rax, 4
    mov [rsi + rax], r10
    mov [rsi + rax + 8], r11
    inc r8
    cmp r8, rcx
    jb .outer
.done:
    ret

; Reads the firmware's memory map into v_map (growing the buffer as the firmware asks).
; Allowed before and between ExitBootServices attempts (memory allocation services only).
get_memory_map:
    mov qword [v_map_tries], 0
.try:
    mov rax, [v_map_cap]
    mov [v_map_size], rax
    lea rcx, [v_map_size]
    mov rdx, [v_map]
    lea r8, [v_map_key]
    lea r9, [v_desc_size]
    lea r10, [v_desc_version]
    mov rax, [v_bs]
    mov rax, [rax + BS_GET_MEMORY_MAP]
    call efi_call
    test rax, rax
    jz .done
    mov [v_status], rax
    btr rax, 63
    cmp rax, EFI_BUFFER_TOO_SMALL
    jne .failed
    inc qword [v_map_tries]
    cmp qword [v_map_tries], MAP_TRIES
    ja .failed
    ; A smaller buffer stays allocated (freed only if the loader fails): freed, it could leave
    ; a hole inside a kernel range that a later allocation would take.
    mov rax, [v_map]
    test rax, rax
    jz .allocate
    mov rcx, [v_old_map_count]
    cmp rcx, OLD_MAPS_MAX
    jae .failed
    lea rdx, [v_old_maps]
    mov [rdx + rcx * 8], rax
    inc qword [v_old_map_count]
    mov qword [v_map], 0
    mov qword [v_map_cap], 0
.allocate:
    mov rax, [v_desc_size]
    cmp rax, MD_MIN_SIZE * 2
    jae .slack
    mov eax, MD_MIN_SIZE * 2
.slack:
    imul rax, rax, MAP_SLACK
    add rax, [v_map_size]
    mov [v_map_cap], rax
    mov ecx, EFI_LOADER_DATA
    mov rdx, rax
    lea r8, [v_map]
    mov rax, [v_bs]
    mov rax, [rax + BS_ALLOCATE_POOL]
    call efi_call
    test rax, rax
    jz .try
    mov [v_status], rax
    mov qword [v_map], 0
    mov qword [v_map_cap], 0
.failed:
    call line_error
    lea rsi, [msg_no_map]
    call line_str
    jmp fail_with_status
.done:
    cmp qword [v_desc_size], MD_MIN_SIZE
    jb .bad_size
    ret
.bad_size:
    lea rsi, [msg_bad_map]
    jmp fail

; Checks every kernel page against the map and reserves the free ones.
reserve_kernel_memory:
    call get_memory_map
    lea r12, [v_pages]
    mov r13, [v_page_count]
.range:
    mov r14, [r12]                 ; cursor
.walk:
    cmp r14, [r12 + 8]
    jae .range_done
    mov rax, r14
    call find_descriptor
    test rdi, rdi
    jz .unmapped
    mov r15, [rdi + MD_PAGES]
    shl r15, PAGE_SHIFT
    add r15, [rdi + MD_START]      ; end of the descriptor
    cmp r15, [r12 + 8]
    jbe .part
    mov r15, [r12 + 8]
.part:
    mov eax, [rdi + MD_TYPE]
    bt qword [rdi + MD_ATTRIBUTE], MEMORY_SP_BIT
    jnc .typed
    mov eax, TYPE_SPECIFIC_PURPOSE
    jmp .refused
.typed:
    cmp eax, EFI_CONVENTIONAL
    je .free
    cmp eax, EFI_LOADER_CODE
    jb .refused
    cmp eax, 4                     ; boot-services data
    jbe .advance
.refused:
    mov rbx, rax
    call line_error
    lea rsi, [msg_memory1]
    call line_str
    call line_range
    lea rsi, [msg_memory_used]
    call line_str
    mov rax, rbx
    call line_type
    lea rsi, [msg_memory_used2]
    call line_str
    jmp fail_line
.free:
    mov rdx, r15
    sub rdx, r14
    shr rdx, PAGE_SHIFT
    mov [v_address], r14
    mov ecx, ALLOCATE_ADDRESS
    mov r8, rdx
    mov edx, EFI_LOADER_DATA
    lea r9, [v_address]
    mov rax, [v_bs]
    mov rax, [rax + BS_ALLOCATE_PAGES]
    call efi_call
    test rax, rax
    jnz .reserve_failed
    mov rax, [v_address]
    mov rdx, r15
    sub rdx, r14
    shr rdx, PAGE_SHIFT
    call track_pages
.advance:
    mov r14, r15
    jmp .walk
.range_done:
    add r12, 16
    dec r13
    jnz .range
    ret
.unmapped:
    ; Up to the next descriptor (or the end of the range).
    mov r15, [r12 + 8]
    call next_descriptor_start
    call line_error
    lea rsi, [msg_memory1]
    call line_str
    call line_range
    lea rsi, [msg_memory_unmapped]
    call line_str
    jmp fail_line
.reserve_failed:
    mov [v_status], rax
    call line_error
    lea rsi, [msg_reserve]
    call line_str
    call line_range
    jmp fail_with_status

; Appends "0xR14-0x(R15-1)" to the line.
line_range:
    lea rsi, [msg_hex_prefix]
    call line_str
    mov rax, r14
    call line_hex32
    mov al, "-"
    call line_char
    lea rsi, [msg_hex_prefix]
    call line_str
    lea rax, [r15 - 1]
    jmp line_hex32

; RDI = the descriptor of v_map containing address RAX, or 0.
find_descriptor:
    mov rdi, [v_map]
    mov rcx, [v_map_size]
    add rcx, rdi
.next:
    cmp rdi, rcx
    jae .none
    mov rdx, [rdi + MD_START]
    cmp rax, rdx
    jb .skip
    mov r8, [rdi + MD_PAGES]
    shl r8, PAGE_SHIFT
    add r8, rdx
    cmp rax, r8
    jb .found
.skip:
    add rdi, [v_desc_size]
    jmp .next
.none:
    xor edi, edi
.found:
    ret

; R15 = min(R15, the lowest descriptor start above R14).
next_descriptor_start:
    mov rdi, [v_map]
    mov rcx, [v_map_size]
    add rcx, rdi
.next:
    cmp rdi, rcx
    jae .done
    mov rdx, [rdi + MD_START]
    cmp rdx, r14
    jbe .skip
    cmp rdx, r15
    jae .skip
    mov r15, rdx
.skip:
    add rdi, [v_desc_size]
    jmp .next
.done:
    ret

; Records RDX pages at RAX for release if the loader fails.
track_pages:
    mov rcx, [v_alloc_count]
    cmp rcx, ALLOC_MAX
    jae .full
    shl rcx, 4
    lea r8, [v_allocs]
    mov [r8 + rcx], rax
    mov [r8 + rcx + 8], rdx
    inc qword [v_alloc_count]
    ret
.full:
    lea rsi, [msg_too_fragmented]
    jmp fail

; Appends the name of UEFI memory type EAX.
line_type:
    cmp eax, TYPE_SPECIFIC_PURPOSE
    jne .efi_type
    mov eax, EFI_TYPE_NAMES        ; the name after the UEFI types'
    jmp .named
.efi_type:
    cmp eax, EFI_TYPE_NAMES
    jae .number
.named:
    lea rsi, [type_names]
    mov ecx, eax
.skip:
    test ecx, ecx
    jz .found
.scan:
    lodsb
    test al, al
    jnz .scan
    dec ecx
    jmp .skip
.found:
    jmp line_str
.number:
    push rax
    lea rsi, [msg_type_number]
    call line_str
    pop rax
    jmp line_dec

; ---------------------------------------------------------------------------------------------
; 5. Reading and checking the kernel.

read_kernel:
    ; Staging: the file's sectors, rounded up to pages, below 4 GiB.
    mov eax, [record + R_KERNEL_SIZE]
    add rax, PAGE_SIZE - 1
    shr rax, PAGE_SHIFT
    mov [v_staging_pages], rax
    mov eax, BELOW_4G
    mov [v_staging], rax
    mov ecx, ALLOCATE_MAX_ADDRESS
    mov edx, EFI_LOADER_DATA
    mov r8, [v_staging_pages]
    lea r9, [v_staging]
    mov rax, [v_bs]
    mov rax, [rax + BS_ALLOCATE_PAGES]
    call efi_call
    test rax, rax
    jz .allocated
    mov [v_status], rax
    mov qword [v_staging], 0
    call line_error
    lea rsi, [msg_no_staging1]
    call line_str
    mov eax, [record + R_KERNEL_SIZE]
    call line_dec
    lea rsi, [msg_no_staging2]
    call line_str
    jmp fail_with_status
.allocated:
    mov rax, [v_staging]
    mov rdx, [v_staging_pages]
    call track_pages
    ; Zero the tail after the file: runs may read the last sector's padding, which is zero on
    ; the disk too.
    mov rdi, [v_staging]
    mov eax, [record + R_KERNEL_SIZE]
    add rdi, rax
    mov rcx, [v_staging_pages]
    shl rcx, PAGE_SHIFT
    sub rcx, rax
    xor eax, eax
    rep stosb
    xor r12d, r12d                 ; bytes read
.chunk:
    mov eax, [record + R_KERNEL_SIZE]
    sub rax, r12
    jz .read
    cmp rax, READ_CHUNK
    jbe .size
    mov eax, READ_CHUNK
.size:
    mov [v_read_len], rax
    mov rcx, [v_kernel_file]
    lea rdx, [v_read_len]
    mov r8, [v_staging]
    add r8, r12
    mov rax, [rcx + FILE_READ]
    call efi_call
    test rax, rax
    jnz .read_failed
    mov rax, [v_read_len]
    test rax, rax
    jz .short
    add r12, rax
    jmp .chunk
.read:
    jmp close_files
.read_failed:
    mov [v_status], rax
    call line_error
    lea rsi, [msg_read1]
    call line_str
    call line_kernel_name
    lea rsi, [msg_read2]
    call line_str
    mov rax, r12
    call line_dec
    jmp fail_with_status
.short:
    call line_error
    lea rsi, [msg_short1]
    call line_str
    call line_kernel_name
    lea rsi, [msg_short2]
    call line_str
    mov rax, r12
    call line_dec
    lea rsi, [msg_short3]
    call line_str
    jmp fail_line

; Closes the kernel file and the volume (if open).
close_files:
    mov rcx, [v_kernel_file]
    test rcx, rcx
    jz .root
    mov qword [v_kernel_file], 0
    mov rax, [rcx + FILE_CLOSE]
    call efi_call
.root:
    mov rcx, [v_root]
    test rcx, rcx
    jz .done
    mov qword [v_root], 0
    mov rax, [rcx + FILE_CLOSE]
    call efi_call
.done:
    ret

; RSI = where run RDI's bytes lie in the staging buffer.
run_source:
    mov rsi, [rdi + RUN_LBA]
    sub rsi, [record + R_KERNEL_LBA]
    shl rsi, SECTOR_SHIFT
    movzx eax, word [rdi + RUN_SKIP]
    add rsi, rax
    add rsi, [v_staging]
    ret

verify_checksum:
    xor r8d, r8d                   ; A
    xor r9d, r9d                   ; B
    movzx edi, word [record + R_RUNS]
    lea rax, [record]
    add rdi, rax
    movzx r10d, word [record + R_RUN_COUNT]
.run:
    call run_source
    mov ecx, [rdi + RUN_LENGTH]
.dword:
    cmp ecx, 4
    jb .tail
    add r8d, [rsi]
    add r9d, r8d
    add rsi, 4
    sub ecx, 4
    jmp .dword
.tail:
    test ecx, ecx
    jz .run_done
    mov qword [v_tail], 0          ; the last dword, zero-padded
    push rdi
    lea rdi, [v_tail]
    rep movsb
    pop rdi
    add r8d, [v_tail]
    add r9d, r8d
.run_done:
    add rdi, RUN_LEN
    dec r10d
    jnz .run
    cmp r8d, [record + R_SUM_A]
    jne .mismatch
    cmp r9d, [record + R_SUM_B]
    jne .mismatch
    ret
.mismatch:
    lea rsi, [msg_checksum]
    jmp fail

; ---------------------------------------------------------------------------------------------
; 6. ACPI.

; Copies the RSDP from the configuration table (ACPI 2.0 first) into v_rsdp, if it is valid.
find_rsdp:
    lea r12, [guid_acpi20]
    call find_rsdp_with
    cmp byte [v_rsdp_len], 0
    jne .done
    lea r12, [guid_acpi10]
    call find_rsdp_with
.done:
    ret

; R12 = GUID.
find_rsdp_with:
    mov rbx, [v_systab]
    mov rcx, [rbx + ST_TABLE_COUNT]
    mov rsi, [rbx + ST_TABLES]
    test rsi, rsi
    jz .none
.entry:
    test rcx, rcx
    jz .none
    mov rax, [rsi]
    cmp rax, [r12]
    jne .next
    mov rax, [rsi + 8]
    cmp rax, [r12 + 8]
    je .found
.next:
    add rsi, CONFIG_ENTRY
    dec rcx
    jmp .entry
.found:
    mov rsi, [rsi + 16]
    test rsi, rsi
    jz .none
    mov rax, "RSD PTR "
    cmp [rsi], rax
    jne .none
    mov ecx, RSDP_V1_LEN
    call byte_sum
    jnz .none
    mov ecx, RSDP_V1_LEN
    cmp byte [rsi + RSDP_REVISION], 2
    jb .copy
    mov ecx, [rsi + RSDP_LENGTH]
    cmp ecx, RSDP_V2_MIN
    jb .none
    cmp ecx, RSDP_MAX
    ja .none
    call byte_sum
    jnz .none
.copy:
    mov [v_rsdp_len], cl
    lea rdi, [v_rsdp]
    rep movsb
.none:
    ret

; ZF = 1 if the ECX bytes at RSI sum to zero (mod 256). Preserves RCX, RSI.
byte_sum:
    push rcx
    push rsi
    xor eax, eax
.byte:
    add al, [rsi]
    inc rsi
    dec ecx
    jnz .byte
    pop rsi
    pop rcx
    test al, al
    ret

; ---------------------------------------------------------------------------------------------
; 7. Graphics.

setup_gop:
    lea rcx, [guid_gop]
    xor edx, edx
    lea r8, [v_gop]
    mov rax, [v_bs]
    mov rax, [rax + BS_LOCATE_PROTOCOL]
    call efi_call
    test rax, rax
    jz .found
    lea rsi, [msg_no_gop]
    jmp fail
.found:
    ; A mode with the kernel's width and height, if it asks for both and one exists.
    mov eax, [record + R_VIDEO_WIDTH]
    test eax, eax
    jz .current
    mov eax, [record + R_VIDEO_HEIGHT]
    test eax, eax
    jz .current
    mov rax, [v_gop]
    mov rax, [rax + GOP_MODE]
    mov r12d, [rax + MODE_MAX_MODE]
    xor r13d, r13d
.mode:
    cmp r13d, r12d
    jae .current
    mov rcx, [v_gop]
    mov edx, r13d
    lea r8, [v_gop_info_size]
    lea r9, [v_gop_info]
    mov rax, [rcx + GOP_QUERY_MODE]
    call efi_call
    test rax, rax
    jnz .next_mode
    mov rsi, [v_gop_info]
    mov eax, [rsi + GI_WIDTH]
    cmp eax, [record + R_VIDEO_WIDTH]
    jne .next_mode
    mov eax, [rsi + GI_HEIGHT]
    cmp eax, [record + R_VIDEO_HEIGHT]
    jne .next_mode
    cmp dword [rsi + GI_FORMAT], PIXEL_BITMASK
    ja .next_mode
    mov rax, [v_gop]
    mov rax, [rax + GOP_MODE]
    cmp [rax + MODE_MODE], r13d
    je .current
    mov rcx, [v_gop]
    mov edx, r13d
    mov rax, [rcx + GOP_SET_MODE]
    call efi_call
    test rax, rax
    jz .current
.next_mode:
    inc r13d
    jmp .mode
.current:
    mov rax, [v_gop]
    mov rbx, [rax + GOP_MODE]
    mov rsi, [rbx + MODE_INFO]
    mov eax, [rsi + GI_FORMAT]
    cmp eax, PIXEL_RGBX
    je .rgbx
    cmp eax, PIXEL_BGRX
    je .bgrx
    cmp eax, PIXEL_BITMASK
    je .bitmask
    lea rsi, [msg_no_framebuffer]
    jmp fail
.rgbx:
    mov dword [v_fb_colors], 0x08080800     ; red 0/8, green 8/8
    mov word [v_fb_colors + 4], 0x0810      ; blue 16/8
    mov byte [v_fb_bpp], 32
    jmp .fill
.bgrx:
    mov dword [v_fb_colors], 0x08080810     ; red 16/8, green 8/8
    mov word [v_fb_colors + 4], 0x0800      ; blue 0/8
    mov byte [v_fb_bpp], 32
    jmp .fill
.bitmask:
    xor r8d, r8d                   ; bits of all masks
    lea rdi, [v_fb_colors]
    xor ecx, ecx
.mask:
    mov eax, [rsi + GI_MASKS + rcx * 4]
    or r8d, eax
    xor edx, edx                   ; position
    test eax, eax
    jz .mask_store
    bsf edx, eax
    bsr r9d, eax
    sub r9d, edx
    inc r9d                        ; size
    mov [rdi + rcx * 2], dl
    mov [rdi + rcx * 2 + 1], r9b
    jmp .mask_next
.mask_store:
    mov word [rdi + rcx * 2], 0
.mask_next:
    inc ecx
    cmp ecx, 3
    jb .mask
    or r8d, [rsi + GI_MASKS + 12]
    lea rsi, [msg_no_framebuffer]
    test r8d, r8d
    jz fail
    bsr eax, r8d
    add eax, 8                     ; highest bit + 1, rounded up to bytes
    and eax, ~7
    mov [v_fb_bpp], al
    mov rsi, [rbx + MODE_INFO]
.fill:
    mov rax, [rbx + MODE_FB_BASE]
    mov [v_fb_addr], rax
    mov eax, [rsi + GI_WIDTH]
    mov [v_fb_width], eax
    mov eax, [rsi + GI_HEIGHT]
    mov [v_fb_height], eax
    movzx eax, byte [v_fb_bpp]
    shr eax, 3
    imul eax, [rsi + GI_SCANLINE]
    mov [v_fb_pitch], eax
    mov byte [v_fb_valid], 1
    ret

; ---------------------------------------------------------------------------------------------
; 8. The low block.

alloc_low_block:
    call get_memory_map
    mov rax, [v_map_size]
    xor edx, edx
    div qword [v_desc_size]
    add rax, MAP_SLACK + 1
    mov [v_mmap_cap], rax
    imul rax, rax, MB_MMAP_ENTRY
    add rax, LB_MMAP + PAGE_SIZE - 1
    shr rax, PAGE_SHIFT
    mov [v_low_pages], rax
    mov qword [v_low], LOW_MAX
    mov edx, EFI_LOADER_CODE
    call allocate_low
    jnz .high
    cmp qword [v_low], 0
    jne .done
    ; Page 0 would make the information's address 0: free it and look higher.
    mov rcx, [v_low]
    mov rdx, [v_low_pages]
    mov rax, [v_bs]
    mov rax, [rax + BS_FREE_PAGES]
    call efi_call
.high:
    mov eax, BELOW_4G
    mov [v_low], rax
    mov edx, EFI_LOADER_CODE
    call allocate_low
    jz .done
    call line_error
    lea rsi, [msg_no_low]
    call line_str
    jmp fail_with_status
.done:
    mov rax, [v_low]
    mov rdx, [v_low_pages]
    call track_pages
    mov rdi, [v_low]
    mov rcx, [v_low_pages]
    shl rcx, PAGE_SHIFT
    xor eax, eax
    rep stosb
    ret

; AllocatePages(max address, EDX type, v_low_pages, &v_low). ZF = 1 on success.
allocate_low:
    mov ecx, ALLOCATE_MAX_ADDRESS
    mov r8, [v_low_pages]
    lea r9, [v_low]
    mov rax, [v_bs]
    mov rax, [rax + BS_ALLOCATE_PAGES]
    call efi_call
    mov [v_status], rax
    test rax, rax
    ret

fill_low_block:
    mov rbx, [v_low]
    ; Strings: the command line, then the loader name.
    lea rdi, [rbx + LB_STRINGS]
    mov [rbx + LB_INFO + I_CMDLINE], edi
    movzx esi, word [record + R_CMDLINE]
    lea rax, [record]
    add rsi, rax
    call copy_string
    mov [rbx + LB_INFO + I_LOADER_NAME], edi
    movzx esi, word [record + R_LOADER_NAME]
    lea rax, [record]
    add rsi, rax
    call copy_string
    ; Information: flags, boot device (first hard disk, the record's partition, no
    ; sub-partitions), framebuffer.
    mov dword [rbx + LB_INFO], MB_INFO_FLAGS
    movzx eax, byte [record + R_BOOT_PART]
    shl eax, 16
    or eax, (MB_BOOT_DRIVE << 24) | 0xffff
    mov [rbx + LB_INFO + I_BOOT_DEVICE], eax
    cmp byte [v_fb_valid], 0
    je .no_fb
    or dword [rbx + LB_INFO], MB_INFO_FB
    mov rax, [v_fb_addr]
    mov [rbx + LB_INFO + I_FB_ADDR], rax
    mov eax, [v_fb_pitch]
    mov [rbx + LB_INFO + I_FB_PITCH], eax
    mov eax, [v_fb_width]
    mov [rbx + LB_INFO + I_FB_WIDTH], eax
    mov eax, [v_fb_height]
    mov [rbx + LB_INFO + I_FB_HEIGHT], eax
    mov al, [v_fb_bpp]
    mov [rbx + LB_INFO + I_FB_BPP], al
    mov byte [rbx + LB_INFO + I_FB_TYPE], MB_FB_TYPE_RGB
    mov eax, [v_fb_colors]
    mov [rbx + LB_INFO + I_FB_COLORS], eax
    mov ax, [v_fb_colors + 4]
    mov [rbx + LB_INFO + I_FB_COLORS + 4], ax
.no_fb:
    ; GDT and its descriptor.
    mov rax, GDT_CODE32
    mov [rbx + LB_GDT + SEL_CODE32], rax
    mov rax, GDT_DATA32
    mov [rbx + LB_GDT + SEL_DATA32], rax
    mov word [rbx + LB_GDTR], SEL_DATA32 + 7
    lea rax, [rbx + LB_GDT]
    mov [rbx + LB_GDTR + 2], rax
    ; The trampoline and its failure line.
    lea rsi, [tramp_start]
    lea rdi, [rbx + LB_TRAMP]
    mov ecx, tramp_end - tramp_start
    rep movsb
    lea rsi, [msg_a20_line]
    lea rdi, [rbx + LB_MSG]
    mov ecx, msg_a20_line_end - msg_a20_line
    rep movsb
    mov eax, [record + R_ENTRY]
    mov [rbx + LB_ENTRY], eax
    ; The copy list: runs from the staging buffer, then the zero ranges.
    lea r12, [rbx + LB_COPY]
    xor r13d, r13d
    movzx edi, word [record + R_RUNS]
    lea rax, [record]
    add rdi, rax
    movzx r14d, word [record + R_RUN_COUNT]
.run:
    call run_source
    mov [r12 + COPY_SRC], esi
    mov eax, [rdi + RUN_DEST]
    mov [r12 + COPY_DEST], eax
    mov eax, [rdi + RUN_LENGTH]
    mov [r12 + COPY_LEN], eax
    mov dword [r12 + COPY_KIND], KIND_COPY
    add r12, LB_COPY_ENTRY
    inc r13d
    add rdi, RUN_LEN
    dec r14d
    jnz .run
    movzx esi, word [record + R_ZEROS]
    lea rax, [record]
    add rsi, rax
    movzx r14d, word [record + R_ZERO_COUNT]
.zero:
    test r14d, r14d
    jz .listed
    mov eax, [rsi + 4]
    test eax, eax
    jz .zero_next
    mov [r12 + COPY_LEN], eax
    mov eax, [rsi]
    mov [r12 + COPY_DEST], eax
    mov dword [r12 + COPY_SRC], 0
    mov dword [r12 + COPY_KIND], KIND_ZERO
    add r12, LB_COPY_ENTRY
    inc r13d
.zero_next:
    add rsi, ZERO_LEN
    dec r14d
    jmp .zero
.listed:
    mov [rbx + LB_COPY_COUNT], r13d
    ret

; Copies the NUL-terminated string at RSI to RDI; RDI ends after its NUL.
copy_string:
    lodsb
    stosb
    test al, al
    jnz copy_string
    ret

; ---------------------------------------------------------------------------------------------
; ExitBootServices.

exit_boot_services:
    mov qword [v_ebs_tries], 0
.try:
    call get_memory_map
    mov rcx, [v_image]
    mov rdx, [v_map_key]
    mov rax, [v_bs]
    mov rax, [rax + BS_EXIT_BOOT_SERVICES]
    call efi_call
    mov byte [v_boot_services_gone], 1
    test rax, rax
    jz .done
    mov [v_status], rax
    inc qword [v_ebs_tries]
    cmp qword [v_ebs_tries], EBS_TRIES
    jb .try
    call line_error
    lea rsi, [msg_ebs]
    call line_str
    jmp fail_with_status
.done:
    cli
    ret

; ---------------------------------------------------------------------------------------------
; 9. The RSDP where Multiboot 1 kernels look for it.

place_rsdp:
    cmp byte [v_rsdp_len], 0
    je .done
    ; Already there (a compatibility module or the firmware put one)?
    mov esi, RSDP_AREA
.scan:
    mov rax, "RSD PTR "
    cmp [rsi], rax
    jne .scan_next
    mov ecx, RSDP_V1_LEN
    call byte_sum
    jz .present
.scan_next:
    add esi, 16
    cmp esi, RSDP_AREA_END
    jb .scan
    ; E0000h-E3FFFh must not be in the firmware's map: then nobody uses it.
    mov rdi, [v_map]
    mov rcx, [v_map_size]
    add rcx, rdi
.in_map:
    cmp rdi, rcx
    jae .chipset
    mov rax, [rdi + MD_START]
    cmp rax, RSDP_AREA + RSDP_SEGMENT_LEN
    jae .in_map_next
    mov rdx, [rdi + MD_PAGES]
    shl rdx, PAGE_SHIFT
    add rax, rdx
    cmp rax, RSDP_AREA
    ja .area_in_map
.in_map_next:
    add rdi, [v_desc_size]
    jmp .in_map
.area_in_map:
    mov byte [v_rsdp_state], RSDP_AREA_IN_MAP
    ret
.chipset:
    xor eax, eax
    call pci_read32
    mov [v_chipset], eax
    mov r12d, I440FX_PAM_E0000
    cmp eax, I440FX_ID
    je .pam
    mov r12d, Q35_PAM_E0000
    cmp eax, Q35_MCH_ID
    je .pam
    mov byte [v_rsdp_state], RSDP_UNKNOWN_CHIPSET
    ret
.pam:
    mov eax, r12d
    call pci_read8
    mov r13d, eax                  ; the original setting
    and eax, 0xf0
    or eax, PAM_RW_DRAM
    mov edx, eax
    mov eax, r12d
    call pci_write8
    mov edi, RSDP_AREA
    mov ecx, RSDP_SEGMENT_LEN
    xor eax, eax
    rep stosb
    lea rsi, [v_rsdp]
    mov edi, RSDP_AREA
    movzx ecx, byte [v_rsdp_len]
    rep movsb
    mov edx, r13d
    and edx, 0xf0
    or edx, PAM_RO_DRAM
    mov eax, r12d
    call pci_write8
    lea rsi, [v_rsdp]
    mov edi, RSDP_AREA
    movzx ecx, byte [v_rsdp_len]
    repe cmpsb
    jne .no_readback
    mov byte [v_rsdp_state], RSDP_PLACED
    ret
.no_readback:
    mov edx, r13d
    mov eax, r12d
    call pci_write8
    mov byte [v_rsdp_state], RSDP_NO_READBACK
    ret
.present:
    mov byte [v_rsdp_state], RSDP_PRESENT
.done:
    ret

; PCI configuration space of 0:0.0 through ports CF8h/CFCh. EAX = register.
pci_read32:
    or eax, PCI_ENABLE
    and eax, ~3
    mov dx, PCI_ADDRESS
    out dx, eax
    mov dx, PCI_DATA
    in eax, dx
    ret

pci_read8:
    mov ecx, eax
    or eax, PCI_ENABLE
    and eax, ~3
    mov dx, PCI_ADDRESS
    out dx, eax
    mov dx, PCI_DATA
    and ecx, 3
    add dx, cx
    in al, dx
    movzx eax, al
    ret

; EAX = register, DL = value.
pci_write8:
    mov ecx, eax
    mov r8d, edx
    or eax, PCI_ENABLE
    and eax, ~3
    mov dx, PCI_ADDRESS
    out dx, eax
    mov dx, PCI_DATA
    and ecx, 3
    add dx, cx
    mov eax, r8d
    out dx, al
    ret

; ---------------------------------------------------------------------------------------------
; 10. The Multiboot memory map.

convert_map:
    mov rbx, [v_low]
    lea rdi, [rbx + LB_MMAP]
    xor r12d, r12d                 ; entries
    mov rsi, [v_map]
    mov r13, [v_map_size]
    add r13, rsi
.desc:
    cmp rsi, r13
    jae .converted
    mov rcx, [rsi + MD_PAGES]
    test rcx, rcx
    jz .desc_next
    mov rax, rcx
    shr rax, 64 - PAGE_SHIFT
    jnz .bad_map
    shl rcx, PAGE_SHIFT
    mov eax, [rsi + MD_TYPE]
    mov rdx, [rsi + MD_ATTRIBUTE]
    call multiboot_type
    mov rdx, [rsi + MD_START]
    call append_entry
.desc_next:
    add rsi, [v_desc_size]
    jmp .desc
.converted:
    cmp byte [v_rsdp_state], RSDP_PLACED
    jne .sort
    mov edx, RSDP_AREA
    mov ecx, RSDP_SEGMENT_LEN
    mov eax, MB_RESERVED
    call append_entry
.sort:
    ; Insertion sort by base address.
    lea r8, [rbx + LB_MMAP]
    mov r9d, 1
.outer:
    cmp r9, r12
    jae .sorted
    imul rax, r9, MB_MMAP_ENTRY
    mov r10, [r8 + rax + 4]        ; base
    mov r11, [r8 + rax + 12]       ; length
    mov r14d, [r8 + rax + 20]      ; type
    mov r15, r9
.inner:
    test r15, r15
    jz .place
    imul rax, r15, MB_MMAP_ENTRY
    cmp [r8 + rax - MB_MMAP_ENTRY + 4], r10
    jbe .place
    mov rcx, [r8 + rax - MB_MMAP_ENTRY + 4]
    mov [r8 + rax + 4], rcx
    mov rcx, [r8 + rax - MB_MMAP_ENTRY + 12]
    mov [r8 + rax + 12], rcx
    mov ecx, [r8 + rax - MB_MMAP_ENTRY + 20]
    mov [r8 + rax + 20], ecx
    dec r15
    jmp .inner
.place:
    imul rax, r15, MB_MMAP_ENTRY
    mov [r8 + rax + 4], r10
    mov [r8 + rax + 12], r11
    mov [r8 + rax + 20], r14d
    inc r9
    jmp .outer
.sorted:
    ; Merge adjacent entries of one type; overlapping entries mean a broken map.
    test r12, r12
    jz .bad_map
    lea rsi, [r8 + MB_MMAP_ENTRY]  ; next to look at
    mov rdi, r8                    ; last kept
    mov r9d, 1
    mov rcx, r12
    dec rcx
    jz .merged
.merge:
    mov rax, [rdi + 4]
    add rax, [rdi + 12]            ; end of the last kept
    cmp rax, [rsi + 4]
    ja .bad_map
    jne .keep
    mov edx, [rsi + 20]
    cmp edx, [rdi + 20]
    jne .keep
    mov rax, [rsi + 12]
    add [rdi + 12], rax
    jmp .merge_next
.keep:
    add rdi, MB_MMAP_ENTRY
    mov rax, [rsi + 4]
    mov [rdi + 4], rax
    mov rax, [rsi + 12]
    mov [rdi + 12], rax
    mov eax, [rsi + 20]
    mov [rdi + 20], eax
    mov dword [rdi], MB_MMAP_ENTRY - 4
    inc r9
.merge_next:
    add rsi, MB_MMAP_ENTRY
    dec rcx
    jnz .merge
.merged:
    mov [v_mmap_count], r9
    ret
.bad_map:
    lea rsi, [msg_map_broken]
    jmp fail

; Appends (RDX base, RCX length, EAX type) to the map at RDI (R12 entries so far).
append_entry:
    cmp r12, [v_mmap_cap]
    jae .full
    mov dword [rdi], MB_MMAP_ENTRY - 4
    mov [rdi + 4], rdx
    mov [rdi + 12], rcx
    mov [rdi + 20], eax
    add rdi, MB_MMAP_ENTRY
    inc r12
    ret
.full:
    lea rsi, [msg_map_full]
    jmp fail

; EAX = the Multiboot type of UEFI type EAX with attributes RDX.
multiboot_type:
    cmp eax, EFI_CONVENTIONAL
    je .usable
    cmp eax, EFI_LOADER_CODE
    jb .reserved
    cmp eax, 4                     ; loader code and data, boot-services code and data
    jbe .usable
    cmp eax, EFI_UNUSABLE
    je .bad
    cmp eax, EFI_ACPI_RECLAIM
    je .acpi
    cmp eax, EFI_ACPI_NVS
    je .nvs
.reserved:
    mov eax, MB_RESERVED
    ret
.usable:
    bt rdx, MEMORY_SP_BIT
    jc .reserved
    mov eax, MB_USABLE
    ret
.bad:
    mov eax, MB_BAD
    ret
.acpi:
    mov eax, MB_ACPI
    ret
.nvs:
    mov eax, MB_NVS
    ret

; Every kernel page must lie in one usable entry of the final map.
check_final_pages:
    lea r12, [v_pages]
    mov r13, [v_page_count]
.range:
    mov r14, [r12]
    mov r15, [r12 + 8]
    mov rbx, [v_low]
    lea rsi, [rbx + LB_MMAP]
    mov rcx, [v_mmap_count]
.entry:
    cmp dword [rsi + 20], MB_USABLE
    jne .next
    cmp r14, [rsi + 4]
    jb .next
    mov rax, [rsi + 4]
    add rax, [rsi + 12]
    cmp r15, rax
    jbe .covered
.next:
    add rsi, MB_MMAP_ENTRY
    dec rcx
    jnz .entry
    call line_error
    lea rsi, [msg_memory1]
    call line_str
    call line_range
    lea rsi, [msg_memory_final]
    call line_str
    jmp fail_line
.covered:
    add r12, 16
    dec r13
    jnz .range
    ret

; mem_lower, mem_upper and the map's place in the information; a note on the RSDP.
finish_info:
    mov rbx, [v_low]
    lea rsi, [rbx + LB_MMAP]
    mov rcx, [v_mmap_count]
    mov [rbx + LB_INFO + I_MMAP_ADDR], esi
    imul eax, ecx, MB_MMAP_ENTRY
    mov [rbx + LB_INFO + I_MMAP_LENGTH], eax
    mov r8d, ONE_MIB               ; end of usable memory contiguous from 1 MiB
.entry:
    cmp dword [rsi + 20], MB_USABLE
    jne .next
    mov rax, [rsi + 4]
    test rax, rax
    jnz .upper
    mov rdx, [rsi + 12]
    cmp rdx, LOW_MEMORY_END
    jbe .lower
    mov edx, LOW_MEMORY_END
.lower:
    shr edx, 10
    mov [rbx + LB_INFO + I_MEM_LOWER], edx
.upper:
    cmp rax, r8                    ; sorted: one pass follows adjacent usable entries
    ja .next
    add rax, [rsi + 12]
    cmp rax, r8
    jbe .next
    mov r8, rax
.next:
    add rsi, MB_MMAP_ENTRY
    dec rcx
    jnz .entry
    mov rax, 1 << 32
    cmp r8, rax
    jbe .capped
    mov r8, rax
.capped:
    sub r8, ONE_MIB
    shr r8, 10
    mov [rbx + LB_INFO + I_MEM_UPPER], r8d
    ; Tell the user why a kernel may not find ACPI (not an error: it may not need it).
    test dword [record + R_FLAGS], FLAG_QUIET
    jnz .done
    mov al, [v_rsdp_state]
    cmp al, RSDP_UNKNOWN_CHIPSET
    jb .done
    call line_reset
    lea rsi, [msg_note]
    call line_str
    lea rsi, [msg_rsdp_chipset]
    cmp byte [v_rsdp_state], RSDP_UNKNOWN_CHIPSET
    je .note
    lea rsi, [msg_rsdp_in_map]
    cmp byte [v_rsdp_state], RSDP_AREA_IN_MAP
    je .note
    lea rsi, [msg_rsdp_readback]
.note:
    call line_str
    call emit_line
.done:
    ret

; ---------------------------------------------------------------------------------------------
; 11. Into the trampoline.

enter_trampoline:
    mov rdx, [v_low]
    lgdt [rdx + LB_GDTR]
    mov esi, edx
    push SEL_CODE32
    lea rax, [rdx + LB_TRAMP]
    push rax
    o64 retf

; Runs from the low block in 32-bit compatibility mode, ESI = the low block. Position-
; independent: only relative jumps and calls, data through ESI/EDX.
bits 32
tramp_start:
    lea esp, [esi + LB_STACK_TOP]
    mov ax, SEL_DATA32
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov eax, cr0
    and eax, ~(CR0_PG | CR0_TS) & 0xffffffff
    mov cr0, eax                   ; paging off: legacy protected mode
    mov ecx, MSR_EFER
    rdmsr
    and eax, ~(EFER_LME | EFER_NXE)
    wrmsr
    xor eax, eax
    mov cr4, eax
    mov edx, esi
    ; A20: the probe must not show up at its alias 1 MiB away (which is only read).
    lea edi, [edx + LB_A20_PROBE]
    mov ebx, edi
    xor ebx, ONE_MIB
    mov ecx, 2
.a20_test:
    mov dword [edi], 0x5a5aa5a5
    cmp dword [ebx], 0x5a5aa5a5
    jne .a20_on
    mov dword [edi], 0xa5a55a5a
    cmp dword [ebx], 0xa5a55a5a
    jne .a20_on
    dec ecx
    jz .a20_fail
    in al, A20_PORT
    or al, A20_BIT
    and al, ~A20_RESET_BIT
    out A20_PORT, al
    jmp .a20_test
.a20_fail:
    lea esi, [edx + LB_MSG]
.putc:
    lodsb
    test al, al
    jz .halt
    mov ah, al
    UART_SEND
    jmp .putc
.halt:
    hlt
    jmp .halt
.a20_on:
    ; The copies and the zeroing, in list order.
    mov ebp, [edx + LB_COPY_COUNT]
    lea ebx, [edx + LB_COPY]
.item:
    test ebp, ebp
    jz .loaded
    mov edi, [ebx + COPY_DEST]
    mov ecx, [ebx + COPY_LEN]
    cmp dword [ebx + COPY_KIND], KIND_COPY
    jne .zero
    mov esi, [ebx + COPY_SRC]
    rep movsb
    jmp .item_next
.zero:
    xor eax, eax
    rep stosb
.item_next:
    add ebx, LB_COPY_ENTRY
    dec ebp
    jmp .item
.loaded:
    push EFLAGS_CLEAN
    popfd
    mov eax, MB_MAGIC
    lea ebx, [edx + LB_INFO]
    jmp [edx + LB_ENTRY]
tramp_end:
bits 64

%if tramp_end - tramp_start > LB_STACK_BOTTOM - LB_TRAMP
%error "the trampoline does not fit in its part of the low block"
%endif

; ---------------------------------------------------------------------------------------------
; Failure.

; Fails with the message at RSI (after the error prefix).
fail:
    push rsi
    call line_error
    pop rsi
    call line_str
    jmp fail_line

; Appends " (status 0x...)" for v_status, then fails.
fail_status:
    mov [v_status], rax
    push rsi
    call line_error
    pop rsi
    call line_str
fail_with_status:
    lea rsi, [msg_status]
    call line_str
    mov rax, [v_status]
    call line_hex64
    mov al, ")"
    call line_char
    ; fall through
; Ends the line, prints it once, and gives up: back to the firmware before ExitBootServices,
; a halt after it.
fail_line:
    call emit_line
    cmp byte [v_boot_services_gone], 0
    jne halt
    mov rsp, [v_saved_rsp]
    call close_files
    call release_memory
    mov eax, EFI_LOAD_ERROR
    bts rax, 63
    jmp epilogue

halt:
    cli
    hlt
    jmp halt

; Frees every page allocation and the map buffers.
release_memory:
    mov r12, [v_alloc_count]
    lea r13, [v_allocs]
.pages:
    test r12, r12
    jz .pool
    mov rcx, [r13]
    mov rdx, [r13 + 8]
    mov rax, [v_bs]
    mov rax, [rax + BS_FREE_PAGES]
    call efi_call
    add r13, 16
    dec r12
    jmp .pages
.pool:
    mov qword [v_alloc_count], 0
    mov rax, [v_map]
    mov rcx, [v_old_map_count]
    lea rdx, [v_old_maps]
    mov [rdx + rcx * 8], rax       ; the current buffer last (OLD_MAPS_MAX + 1 slots)
    lea r12, [rcx + 1]
    mov r13, rdx
    mov qword [v_map], 0
    mov qword [v_old_map_count], 0
.free_pool:
    mov rcx, [r13]
    test rcx, rcx
    jz .next_pool
    mov rax, [v_bs]
    mov rax, [rax + BS_FREE_POOL]
    call efi_call
.next_pool:
    add r13, 8
    dec r12
    jnz .free_pool
    ret

; ---------------------------------------------------------------------------------------------
; The output line: built in v_line (UTF-8), printed once by emit_line, through the firmware's
; console before ExitBootServices and on COM1 after it.

line_reset:
    mov qword [v_line_len], 0
    ret

line_error:
    call line_reset
    lea rsi, [msg_error]
    jmp line_str

; Appends AL (dropped when the line is full).
line_char:
    push rcx
    push rdx
    mov rcx, [v_line_len]
    cmp rcx, LINE_MAX
    jae .full
    lea rdx, [v_line]
    mov [rdx + rcx], al
    inc qword [v_line_len]
.full:
    pop rdx
    pop rcx
    ret

; Appends the NUL-terminated string at RSI.
line_str:
    push rax
.next:
    mov al, [rsi]
    test al, al
    jz .done
    call line_char
    inc rsi
    jmp .next
.done:
    pop rax
    ret

line_hex32:
    push rcx
    mov ecx, 8
    shl rax, 32
    jmp line_hex
line_hex64:
    push rcx
    mov ecx, 16
line_hex:
    push rdx
    mov rdx, rax
.digit:
    rol rdx, 4
    mov eax, edx
    and eax, 15
    add eax, "0"
    cmp eax, "9"
    jbe .emit
    add eax, "a" - "0" - 10
.emit:
    call line_char
    dec ecx
    jnz .digit
    pop rdx
    pop rcx
    ret

; Appends RAX in decimal.
line_dec:
    push rcx
    push rdx
    push rbx
    mov ebx, 10
    xor ecx, ecx
.divide:
    xor edx, edx
    div rbx
    push rdx
    inc ecx
    test rax, rax
    jnz .divide
.emit:
    pop rax
    add al, "0"
    call line_char
    dec ecx
    jnz .emit
    pop rbx
    pop rdx
    pop rcx
    ret

emit_line:
    cmp byte [v_boot_services_gone], 0
    jne .serial
    mov rax, [v_conout]
    test rax, rax
    jz .done
    lea rsi, [v_line]
    mov rcx, [v_line_len]
    mov byte [rsi + rcx], 0
    lea rdi, [v_line16]
    mov ecx, LINE_MAX
    call utf8_to_ucs2
    mov dword [rdi], 0x000a000d    ; CR LF
    mov word [rdi + 4], 0
    mov rcx, [v_conout]
    lea rdx, [v_line16]
    mov rax, [rcx + CONOUT_OUTPUT_STRING]
    call efi_call                  ; nothing else could report a console failure
.done:
    ret
.serial:
    call serial_init
    lea rsi, [v_line]
    mov rcx, [v_line_len]
.byte:
    test rcx, rcx
    jz .crlf
    lodsb
    call serial_putc
    dec rcx
    jmp .byte
.crlf:
    mov al, 13
    call serial_putc
    mov al, 10
    jmp serial_putc

; COM1: 115200 baud, 8N1, FIFO on, no interrupts (as the BIOS stage sets it).
serial_init:
    mov dx, COM1 + 1
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 0x80
    out dx, al
    mov dx, COM1
    mov al, 1
    out dx, al
    mov dx, COM1 + 1
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 3
    out dx, al
    mov dx, COM1 + 2
    mov al, 0xc7
    out dx, al
    mov dx, COM1 + 4
    mov al, 3
    out dx, al
    ret

; Sends AL, waiting a bounded time for the transmitter. Preserves RCX.
serial_putc:
    push rcx
    mov ah, al
    UART_SEND
    pop rcx
    ret

; Converts the NUL-terminated UTF-8 at RSI to UCS-2 at RDI, at most ECX units before the
; terminating NUL. Sequences that are invalid or beyond the Basic Multilingual Plane become
; U+FFFD. RDI ends at the NUL written.
utf8_to_ucs2:
.next:
    movzx eax, byte [rsi]
    test eax, eax
    jz .end
    inc rsi
    cmp eax, 0x80
    jb .store
    cmp eax, 0xc2
    jb .invalid
    cmp eax, 0xe0
    jb .two
    cmp eax, 0xf0
    jb .three
    jmp .invalid
.two:
    and eax, 0x1f
    call .continuation
    jc .invalid
    jmp .store
.three:
    and eax, 0x0f
    call .continuation
    jc .invalid
    call .continuation
    jc .invalid
    cmp eax, 0x800
    jb .invalid
    cmp eax, 0xd800
    jb .store
    cmp eax, 0xe000
    jb .invalid
    jmp .store
.invalid:
    mov eax, 0xfffd
.store:
    test ecx, ecx
    jz .next
    mov [rdi], ax
    add rdi, 2
    dec ecx
    jmp .next
.end:
    mov word [rdi], 0
    ret
; EAX = EAX << 6 | the continuation byte at RSI (advanced); CF = 1 if there is none.
.continuation:
    movzx edx, byte [rsi]
    mov r8d, edx
    and r8d, 0xc0
    cmp r8d, 0x80
    jne .not_continuation
    inc rsi
    shl eax, 6
    and edx, 0x3f
    or eax, edx
    clc
    ret
.not_continuation:
    stc
    ret

; ---------------------------------------------------------------------------------------------
; Read-only data.

align 8
guid_loaded_image:  dd 0x5b1b31a1
                    dw 0x9562, 0x11d2
                    db 0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b
guid_file_system:   dd 0x964e5b22
                    dw 0x6459, 0x11d2
                    db 0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b
guid_file_info:     dd 0x09576e92
                    dw 0x6d3f, 0x11d2
                    db 0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b
guid_acpi20:        dd 0x8868e871
                    dw 0xe4f1, 0x11d3
                    db 0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81
guid_acpi10:        dd 0xeb9d2d30
                    dw 0x2d88, 0x11d3
                    db 0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d
guid_gop:           dd 0x9042a9de
                    dw 0x23dc, 0x4a38
                    db 0x96, 0xfb, 0x7a, 0xde, 0xd0, 0x80, 0x51, 0x6a
zero_dword:         dd 0

msg_error:            db "unikernel-mkimage UEFI loader: error: ", 0
msg_note:             db "unikernel-mkimage UEFI loader: note: ", 0
msg_no_record:        db "boot record missing (the loader file holds none)", 0
msg_record_version:   db "boot record format ", 0
msg_record_version2:  db " is not supported by this loader (it reads format 2)", 0
msg_record_damaged:   db "boot record damaged (checksum or lengths wrong)", 0
msg_bad_flags:        db "boot record asks for features this boot stage lacks", 0
msg_bad_run:          db "boot record invalid: a run does not read the kernel file's own sectors", 0
msg_bad_range:        db "boot record invalid: a load range lies below 1 MiB or beyond 4 GiB", 0
msg_overlap:          db "boot record invalid: two load ranges overlap", 0
msg_bad_entry:        db "boot record invalid: the entry point is not in the loaded bytes", 0
msg_start1:           db " (UEFI loader): loading ", 0
msg_start2:           db " (", 0
msg_start3:           db " bytes)", 0
msg_no_device:        db "the firmware cannot say which device this loader was loaded from", 0
msg_no_file_system:   db "the firmware cannot read the file system this loader was loaded from", 0
msg_no_volume:        db "cannot open the file system this loader was loaded from", 0
msg_kernel_missing1:  db "kernel file \", 0
msg_kernel_missing2:  db " not found on the loader's partition (was the FAT partition changed after the image was built?)", 0
msg_kernel_open:      db "cannot open kernel file \", 0
msg_kernel_info:      db "cannot read the size of kernel file \", 0
msg_kernel_size1:     db "kernel file \", 0
msg_kernel_size2:     db " is ", 0
msg_kernel_size3:     db " bytes but the boot record says ", 0
msg_kernel_size4:     db " (was the FAT partition changed after the image was built?)", 0
msg_memory1:          db "memory ", 0
msg_memory_unmapped:  db ", where the kernel must be loaded, is not in the firmware's memory map", 0
msg_memory_used:      db ", where the kernel must be loaded, is ", 0
msg_memory_used2:     db " in the firmware's memory map", 0
msg_memory_final:     db ", where the kernel must be loaded, is not usable memory after ExitBootServices", 0
msg_reserve:          db "cannot reserve memory for the kernel at ", 0
msg_too_fragmented:   db "the kernel's memory is split into too many pieces by the firmware", 0
msg_type_number:      db "of firmware type ", 0
msg_no_map:           db "cannot read the firmware's memory map", 0
msg_bad_map:          db "the firmware's memory map descriptors are too small", 0
msg_map_broken:       db "the firmware's final memory map is empty or has overlapping entries", 0
msg_map_full:         db "the firmware's final memory map has more entries than the loader reserved room for", 0
msg_no_staging1:      db "not enough memory below 4 GiB to read the kernel (", 0
msg_no_staging2:      db " bytes)", 0
msg_read1:            db "reading kernel file \", 0
msg_read2:            db " failed at byte ", 0
msg_short1:           db "kernel file \", 0
msg_short2:           db " ended after ", 0
msg_short3:           db " bytes, before the size the firmware reported", 0
msg_checksum:         db "kernel on disk does not match the boot record (was the FAT partition changed after the image was built?)", 0
msg_no_gop:           db "the kernel requires a graphics mode, but the firmware has no graphics output (GOP)", 0
msg_no_framebuffer:   db "the kernel requires a graphics mode, but the firmware's graphics output has no linear framebuffer", 0
msg_no_low:           db "no memory below 4 GiB for the Multiboot information", 0
msg_ebs:              db "ExitBootServices failed", 0
msg_status:           db " (status 0x", 0
msg_hex_prefix:       db "0x", 0
msg_rsdp_chipset:     db "the ACPI RSDP could not be copied to E0000h (the chipset is neither i440FX nor Q35); a kernel that scans for it will not find it", 0
msg_rsdp_in_map:      db "the ACPI RSDP could not be copied to E0000h (the firmware's memory map claims that memory); a kernel that scans for it will not find it", 0
msg_rsdp_readback:    db "the ACPI RSDP could not be copied to E0000h (the copy did not read back); a kernel that scans for it will not find it", 0
msg_a20_line:         db "unikernel-mkimage UEFI loader: error: cannot enable the A20 line", 13, 10, 0
msg_a20_line_end:
type_names:
    db "reserved", 0
    db "loader code", 0
    db "loader data", 0
    db "boot services code", 0
    db "boot services data", 0
    db "runtime services code", 0
    db "runtime services data", 0
    db "free memory", 0
    db "unusable memory", 0
    db "ACPI tables", 0
    db "ACPI non-volatile storage", 0
    db "memory-mapped I/O", 0
    db "memory-mapped I/O port space", 0
    db "PAL code", 0
    db "persistent memory", 0
    db "unaccepted memory", 0
    db "specific-purpose memory", 0

%if msg_a20_line_end - msg_a20_line > LB_MSG_MAX
%error "the A20 message does not fit in the low block"
%endif

    align SECTION_ALIGN, db 0
text_end:

; ---------------------------------------------------------------------------------------------
; .reloc: one empty block (page 0, two absolute no-op entries).

reloc_start:
    dd 0                           ; page RVA
    dd reloc_block_end - reloc_start
    dw 0, 0                        ; IMAGE_REL_BASED_ABSOLUTE: padding, no fix-up
reloc_block_end:
    align SECTION_ALIGN, db 0
reloc_end:

; ---------------------------------------------------------------------------------------------
; .data: the boot record, written by the image builder; zero here, which the loader refuses.

data_start:
record:
    times RECORD_MAX db 0
data_end:

; ---------------------------------------------------------------------------------------------
; .bss: zeroed by the loader itself at entry (not in the file).

PATH_CHARS          equ 1 + 255 + 1
bss_start           equ data_end
v_image             equ bss_start + 0x000
v_systab            equ bss_start + 0x008
v_bs                equ bss_start + 0x010
v_conout            equ bss_start + 0x018
v_saved_rsp         equ bss_start + 0x020
v_loaded_image      equ bss_start + 0x028
v_file_system       equ bss_start + 0x030
v_root              equ bss_start + 0x038
v_kernel_file       equ bss_start + 0x040
v_map               equ bss_start + 0x048
v_map_cap           equ bss_start + 0x050
v_map_size          equ bss_start + 0x058
v_map_key           equ bss_start + 0x060
v_desc_size         equ bss_start + 0x068
v_desc_version      equ bss_start + 0x070
v_map_tries         equ bss_start + 0x078
v_staging           equ bss_start + 0x080
v_staging_pages     equ bss_start + 0x088
v_low               equ bss_start + 0x090
v_low_pages         equ bss_start + 0x098
v_mmap_cap          equ bss_start + 0x0a0
v_mmap_count        equ bss_start + 0x0a8
v_info_size         equ bss_start + 0x0b0
v_read_len          equ bss_start + 0x0b8
v_status            equ bss_start + 0x0c0
v_range_count       equ bss_start + 0x0c8
v_page_count        equ bss_start + 0x0d0
v_alloc_count       equ bss_start + 0x0d8
v_kernel_end        equ bss_start + 0x0e0
v_address           equ bss_start + 0x0e8
v_ebs_tries         equ bss_start + 0x0f0
v_gop               equ bss_start + 0x0f8
v_gop_info          equ bss_start + 0x100
v_gop_info_size     equ bss_start + 0x108
v_fb_addr           equ bss_start + 0x110
v_fb_pitch          equ bss_start + 0x118
v_fb_width          equ bss_start + 0x11c
v_fb_height         equ bss_start + 0x120
v_fb_bpp            equ bss_start + 0x124
v_fb_valid          equ bss_start + 0x125
v_rsdp_len          equ bss_start + 0x126
v_rsdp_state        equ bss_start + 0x127
v_boot_services_gone equ bss_start + 0x128
v_fb_colors         equ bss_start + 0x130  ; 6 bytes
v_chipset           equ bss_start + 0x138
v_line_len          equ bss_start + 0x140
v_tail              equ bss_start + 0x148
v_old_map_count     equ bss_start + 0x150
v_old_maps          equ bss_start + 0x158  ; OLD_MAPS_MAX + 1 pointers, to 0x1a0
v_rsdp              equ bss_start + 0x1a0  ; RSDP_MAX bytes, to 0x1e0
v_line              equ bss_start + 0x200  ; LINE_MAX + 1 bytes
v_line16            equ bss_start + 0x400  ; (LINE_MAX + 3) UCS-2 units
v_path              equ bss_start + 0x800  ; PATH_CHARS UCS-2 units
v_file_info         equ bss_start + 0xb00  ; FILE_INFO_MAX bytes
v_allocs            equ bss_start + 0xf00  ; ALLOC_MAX (address, pages) pairs
v_ranges            equ bss_start + 0x1800 ; MAX_RANGES (start, end) pairs
v_pages             equ v_ranges + MAX_RANGES * 16
bss_used            equ v_pages + MAX_RANGES * 16 - bss_start
bss_size            equ (bss_used + SECTION_ALIGN - 1) / SECTION_ALIGN * SECTION_ALIGN
image_end           equ data_end + bss_size

%if LINE_MAX + 1 > 0x200 || (LINE_MAX + 3) * 2 > 0x400 || PATH_CHARS * 2 > 0x300 || FILE_INFO_MAX > 0x400
%error "line or path buffers overlap"
%endif
%if ALLOC_MAX * 16 > 0x800
%error "allocation table overlaps the ranges"
%endif
%if 0x158 + (OLD_MAPS_MAX + 1) * 8 > 0x1a0 || 0x1a0 + RSDP_MAX > 0x200
%error "the map buffer list or the RSDP copy overlaps the next variable"
%endif
