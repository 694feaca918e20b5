; A program that defines a label under a host-call name calls its own routine: this
; zi_write takes HL = buffer, DE = length (no moves), and _out is a routine too.
;= stdout: "[own][out]"
;= regs: HL=0x1005 DE=5 A=2 BC=0 IX=0

main:   LD HL, own
        LD DE, #5
        CALL zi_write
        LD HL, out
        CALL _out
        RET

zi_write:
        INC A
        OUT
        RET
_out:   JR zi_write

own:    DB "[own]"
out:    DB "[out]"
