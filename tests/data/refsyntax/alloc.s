; CALL zi_alloc (HL = size -> HL = address, 0 when out of memory) and CALL zi_free.
; The heap starts after the highest segment, 8-byte aligned: 0x1008 here.
;= stdout: "heap\n"
;= regs: HL=0x1018 DE=5 BC=5 A=10 IX=0

main:   LD HL, #16
        CALL zi_alloc           ; HL = 0x1008
        CALL zi_free            ; nothing happens
        LD HL, #8
        CALL zi_alloc           ; HL = 0x1018: memory is never reused
        LD BC, HL
        ST32 (BC), #0x70616568  ; "heap" (tmp A)
        ST8 (BC+4), #10         ; A = 10
        LD DE, BC
        LD BC, #5
        CALL zi_write           ; HL = DE = 0x1018
        RET

marker: DB 1
