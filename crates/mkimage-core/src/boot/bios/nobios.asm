; unikernel-mkimage MBR code of a UEFI-only image: says that the disk has no BIOS boot stage
; and hands the boot back to the BIOS.
;
; Contract
;   Loaded by the BIOS to 0000:7C00 and entered in real mode (any DL). Prints one line on COM1
;   (like the BIOS stage: only there, since a BIOS that mirrors its screen on the serial port
;   would show a screen copy interleaved with it), then calls INT 18h, with which the BIOS tries
;   its next boot device (or reports that none is left). Reads no disk and uses no memory but
;   its stack below 7C00h. At most 440 bytes: the partition table follows.

bits 16
org 0x7c00

%include "serial.inc"

STACK_TOP equ 0x7c00
CODE_MAX  equ 440

start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, STACK_TOP
    sti
    cld
    SERIAL_INIT
    mov si, message
.next:
    lodsb
    test al, al
    jz .done
    call putc
    jmp .next
.done:
    int 0x18                       ; boot failure: the BIOS tries the next device
.halt:
    hlt
    jmp .halt

putc:
    PUTC_ROUTINE

message: db "unikernel-mkimage: this disk has no BIOS boot stage; it boots only from UEFI firmware", 13, 10, 0

%if $ - $$ > CODE_MAX
%error "the code does not fit before the partition table"
%endif
    times CODE_MAX - ($ - $$) db 0
