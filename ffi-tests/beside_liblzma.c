/* Linked with libdiffid.a and the system's liblzma in one program (scripts/packaging-test.sh):
 *   beside_liblzma LAYER.xz
 * prints the liblzma version this program's own lzma_* calls reach (the system's, because
 * libdiffid.a keeps its bundled liblzma local), then the layer's blob digest and DiffID as
 * diffid computes them with its own liblzma. */
#include <diffid.h>
#include <lzma.h>

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s LAYER.xz\n", argv[0]);
        return 2;
    }
    printf("%s\n", lzma_version_string());
    diffid_result *r = NULL;
    if (diffid_digest_file(argv[1], NULL, &r) != DIFFID_OK) {
        fprintf(stderr, "%s\n", diffid_result_error(r));
        diffid_result_free(r);
        return 1;
    }
    printf("%s %s\n", diffid_result_blob_digest(r), diffid_result_diff_id(r));
    diffid_result_free(r);
    return 0;
}
