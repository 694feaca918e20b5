/* main.c: one C program running two zjit modules, each built with its own symbol
   prefix by `zjit compile --prefix` (see Makefile and docs/aot.md).

   It reads all of stdin, gives it to caps.s (prefix caps_), which writes it in
   capitals to stdout, then to lines.s (prefix lines_), which prints the number of
   lines. Both write stdout through the helper's default output handler. */
#include <stdio.h>
#include <stdlib.h>
#include "caps_module.h"
#include "lines_module.h"

/* All of stdin in one malloc'd block (*len bytes); NULL on error. */
static unsigned char *read_all(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        unsigned char *bigger = realloc(buf, cap * 2);
        if (bigger == NULL) free(buf);
        buf = bigger;
        cap *= 2;
    }
    if (buf == NULL || ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int main(void) {
    size_t len = 0;
    unsigned char *input = read_all(stdin, &len);
    caps_instance *caps = caps_instantiate();
    lines_instance *lines = lines_instantiate();
    if (input == NULL || caps == NULL || lines == NULL) {
        fprintf(stderr, "out of memory or unreadable input\n");
        return 1;
    }

    caps_set_input(caps, input, len);          /* instead of stdin, which is read already */
    caps_result c = caps_run(caps, "main", NULL, CAPS_DEFAULT_FUEL);
    if (c.status != CAPS_OK) {
        fprintf(stderr, "caps: status %d, trap %s at pc %llu\n", c.status, caps_trap_name(c.trap_kind),
                (unsigned long long)c.trap_pc);
        return 1;
    }

    lines_set_input(lines, input, len);
    lines_result l = lines_run(lines, "main", NULL, LINES_DEFAULT_FUEL);
    if (l.status != LINES_OK) {
        fprintf(stderr, "lines: status %d, trap %s at pc %llu\n", l.status, lines_trap_name(l.trap_kind),
                (unsigned long long)l.trap_pc);
        return 1;
    }
    /* lines.s printed the count and also returns it in HL */
    if (getenv("SHOW_HL") != NULL) fprintf(stderr, "HL = %llu\n", (unsigned long long)l.regs[LINES_REG_HL]);

    caps_free(caps);
    lines_free(lines);
    free(input);
    return 0;
}
