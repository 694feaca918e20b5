; Stores of an immediate: ST.. (b), imm = LD tmp, imm ; ST.. (b), tmp, tmp being A,
; or IX when the base is A.
;= stdout: "ref ok\n!ST64 ok\n_8_16_32\n"
;= regs: HL=0x1000 DE=25 BC=25 A=0x0A IX=0x21

main:   LD HL, buf
        ST8 (HL), #'r'          ; A = 'r'
        ST8 (HL+1), 'e'
        ST16 (HL+2), #0x2066    ; "f "
        ST32 (HL+4), #0x000A6B6F ; "ok\n", 0
        LD A, buf
        ST8 (A+7), #'!'         ; base A: tmp IX = '!'
        ST64 (HL+8), #0x0A6B6F2034365453  ; "ST64 ok\n"
        ST8_64 (HL+16), #'_'
        ST8 (HL+17), #'8'
        ST16_64 (HL+18), #0x315F ; "_1"
        ST32_64 (HL+20), #0x32335F36 ; "6_32"
        ST16 (HL+24), #10       ; "\n", 0
        LD DE, buf
        LD BC, #25
        CALL zi_write
        RET

buf:    RESB 32
