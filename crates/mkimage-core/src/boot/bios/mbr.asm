; unikernel-mkimage MBR boot code (stage 1)
;
; Contract
;   Entered by the BIOS at 0000:7C00 (or 07C0:0000) in real mode, DL = boot drive.
;   Occupies the first 440 bytes of LBA 0; the disk signature, the partition table and the
;   55AA signature that follow are written by the image builder and never touched here.
;   Loads STAGE2_SECTORS + RECORD_SECTORS sectors (stage 2 and the boot record) from the LBA
;   the image builder patched into the disk address packet at DAP_OFFSET, to 0000:8000, with one
;   INT 13h extended read (retried, with a disk reset between tries), checks the CRC-32 of
;   stage 2's STAGE2_SECTORS sectors against the value the image builder recorded, and jumps
;   to 0000:8000 with DL = boot drive. Damaged or missing stage 2 code is never run.
;   On failure it prints one line on COM1 and halts (interrupts on, so Ctrl-Alt-Del works).
;   Its variables live at 0600h, below its stack and outside this sector.
;
; Patched by the image builder (offsets from the start of the sector, see boot/bios/mod.rs):
;   CRC_OFFSET      u32  CRC-32 of stage 2's sectors; assembled as PLACEHOLDER_CRC
;   DAP_OFFSET + 2  u16  sectors to read
;   DAP_OFFSET + 8  u64  first LBA of the boot area; assembled as PLACEHOLDER_LBA

bits 16
org 0x7c00

%include "serial.inc"

STAGE2_ADDR      equ 0x8000      ; where stage 2 runs (and the boot record follows)
STAGE2_BYTES     equ 16 * 512    ; stage 2's sectors, covered by the CRC
DAP_OFFSET       equ 0x1a8       ; disk address packet: the last 16 bytes of the code area
CRC_OFFSET       equ DAP_OFFSET - 4
SECTORS_DEFAULT  equ 32          ; stage 2 (16 sectors) + boot record (16 sectors)
READ_TRIES       equ 3
CRC32_POLY       equ 0xedb88320
VARS             equ 0x600       ; variables, below the stack (which grows down from 7C00h)
drive            equ VARS + 0    ; u8
tries            equ VARS + 1    ; u8
status           equ VARS + 2    ; u8
sectors_wanted   equ VARS + 4    ; u16

start:
    jmp 0x0000:normalized          ; some BIOSes enter at 07C0:0000
normalized:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    sti
    cld
    mov [drive], dl
    mov ax, [dap + 2]              ; the patched sector count, kept for retries
    mov [sectors_wanted], ax

    SERIAL_INIT

    ; INT 13h extensions present, with the fixed-disk subset (AH=42h)?
    mov ah, 0x41
    mov bx, 0x55aa
    mov dl, [drive]
    int 0x13
    mov si, msg_no_ext
    jc fail
    cmp bx, 0xaa55
    jne fail
    test cl, 1
    jz fail

    mov byte [tries], READ_TRIES
.read:
    mov si, dap
    mov ah, 0x42
    mov dl, [drive]
    int 0x13
    jnc .loaded
    mov [status], ah
    xor ax, ax                     ; reset the disk system before trying again
    mov dl, [drive]
    int 0x13
    mov ax, [sectors_wanted]       ; the BIOS may have lowered the count on error
    mov [dap + 2], ax
    dec byte [tries]
    jnz .read
    mov si, msg_read
    call print_prefixed
    mov al, [status]
    call print_hex8
    mov si, msg_crlf
    call print
    jmp fail.halt

.loaded:
    ; CRC-32 (IEEE, reflected) of stage 2, compared with the recorded value.
    mov si, STAGE2_ADDR
    mov cx, STAGE2_BYTES
    or eax, -1
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
    loop .byte
    not eax
    mov si, msg_bad_stage2
    cmp eax, [stage2_crc]
    jne fail
    mov dl, [drive]
    jmp 0x0000:STAGE2_ADDR

; Prints the message at SI after the common prefix, then halts forever.
fail:
    call print_prefixed
.halt:
    sti
    hlt
    jmp .halt

; Prints the common prefix, then the NUL-terminated string at SI.
print_prefixed:
    push si
    mov si, msg_prefix
    call print
    pop si
    ; fall through

; Prints the NUL-terminated string at SI on COM1.
print:
    lodsb
    test al, al
    jz .done
    call putc
    jmp print
.done:
    ret

; Prints AL as two hex digits.
print_hex8:
    push ax
    shr al, 4
    call .digit
    pop ax
    and al, 0x0f
.digit:
    add al, '0'
    cmp al, '9'
    jbe putc
    add al, 'a' - '0' - 10
    ; fall through

; Sends AL to COM1.
putc:
    PUTC_ROUTINE

msg_prefix:     db "unikernel-mkimage: ", 0
msg_no_ext:     db "no INT 13h extensions for the boot disk", 13, 10, 0
msg_read:       db "cannot read the boot stage, BIOS status 0x", 0
msg_bad_stage2: db "boot stage missing or damaged", 13, 10, 0
msg_crlf:       db 13, 10, 0

    times CRC_OFFSET - ($ - $$) db 0
stage2_crc:
    dd 0x3f43_5243                 ; CRC-32 of stage 2 (patched); placeholder "CRC?"
dap:
    db 16                          ; packet size
    db 0
    dw SECTORS_DEFAULT             ; sectors (patched)
    dw STAGE2_ADDR                 ; buffer offset
    dw 0                           ; buffer segment
    dq 0x4142_4c5f_4d4b_5546       ; first LBA (patched); placeholder "FUKM_LBA"
    ; end of the 440-byte code area
%if ($ - $$) != 440
%error "MBR code must end exactly at byte 440"
%endif
