; The LD spellings of the reference (loads, stores, moves, symbols), EQU with a colon,
; STR, two-operand register forms and shifts.
;= stdout: "LD!"
;= regs: HL=0x1004 DE=3 A=0x21 BC=3 IX=0x6968

THREE: EQU 3

main:   LD HL, text
        LD A, (HL)              ; LD8U: 'L'
        LD DE, (HL+1)           ; LD32: "Dhi" and the zero byte after it
        LD BC, buf
        LD (BC), A              ; ST8
        LD (BC+1), DE           ; ST32
        LD IX, DE               ; MOV
        SRL IX, 8               ; two-operand shift: IX = 0x6968
        LD A, #0x20
        LD HL, #1
        ADD A, HL               ; two-operand register form: A = 0x21 '!'
        LD (BC+2), A
        LD HL, #1
        LD DE, buf
        LD BC, #THREE
        CALL zi_write
        RET

text:   STR "LDhi"
buf:    RESB 4
