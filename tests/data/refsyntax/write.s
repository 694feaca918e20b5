; CALL zi_write: HL = handle (ignored), DE = buffer, BC = length. The reference
; lowers it to MOV HL, DE ; MOV DE, BC ; OUT, and those moves really run.
;= stdout: "Hello from zi_write\n"
;= regs: HL=0x1000 DE=20 BC=20 A=0 IX=0

main:   LD HL, #1               ; handle
        LD DE, msg              ; buffer
        LD BC, #20              ; length
        CALL zi_write
        RET

msg:    STR "Hello from zi_write", 10
