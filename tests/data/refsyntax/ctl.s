; CALL zi_ctl is CTL: HL = request, DE = its length, BC = response buffer, IX = its
; capacity; HL = response length. The test's handler answers the request reversed.
;= ctl: reverse
;= stdout: "olleh"
;= regs: HL=0x1005 DE=5 BC=5 A=0 IX=16

main:   LD HL, req
        LD DE, #5
        LD BC, resp
        LD IX, #16
        CALL zi_ctl             ; HL = 5
        LD BC, HL
        LD HL, #1
        LD DE, resp
        CALL zi_write
        RET

req:    DB "hello"
resp:   RESB 16
