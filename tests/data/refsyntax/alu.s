; ALU instructions with an immediate operand: OP r, imm = LD tmp, imm ; OP r, r, tmp,
; tmp being A, or IX when the instruction's register is A (the final A and IX show it).
;= regs: HL=0x10000007B DE=42 A=0x100000000 BC=0xFFFFFFFB IX=0xFFFFFFFFFFFFFFFF

main:   LD HL, #100
        ADD HL, #23             ; A = 23, HL = 123
        LD DE, #7
        MUL DE, 6               ; a bare number works too: A = 6, DE = 42
        LD BC, #10
        SUB BC, #15             ; A = 15, BC = 0xFFFFFFFB (32-bit result, zero-extended)
        LD IX, #1
        SUB64 IX, #2            ; A = 2, IX = -1
        AND64 IX, #-1           ; A = -1
        OR64 DE, #0             ; A = 0
        XOR64 HL, #0            ; A = 0
        MUL64 HL, #1            ; A = 1
        ADD64 HL, #0x100000000  ; A = 0x100000000, HL = 0x10000007B
        RET
