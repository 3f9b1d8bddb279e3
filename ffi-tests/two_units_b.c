/* Second translation unit including diffid.h; see two_units_a.c. */
#include "diffid.h"
#include "diffid.h" /* and the include guard works */

#include <stdio.h>

int print_result(const diffid_result *r) {
    if (diffid_result_code(r) != DIFFID_OK) {
        fprintf(stderr, "%s\n", diffid_result_error(r));
        return 0;
    }
    printf("%s %s %s\n", diffid_result_format_name(r), diffid_result_blob_digest(r),
           diffid_result_diff_id(r));
    return 1;
}
