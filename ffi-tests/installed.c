/* Built against the installed library through pkg-config (see run.sh):
 *   installed LAYER VERSION */
#include <diffid.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LAYER VERSION\n", argv[0]);
        return 2;
    }
    if (strcmp(diffid_version(), argv[2]) != 0) {
        fprintf(stderr, "library %s, want %s\n", diffid_version(), argv[2]);
        return 1;
    }
    diffid_stream *s = NULL;
    if (diffid_stream_new(NULL, &s) != DIFFID_OK)
        return 1;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (diffid_stream_write(s, buf, n) != DIFFID_OK)
            break;
    fclose(f);
    diffid_result *r = NULL;
    diffid_code c = diffid_stream_finish(s, &r);
    diffid_stream_free(s);
    if (c != DIFFID_OK)
        fprintf(stderr, "%s\n", diffid_result_error(r));
    else
        printf("%s %s %s\n", diffid_result_media_type(r), diffid_result_blob_digest(r),
               diffid_result_diff_id(r));
    diffid_result_free(r);
    return c == DIFFID_OK ? 0 : 1;
}
