/* The header under strict C99 and -pedantic: it must compile without a warning. */
#include "diffid.h"

#include <stdio.h>

int main(void) {
    diffid_code c = DIFFID_OK;
    diffid_format f = DIFFID_FORMAT_ZSTD;
    diffid_algorithm a = DIFFID_ALGORITHM_BLAKE3;
    printf("%s %u %u\n", diffid_code_name(c), (unsigned)f, (unsigned)a);
    return c == DIFFID_OK ? 0 : 1;
}
