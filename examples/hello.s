; hello.s: print a greeting with the OUT primitive.
;   OUT writes DE bytes (low 32 bits) starting at address HL to the guest's output.

        PUBLIC main

greeting:   DB "Hello, world!", 10      ; data lives at 0x1000 by default
GREETING_LEN EQU 14

main:   LD HL, greeting                 ; address of the bytes
        LD DE, GREETING_LEN             ; how many
        OUT
        RET                             ; RET with an empty call stack ends the run
