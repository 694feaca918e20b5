; CALL zi_telemetry is LOG: HL = topic, DE = topic length, BC = message, IX = length.
;= log: [("zasm", "hello telemetry")]
;= regs: HL=0x1000 DE=4 BC=0x1004 IX=15 A=0

main:   LD HL, topic
        LD DE, #4
        LD BC, msg
        LD IX, #15
        CALL zi_telemetry
        RET

topic:  DB "zasm"
msg:    DB "hello telemetry"
