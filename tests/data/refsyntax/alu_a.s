; An immediate ALU operation on A itself goes through IX (the next register of the
; order A, IX, BC, DE, HL); the program prints A and IX as two bytes.
;= stdout: "jU"
;= regs: HL=0x1000 DE=2 A=0x6A BC=2 IX=0x55

main:   LD A, #0xF0
        AND A, #0x3C            ; IX = 0x3C, A = 0x30
        OR A, #0x0F             ; IX = 0x0F, A = 0x3F
        XOR A, #0x55            ; IX = 0x55, A = 0x6A ('j'; IX is 'U')
        LD HL, out
        ST8 (HL), A
        ST8 (HL+1), IX
        LD DE, out
        LD BC, #2
        CALL zi_write
        RET

out:    RESB 2
