; CP r, imm: CPI r, imm when imm fits in -2048..2047, else LD A, imm ; CP r, A (A is
; overwritten). Conditions in the reference spellings lts/les/gts/ges.
;= stdout: "cp ok\n"
;= regs: HL=0x1000 DE=6 BC=6 A=0x80000000 IX=2047

main:   LD IX, #2047
        CP IX, #2047            ; CPI
        JR ne, bad
        LD HL, #2048
        CP HL, #2048            ; LD A, 2048 ; CP HL, A
        JR ne, bad
        LD DE, #-2049
        CP DE, #-2049           ; LD A, -2049 ; CP DE, A
        JR ne, bad
        LD BC, #-3
        CP BC, #-2048           ; CPI: -3 > -2048
        JR LES, bad
        CP BC, #0
        JR GES, bad
        CP BC, #0x80000000      ; LD A, 0x80000000: signed, -3 > INT32_MIN
        JR LTS, bad
        JR GTS, good
bad:    LD DE, no
        JR print
good:   LD DE, yes
print:  LD HL, #1
        LD BC, #6
        CALL zi_write
        RET

yes:    DB "cp ok", 10
no:     DB "cp no", 10
