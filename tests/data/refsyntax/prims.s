; CALL _in ... CALL _ctl are the bare primitives (HL/DE conventions of the ISA), with
; no moves before them.
;= stdin: "xy"
;= stdout: "xy"
;= log: [("t", "m")]
;= regs: HL=0xFFFFFFFFFFFFFFF9 DE=1 BC=0x1003 IX=1 A=0x1008

main:   LD HL, buf
        LD DE, #2
        CALL _in                ; HL = 2
        LD DE, HL
        LD HL, buf
        CALL _out
        LD HL, topic
        LD DE, #1
        LD BC, msg
        LD IX, #1
        CALL _log
        LD HL, #8
        CALL _alloc
        LD A, HL
        CALL _free
        LD HL, topic
        CALL _ctl               ; no handler: -7
        RET

buf:    RESB 2
topic:  DB "t"
msg:    DB "m"
