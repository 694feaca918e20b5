; caps.s: copy the input to the output in capitals (the AOT example's first module).
;   The buffer comes from ALLOC; a subroutine capitalises each chunk in place.

        PUBLIC main

CHUNK   EQU 4096

main:   LD HL, CHUNK
        ALLOC                           ; HL = buffer address (0: no memory)
        CPI HL, 0
        JR eq, done
        MOV IX, HL                      ; IX = buffer
read:   MOV HL, IX
        LD DE, CHUNK
        IN                              ; HL = bytes read, 0 at the end
        CPI HL, 0
        JR eq, done
        ADD64 A, IX, HL                 ; A = end of the chunk
        CALL caps
        MOV HL, IX
        SUB64 DE, A, IX                 ; DE = length
        OUT                             ; write DE bytes from HL
        JR read
done:   RET

; caps: turn a-z into A-Z in the bytes from IX up to A (keeps A and IX)
caps:   MOV BC, IX                      ; BC = pointer
        LD DE, 32                       ; 'a' - 'A'
next:   CP BC, A
        JR geu, back
        LD8U HL, (BC)
        CPI HL, 'a'
        JR ltu, keep
        CPI HL, 'z'
        JR gtu, keep
        SUB HL, HL, DE
        ST8 (BC), HL
keep:   INC BC
        JR next
back:   RET
