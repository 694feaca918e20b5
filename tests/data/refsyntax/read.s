; CALL zi_read in a loop (HL = handle, DE = buffer, BC = capacity; HL = bytes read),
; echoing each chunk with CALL zi_write.
;= stdin: "one\ntwo\nthree\n"
;= stdout: "one\ntwo\nthree\n"
;= regs: HL=0 DE=5 BC=5 A=0 IX=0

BUFSIZE: EQU 5

loop:   LD HL, #0
        LD DE, buf
        LD BC, #BUFSIZE
        CALL zi_read            ; HL = count; DE = BUFSIZE (moved from BC)
        CP HL, #0
        JR eq, done
        LD BC, HL               ; length = count
        LD HL, #1
        LD DE, buf
        CALL zi_write
        JR loop
done:   RET

buf:    RESB BUFSIZE
