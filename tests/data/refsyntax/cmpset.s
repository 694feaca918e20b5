; Compare-set instructions with an immediate (tmp A, or IX for A itself). Each result
; is turned into a digit and written out.
;= stdout: "0110101010\n"
;= regs: HL=0x1000 DE=11 BC=11 A=1 IX=3

main:   LD BC, digits
        LD HL, #5
        LTS HL, #-1             ; 5 < -1 signed: 0
        CALL put
        LD HL, #5
        LTU HL, #-1             ; 5 < 0xFFFFFFFF unsigned: 1
        CALL put
        LD HL, #7
        EQ HL, #7               ; 1
        CALL put
        LD HL, #7
        NE HL, #7               ; 0
        CALL put
        LD HL, #-3
        LES HL, #-3             ; 1
        CALL put
        LD HL, #-3
        GTS HL, #0              ; 0
        CALL put
        LD HL, #3
        GEU HL, #3              ; 1
        CALL put
        LD HL, #3
        LEU64 HL, #2            ; 0
        CALL put
        LD HL, #0x100000000
        GTU64 HL, #1            ; 1 (64-bit compare)
        CALL put
        LD HL, #0x100000000
        GTU HL, #1              ; 0 (32-bit: low halves 0 and 1)
        CALL put
        LD HL, #10
        ST8 (BC), HL            ; newline
        LD HL, #1
        LD DE, digits
        LD BC, #11
        CALL zi_write
        LD A, #3
        GES A, #3               ; IX = 3, A = 1
        RET

put:    ADD HL, #'0'            ; A = '0'
        ST8 (BC), HL
        INC BC
        RET

digits: RESB 11
