        PUBLIC main
        PUBLIC flat
        PUBLIC deep
flat:   JR bottom
deep:   CALL down
        RET
down:   CP BC, A
        JR eq, tail
        INC A
        CALL down
        RET
tail:   JR bottom
main:   JR f1
f1:     CALL f2
        RET
f2:     LD HL, 0
        CALL f3
        RET
f3:     JR g3
g3:     CALL bottom
        RET
bottom: LD HL, 1
        CPI IX, 1
        JR eq, t_oob
        CPI IX, 2
        JR eq, t_div0
        CPI IX, 3
        JR eq, t_depth
        CPI IX, 4
        JR eq, t_wp
        CPI IX, 5
        JR eq, t_host
        CPI IX, 6
        JR eq, t_fuel
        RET
t_oob:  LD HL, -1
        LD8U A, (HL)
        RET
t_div0: LD DE, 0
        DIVU64 HL, HL, DE
        RET
t_depth: CALL t_depth
        RET
t_wp:   LD HL, 0x8000
        ST8 (HL), A
        RET
t_host: LD HL, 0
        LD DE, 1
        CTL
        RET
t_fuel: JR t_fuel
