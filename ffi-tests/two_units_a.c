/* The header in two translation units of one program: no definitions in it, so no
 * duplicate symbols at link time. This unit digests; two_units_b.c prints. */
#include "diffid.h"

#include <stdio.h>

int print_result(const diffid_result *r); /* two_units_b.c */

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s LAYER\n", argv[0]);
        return 2;
    }
    diffid_result *r = NULL;
    diffid_code c = diffid_digest_file(argv[1], NULL, &r);
    int ok = print_result(r) && c == DIFFID_OK;
    diffid_result_free(r);
    return ok ? 0 : 1;
}
