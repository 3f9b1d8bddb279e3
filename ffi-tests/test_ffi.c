/*
 * Tests of every function of the C ABI, against digests computed by `openssl dgst` (see
 * run.sh, which makes the inputs and expected.txt).
 *
 *   test_ffi DATA_DIR [--quick]
 *
 * Prints "PASS name" or "FAIL name" per test; exits 1 when any failed. --quick (the
 * valgrind run) skips the repetitions that only add time under an instrumented CPU.
 */
#define _GNU_SOURCE
#include "diffid.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef CARGO_VERSION
#error "build with -DCARGO_VERSION='\"x.y.z\"' (the version in Cargo.toml)"
#endif

/* ---- Test harness ---------------------------------------------------------------------- */

static int checks_failed; /* in the current test */
static int tests_failed;
static int quick;
static const char *data_dir;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "  %s:%d: %s\n", __FILE__, __LINE__, #cond);                    \
            checks_failed++;                                                                \
        }                                                                                   \
    } while (0)

#define CHECK_STR(got, want) check_str(__FILE__, __LINE__, #got, (got), (want))
#define CHECK_CODE(got, want) check_code(__FILE__, __LINE__, #got, (got), (want))

static void check_str(const char *file, int line, const char *expr, const char *got,
                      const char *want) {
    if (got == NULL && want == NULL)
        return;
    if (got == NULL || want == NULL || strcmp(got, want) != 0) {
        fprintf(stderr, "  %s:%d: %s is \"%s\", want \"%s\"\n", file, line, expr,
                got ? got : "(NULL)", want ? want : "(NULL)");
        checks_failed++;
    }
}

static void check_code(const char *file, int line, const char *expr, diffid_code got,
                       diffid_code want) {
    if (got != want) {
        const char *g = diffid_code_name(got), *w = diffid_code_name(want);
        fprintf(stderr, "  %s:%d: %s is %u (%s), want %u (%s)\n", file, line, expr,
                (unsigned)got, g ? g : "?", (unsigned)want, w ? w : "?");
        checks_failed++;
    }
}

static void run(const char *name, void (*test)(void)) {
    checks_failed = 0;
    test();
    printf("%s %s\n", checks_failed ? "FAIL" : "PASS", name);
    fflush(stdout);
    if (checks_failed)
        tests_failed++;
}

/* ---- Inputs ------------------------------------------------------------------------------ */

typedef struct {
    char name[64], path[4096], format[16], media[128];
    char blob256[80], blob512[160], diff256[80], diff512[160];
    uint64_t blob_size, diff_size, entries;
    int is_tar;
} layer;

enum { MAX_LAYERS = 32 };
static layer layers[MAX_LAYERS];
static int n_layers;
static layer with_options[MAX_LAYERS];
static int n_with_options;

static int load(const char *file, layer *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, file);
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(2);
    }
    int n = 0;
    layer l;
    while (n < MAX_LAYERS &&
           fscanf(f, "%63s %4095s %15s %127s %79s %159s %" SCNu64 " %79s %159s %" SCNu64
                     " %" SCNu64 " %d",
                  l.name, l.path, l.format, l.media, l.blob256, l.blob512, &l.blob_size,
                  l.diff256, l.diff512, &l.diff_size, &l.entries, &l.is_tar) == 12)
        out[n++] = l;
    fclose(f);
    return n;
}

static const layer *find(const layer *set, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(set[i].name, name) == 0)
            return &set[i];
    fprintf(stderr, "no input named %s\n", name);
    exit(2);
}

static const layer *input(const char *name) { return find(layers, n_layers, name); }

/* Under valgrind (--quick) one large layer is enough to run the worker threads. */
static int skipped(const layer *l) {
    return quick && strncmp(l->name, "layer.", 6) == 0 && strcmp(l->name, "layer.tar.gz") != 0;
}

static char *data_path(const char *name) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, name);
    return path;
}

static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static diffid_format format_number(const char *name) {
    if (strcmp(name, "gzip") == 0)
        return DIFFID_FORMAT_GZIP;
    if (strcmp(name, "bzip2") == 0)
        return DIFFID_FORMAT_BZIP2;
    if (strcmp(name, "xz") == 0)
        return DIFFID_FORMAT_XZ;
    if (strcmp(name, "zstd") == 0)
        return DIFFID_FORMAT_ZSTD;
    return DIFFID_FORMAT_NONE;
}

/* Everything a successful result must say about `l`. */
static void check_ok(const diffid_result *r, const layer *l, diffid_algorithm alg) {
    CHECK(r != NULL);
    if (!r)
        return;
    CHECK_CODE(diffid_result_code(r), DIFFID_OK);
    CHECK_STR(diffid_result_error(r), NULL);
    if (alg == DIFFID_ALGORITHM_SHA256) {
        CHECK_STR(diffid_result_blob_digest(r), l->blob256);
        CHECK_STR(diffid_result_diff_id(r), l->diff256);
    } else if (alg == DIFFID_ALGORITHM_SHA512) {
        CHECK_STR(diffid_result_blob_digest(r), l->blob512);
        CHECK_STR(diffid_result_diff_id(r), l->diff512);
    }
    CHECK(diffid_result_blob_size(r) == l->blob_size);
    CHECK(diffid_result_diff_size(r) == l->diff_size);
    CHECK(diffid_result_format(r) == format_number(l->format));
    CHECK_STR(diffid_result_format_name(r), l->format);
    CHECK_STR(diffid_result_media_type(r), l->media);
    if (l->is_tar) {
        CHECK(diffid_result_tar_valid(r));
        CHECK(diffid_result_tar_entries(r) == l->entries);
        CHECK(diffid_result_tar_end_marker(r));
        CHECK_STR(diffid_result_tar_error(r), NULL);
    }
}

/* Everything an error result must say: the code, a message, and no digests. */
static void check_err(const diffid_result *r, diffid_code want) {
    CHECK(r != NULL);
    if (!r)
        return;
    CHECK_CODE(diffid_result_code(r), want);
    const char *msg = diffid_result_error(r);
    CHECK(msg != NULL && msg[0] != '\0');
    CHECK(diffid_result_blob_digest(r) == NULL);
    CHECK(diffid_result_diff_id(r) == NULL);
    CHECK(diffid_result_media_type(r) == NULL);
    CHECK(diffid_result_blob_size(r) == 0);
    CHECK(diffid_result_diff_size(r) == 0);
    CHECK(!diffid_result_tar_valid(r));
    CHECK(diffid_result_tar_error(r) == NULL);
}

static diffid_options *options_with(diffid_algorithm alg, uint32_t threads) {
    diffid_options *o = NULL;
    CHECK_CODE(diffid_options_new(&o), DIFFID_OK);
    CHECK_CODE(diffid_options_set_algorithm(o, alg), DIFFID_OK);
    CHECK_CODE(diffid_options_set_threads(o, threads), DIFFID_OK);
    return o;
}

/* Streams `data` in pieces whose sizes cycle through `pieces`. */
static diffid_result *stream_pieces(const uint8_t *data, size_t len, const diffid_options *o,
                                    const size_t *pieces, size_t n_pieces) {
    diffid_stream *s = NULL;
    CHECK_CODE(diffid_stream_new(o, &s), DIFFID_OK);
    size_t off = 0;
    for (size_t i = 0; off < len; i++) {
        size_t n = pieces[i % n_pieces];
        if (n > len - off)
            n = len - off;
        CHECK_CODE(diffid_stream_write(s, data + off, n), DIFFID_OK);
        off += n;
    }
    diffid_result *r = NULL;
    diffid_stream_finish(s, &r);
    diffid_stream_free(s);
    return r;
}

/* ---- Tests ----------------------------------------------------------------------------- */

static void test_version(void) {
    const char *v = diffid_version();
    CHECK_STR(v, CARGO_VERSION);
    char macros[64];
    snprintf(macros, sizeof macros, "%d.%d.%d", DIFFID_VERSION_MAJOR, DIFFID_VERSION_MINOR,
             DIFFID_VERSION_PATCH);
    CHECK_STR(macros, CARGO_VERSION);
    CHECK(diffid_version() == v); /* static */
}

static void test_code_names(void) {
    static const char *names[] = {"ok",          "invalid_argument", "io",
                                  "corrupt",     "truncated",        "trailing_data",
                                  "unsupported", "limit_exceeded",   "cancelled",
                                  "invalid_tar", "misuse",           "internal"};
    static const diffid_code codes[] = {
        DIFFID_OK,           DIFFID_INVALID_ARGUMENT, DIFFID_IO,          DIFFID_CORRUPT,
        DIFFID_TRUNCATED,    DIFFID_TRAILING_DATA,    DIFFID_UNSUPPORTED, DIFFID_LIMIT_EXCEEDED,
        DIFFID_CANCELLED,    DIFFID_INVALID_TAR,      DIFFID_MISUSE,      DIFFID_INTERNAL};
    for (unsigned i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        CHECK((unsigned)codes[i] == i); /* the numbers are fixed */
        CHECK_STR(diffid_code_name(codes[i]), names[i]);
    }
    CHECK(diffid_code_name((diffid_code)12) == NULL);
    CHECK(diffid_code_name((diffid_code)0xffffffffu) == NULL);
    CHECK(sizeof(diffid_code) == 4 && sizeof(diffid_format) == 4 &&
          sizeof(diffid_algorithm) == 4);
    CHECK(DIFFID_ALGORITHM_SHA256 == 0 && DIFFID_ALGORITHM_SHA512 == 1 &&
          DIFFID_ALGORITHM_BLAKE3 == 2);
    CHECK(DIFFID_FORMAT_NONE == 0 && DIFFID_FORMAT_GZIP == 1 && DIFFID_FORMAT_BZIP2 == 2 &&
          DIFFID_FORMAT_XZ == 3 && DIFFID_FORMAT_ZSTD == 4);
}

static void test_options(void) {
    diffid_options *o = NULL;
    CHECK_CODE(diffid_options_new(&o), DIFFID_OK);
    CHECK(o != NULL);
    CHECK_CODE(diffid_options_set_algorithm(o, DIFFID_ALGORITHM_SHA256), DIFFID_OK);
    CHECK_CODE(diffid_options_set_algorithm(o, DIFFID_ALGORITHM_SHA512), DIFFID_OK);
    CHECK_CODE(diffid_options_set_algorithm(o, DIFFID_ALGORITHM_BLAKE3), DIFFID_OK);
    CHECK_CODE(diffid_options_set_algorithm(o, (diffid_algorithm)3), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_options_set_algorithm(o, (diffid_algorithm)0xffffffffu),
               DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_options_set_lenient_gzip(o, true), DIFFID_OK);
    CHECK_CODE(diffid_options_set_lenient_gzip(o, false), DIFFID_OK);
    CHECK_CODE(diffid_options_set_full_xz(o, true), DIFFID_OK);
    CHECK_CODE(diffid_options_set_max_size(o, 0), DIFFID_OK);
    CHECK_CODE(diffid_options_set_max_size(o, UINT64_MAX), DIFFID_OK);
    CHECK_CODE(diffid_options_set_memory_limit(o, 0), DIFFID_OK);
    CHECK_CODE(diffid_options_set_memory_limit(o, 1u << 20), DIFFID_OK);
    CHECK_CODE(diffid_options_set_threads(o, 0), DIFFID_OK);
    CHECK_CODE(diffid_options_set_threads(o, 3), DIFFID_OK);
    CHECK_CODE(diffid_options_set_require_tar(o, true), DIFFID_OK);
    diffid_options_free(o);

    /* The rejected algorithm changed nothing: still BLAKE3 after a bad value. */
    CHECK_CODE(diffid_options_new(&o), DIFFID_OK);
    CHECK_CODE(diffid_options_set_algorithm(o, DIFFID_ALGORITHM_SHA512), DIFFID_OK);
    CHECK_CODE(diffid_options_set_algorithm(o, (diffid_algorithm)7), DIFFID_INVALID_ARGUMENT);
    diffid_result *r = NULL;
    const layer *l = input("small.tar.gz");
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK);
    check_ok(r, l, DIFFID_ALGORITHM_SHA512);
    diffid_result_free(r);
    diffid_options_free(o);
}

static void test_digest_file(void) {
    for (int i = 0; i < n_layers; i++) {
        if (skipped(&layers[i]))
            continue;
        diffid_result *r = NULL;
        diffid_code c = diffid_digest_file(layers[i].path, NULL, &r);
        CHECK_CODE(c, DIFFID_OK);
        check_ok(r, &layers[i], DIFFID_ALGORITHM_SHA256);
        if (checks_failed)
            fprintf(stderr, "  (input %s)\n", layers[i].name);
        diffid_result_free(r);
    }
}

static void test_digest_fd(void) {
    for (int i = 0; i < n_layers; i++) {
        if (skipped(&layers[i]))
            continue;
        int fd = open(layers[i].path, O_RDONLY);
        CHECK(fd >= 0);
        diffid_result *r = NULL;
        CHECK_CODE(diffid_digest_fd(fd, NULL, &r), DIFFID_OK);
        check_ok(r, &layers[i], DIFFID_ALGORITHM_SHA256);
        diffid_result_free(r);
        /* Read to the end, and still open. */
        CHECK(fcntl(fd, F_GETFD) != -1);
        CHECK(lseek(fd, 0, SEEK_CUR) == (off_t)layers[i].blob_size);
        close(fd);
    }
}

struct pipe_feed {
    int fd;
    const uint8_t *data;
    size_t len;
};

static void *feed_pipe(void *arg) {
    struct pipe_feed *p = arg;
    size_t off = 0;
    while (off < p->len) {
        size_t n = p->len - off < 3000 ? p->len - off : 3000; /* short, odd writes */
        ssize_t w = write(p->fd, p->data + off, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(p->fd);
    return NULL;
}

static void test_digest_fd_pipe(void) {
    const char *names[] = {"small.tar.zst", "layer.tar.gz"};
    for (unsigned i = 0; i < (quick ? 1u : 2u); i++) {
        const layer *l = input(names[i]);
        size_t len;
        uint8_t *data = read_all(l->path, &len);
        int fds[2];
        CHECK(pipe(fds) == 0);
        struct pipe_feed feed = {fds[1], data, len};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, feed_pipe, &feed) == 0);
        diffid_result *r = NULL;
        CHECK_CODE(diffid_digest_fd(fds[0], NULL, &r), DIFFID_OK);
        check_ok(r, l, DIFFID_ALGORITHM_SHA256);
        diffid_result_free(r);
        pthread_join(t, NULL);
        close(fds[0]);
        free(data);
    }
}

static void test_digest_buffer(void) {
    for (int i = 0; i < n_layers; i++) {
        if (skipped(&layers[i]))
            continue;
        size_t len;
        uint8_t *data = read_all(layers[i].path, &len);
        diffid_result *r = NULL;
        CHECK_CODE(diffid_digest_buffer(data, len, NULL, &r), DIFFID_OK);
        check_ok(r, &layers[i], DIFFID_ALGORITHM_SHA256);
        diffid_result_free(r);
        free(data);
    }
    /* NULL with length 0 is the empty blob. */
    diffid_result *r = NULL;
    CHECK_CODE(diffid_digest_buffer(NULL, 0, NULL, &r), DIFFID_OK);
    check_ok(r, input("empty"), DIFFID_ALGORITHM_SHA256);
    diffid_result_free(r);
}

static void test_stream_pieces(void) {
    static const size_t pieces[] = {1, 7, 4093, 65537, 512 * 1024 + 3, 100, 1 << 20};
    const size_t n = sizeof pieces / sizeof pieces[0];
    for (int i = 0; i < n_layers; i++) {
        if (skipped(&layers[i]))
            continue;
        size_t len;
        uint8_t *data = read_all(layers[i].path, &len);
        /* Odd pieces, and the whole blob in one write. */
        diffid_result *r = stream_pieces(data, len, NULL, pieces, n);
        check_ok(r, &layers[i], DIFFID_ALGORITHM_SHA256);
        diffid_result_free(r);
        size_t whole = len ? len : 1;
        r = stream_pieces(data, len, NULL, &whole, 1);
        check_ok(r, &layers[i], DIFFID_ALGORITHM_SHA256);
        diffid_result_free(r);
        free(data);
        if (checks_failed)
            fprintf(stderr, "  (input %s)\n", layers[i].name);
    }
}

static void test_threads_agree(void) {
    static const uint32_t threads[] = {1, 2, 3, 8, 0};
    const char *names[] = {"layer.tar.xz", "layer.tar.bz2", "layer.tar"};
    for (unsigned k = 0; k < (quick ? 1u : 3u); k++) {
        const layer *l = input(names[k]);
        for (unsigned i = 0; i < sizeof threads / sizeof threads[0]; i++) {
            if (quick && i > 1)
                break;
            diffid_options *o = options_with(DIFFID_ALGORITHM_SHA256, threads[i]);
            diffid_result *r = NULL;
            CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK);
            check_ok(r, l, DIFFID_ALGORITHM_SHA256);
            diffid_result_free(r);
            diffid_options_free(o);
        }
    }
}

static int is_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr("0123456789abcdef", s[i]))
            return 0;
    return s[n] == '\0';
}

static void test_algorithms(void) {
    const layer *l = input(quick ? "small.tar.zst" : "layer.tar.zst");
    diffid_options *o = options_with(DIFFID_ALGORITHM_SHA512, 0);
    diffid_result *r = NULL;
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK);
    check_ok(r, l, DIFFID_ALGORITHM_SHA512);
    diffid_result_free(r);
    diffid_options_free(o);

    /* No BLAKE3 reference on the system: the form, and file, buffer and stream agree. */
    o = options_with(DIFFID_ALGORITHM_BLAKE3, 0);
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK);
    check_ok(r, l, DIFFID_ALGORITHM_BLAKE3);
    const char *b = diffid_result_blob_digest(r), *d = diffid_result_diff_id(r);
    CHECK(b && strncmp(b, "blake3:", 7) == 0 && is_hex(b + 7, 64));
    CHECK(d && strncmp(d, "blake3:", 7) == 0 && is_hex(d + 7, 64));
    size_t len;
    uint8_t *data = read_all(l->path, &len);
    static const size_t piece = 10007;
    diffid_result *r2 = stream_pieces(data, len, o, &piece, 1);
    CHECK_STR(diffid_result_blob_digest(r2), b);
    CHECK_STR(diffid_result_diff_id(r2), d);
    diffid_result_free(r2);
    free(data);
    diffid_result_free(r);
    diffid_options_free(o);
}

/* An input that fails by default and succeeds with one option. */
static void check_option(const char *name, diffid_code by_default,
                         diffid_code (*set)(diffid_options *, bool)) {
    const layer *l = find(with_options, n_with_options, name);
    diffid_result *r = NULL;
    CHECK_CODE(diffid_digest_file(l->path, NULL, &r), by_default);
    check_err(r, by_default);
    diffid_result_free(r);
    diffid_options *o = NULL;
    CHECK_CODE(diffid_options_new(&o), DIFFID_OK);
    CHECK_CODE(set(o, true), DIFFID_OK);
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK);
    check_ok(r, l, DIFFID_ALGORITHM_SHA256);
    diffid_result_free(r);
    CHECK_CODE(set(o, false), DIFFID_OK);
    CHECK_CODE(diffid_digest_file(l->path, o, &r), by_default);
    diffid_result_free(r);
    diffid_options_free(o);
}

static void test_lenient_gzip(void) {
    check_option("trailing.gz", DIFFID_TRAILING_DATA, diffid_options_set_lenient_gzip);
    diffid_result *r = NULL;
    diffid_digest_file(find(with_options, n_with_options, "trailing.gz")->path, NULL, &r);
    CHECK_STR(diffid_result_format_name(r), "gzip");
    diffid_result_free(r);
}

static void test_full_xz(void) {
    check_option("bcj.xz", DIFFID_UNSUPPORTED, diffid_options_set_full_xz);
}

static void test_max_size(void) {
    const layer *l = input("layer.tar.gz");
    diffid_options *o = NULL;
    CHECK_CODE(diffid_options_new(&o), DIFFID_OK);
    CHECK_CODE(diffid_options_set_max_size(o, 100000), DIFFID_OK);
    diffid_result *r = NULL;
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_LIMIT_EXCEEDED);
    check_err(r, DIFFID_LIMIT_EXCEEDED);
    diffid_result_free(r);
    CHECK_CODE(diffid_options_set_max_size(o, l->diff_size), DIFFID_OK); /* exactly fits */
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK);
    check_ok(r, l, DIFFID_ALGORITHM_SHA256);
    diffid_result_free(r);
    CHECK_CODE(diffid_options_set_max_size(o, 0), DIFFID_OK); /* no limit */
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK);
    diffid_result_free(r);
    diffid_options_free(o);
}

static void test_memory_limit(void) {
    const layer *l = find(with_options, n_with_options, "bigdict.xz"); /* 64 MiB dict */
    diffid_result *r = NULL;
    CHECK_CODE(diffid_digest_file(l->path, NULL, &r), DIFFID_OK);
    check_ok(r, l, DIFFID_ALGORITHM_SHA256);
    diffid_result_free(r);
    diffid_options *o = NULL;
    CHECK_CODE(diffid_options_new(&o), DIFFID_OK);
    CHECK_CODE(diffid_options_set_memory_limit(o, 1u << 20), DIFFID_OK);
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_LIMIT_EXCEEDED);
    check_err(r, DIFFID_LIMIT_EXCEEDED);
    diffid_result_free(r);
    CHECK_CODE(diffid_options_set_memory_limit(o, 0), DIFFID_OK); /* back to the default */
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK);
    diffid_result_free(r);
    diffid_options_free(o);
}

static void test_tar_verdict(void) {
    /* Not a tar archive: digests and a verdict by default, an error with require_tar. */
    const char *path = data_path("notar.gz");
    diffid_result *r = NULL;
    CHECK_CODE(diffid_digest_file(path, NULL, &r), DIFFID_OK);
    CHECK(diffid_result_blob_digest(r) != NULL);
    CHECK(diffid_result_diff_id(r) != NULL);
    CHECK(!diffid_result_tar_valid(r));
    CHECK(!diffid_result_tar_end_marker(r));
    const char *why = diffid_result_tar_error(r);
    CHECK(why != NULL && why[0] != '\0');
    diffid_result_free(r);
    diffid_options *o = NULL;
    CHECK_CODE(diffid_options_new(&o), DIFFID_OK);
    CHECK_CODE(diffid_options_set_require_tar(o, true), DIFFID_OK);
    CHECK_CODE(diffid_digest_file(path, o, &r), DIFFID_INVALID_TAR);
    check_err(r, DIFFID_INVALID_TAR);
    diffid_result_free(r);
    /* A real tar passes with require_tar. */
    const layer *l = input("layer.tar.bz2");
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK);
    check_ok(r, l, DIFFID_ALGORITHM_SHA256);
    diffid_result_free(r);
    diffid_options_free(o);
}

static void test_bad_input(void) {
    diffid_result *r = NULL;
    CHECK_CODE(diffid_digest_file(data_path("corrupt.gz"), NULL, &r), DIFFID_CORRUPT);
    check_err(r, DIFFID_CORRUPT);
    CHECK_STR(diffid_result_format_name(r), "gzip");
    CHECK(diffid_result_format(r) == DIFFID_FORMAT_GZIP);
    diffid_result_free(r);

    CHECK_CODE(diffid_digest_file(data_path("truncated.xz"), NULL, &r), DIFFID_TRUNCATED);
    check_err(r, DIFFID_TRUNCATED);
    CHECK_STR(diffid_result_format_name(r), "xz");
    diffid_result_free(r);

    /* The same errors through a stream, a buffer and a descriptor. */
    size_t len;
    uint8_t *data = read_all(data_path("corrupt.gz"), &len);
    CHECK_CODE(diffid_digest_buffer(data, len, NULL, &r), DIFFID_CORRUPT);
    check_err(r, DIFFID_CORRUPT);
    diffid_result_free(r);
    static const size_t piece = 65536;
    r = stream_pieces(data, len, NULL, &piece, 1);
    check_err(r, DIFFID_CORRUPT);
    diffid_result_free(r);
    free(data);
    int fd = open(data_path("truncated.xz"), O_RDONLY);
    CHECK_CODE(diffid_digest_fd(fd, NULL, &r), DIFFID_TRUNCATED);
    check_err(r, DIFFID_TRUNCATED);
    diffid_result_free(r);
    close(fd);

    /* A file that does not exist: an I/O error naming it, format unknown. */
    CHECK_CODE(diffid_digest_file(data_path("no-such-file"), NULL, &r), DIFFID_IO);
    check_err(r, DIFFID_IO);
    CHECK(diffid_result_format_name(r) == NULL);
    CHECK(diffid_result_format(r) == DIFFID_FORMAT_NONE);
    const char *msg = diffid_result_error(r);
    CHECK(msg && strstr(msg, "no-such-file") != NULL);
    diffid_result_free(r);

    /* Descriptors: negative, closed, a directory. */
    CHECK_CODE(diffid_digest_fd(-1, NULL, &r), DIFFID_INVALID_ARGUMENT);
    check_err(r, DIFFID_INVALID_ARGUMENT);
    diffid_result_free(r);
    fd = open(data_path("small.tar"), O_RDONLY);
    close(fd);
    CHECK_CODE(diffid_digest_fd(fd, NULL, &r), DIFFID_IO);
    check_err(r, DIFFID_IO);
    diffid_result_free(r);
    CHECK_CODE(diffid_digest_file(data_dir, NULL, &r), DIFFID_IO);
    check_err(r, DIFFID_IO);
    diffid_result_free(r);
}

static void test_error_offset(void) {
    /* The offset of the fault, as a field: corrupt.gz has its trailer's CRC flipped (the
     * trailer is the last 8 bytes), truncated.xz ends in the middle of a block (the fault is
     * where the input ends). */
    diffid_result *r = NULL;
    size_t len;
    uint8_t *data = read_all(data_path("corrupt.gz"), &len);
    CHECK_CODE(diffid_digest_buffer(data, len, NULL, &r), DIFFID_CORRUPT);
    CHECK(diffid_result_error_offset(r) == (uint64_t)len - 8);
    diffid_result_free(r);
    free(data);
    data = read_all(data_path("truncated.xz"), &len);
    CHECK_CODE(diffid_digest_buffer(data, len, NULL, &r), DIFFID_TRUNCATED);
    CHECK(diffid_result_error_offset(r) == (uint64_t)len);
    diffid_result_free(r);
    free(data);
    /* No place in the input: success, a missing file, NULL. */
    const layer *l = input("small.tar.gz");
    CHECK_CODE(diffid_digest_file(l->path, NULL, &r), DIFFID_OK);
    CHECK(diffid_result_error_offset(r) == DIFFID_OFFSET_UNKNOWN);
    diffid_result_free(r);
    CHECK_CODE(diffid_digest_file(data_path("no-such-file"), NULL, &r), DIFFID_IO);
    CHECK(diffid_result_error_offset(r) == DIFFID_OFFSET_UNKNOWN);
    diffid_result_free(r);
    CHECK(diffid_result_error_offset(NULL) == DIFFID_OFFSET_UNKNOWN);
}

static void test_error_format(void) {
    /* An error found after the first bytes were read keeps the format, "none" included. */
    diffid_options *o = NULL;
    diffid_result *r = NULL;
    CHECK_CODE(diffid_options_new(&o), DIFFID_OK);
    CHECK_CODE(diffid_options_set_require_tar(o, true), DIFFID_OK);
    CHECK_CODE(diffid_digest_file(data_path("notar.gz"), o, &r), DIFFID_INVALID_TAR);
    CHECK_STR(diffid_result_format_name(r), "gzip");
    diffid_result_free(r);
    static const uint8_t text[] = "not a tar archive, not compressed either\n";
    CHECK_CODE(diffid_digest_buffer(text, sizeof text - 1, o, &r), DIFFID_INVALID_TAR);
    CHECK_STR(diffid_result_format_name(r), "none");
    CHECK(diffid_result_format(r) == DIFFID_FORMAT_NONE);
    diffid_result_free(r);
    CHECK_CODE(diffid_options_set_require_tar(o, false), DIFFID_OK);
    CHECK_CODE(diffid_options_set_max_size(o, 4), DIFFID_OK);
    CHECK_CODE(diffid_digest_buffer(text, sizeof text - 1, o, &r), DIFFID_LIMIT_EXCEEDED);
    CHECK_STR(diffid_result_format_name(r), "none");
    diffid_result_free(r);
    diffid_options_free(o);
}

static void test_warnings(void) {
    diffid_result *r = NULL;
    /* A plain layer: none. */
    const layer *l = input("small.tar.gz");
    CHECK_CODE(diffid_digest_file(l->path, NULL, &r), DIFFID_OK);
    CHECK(diffid_result_warning_count(r) == 0);
    CHECK(diffid_result_warning(r, 0) == NULL);
    CHECK(diffid_result_warning_code(r, 0) == NULL);
    diffid_result_free(r);
    /* Empty input: an empty layer. */
    CHECK_CODE(diffid_digest_buffer(NULL, 0, NULL, &r), DIFFID_OK);
    CHECK(diffid_result_warning_count(r) == 1);
    CHECK_STR(diffid_result_warning_code(r, 0), "empty_layer");
    const char *msg = diffid_result_warning(r, 0);
    CHECK(msg && strstr(msg, "empty layer") != NULL);
    CHECK(diffid_result_warning(r, 1) == NULL);
    diffid_result_free(r);
    /* A zstd frame behind a skippable frame (as pzstd writes): format none, and a warning. */
    static const uint8_t pz[] = {0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4,
                                 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x01, 0x00, 0x00};
    CHECK_CODE(diffid_digest_buffer(pz, sizeof pz, NULL, &r), DIFFID_OK);
    CHECK(diffid_result_format(r) == DIFFID_FORMAT_NONE);
    CHECK(diffid_result_warning_count(r) >= 1);
    CHECK_STR(diffid_result_warning_code(r, 0), "compressed_after_skippable_frame");
    diffid_result_free(r);
    /* Data after the end marker: small.tar and more bytes. */
    size_t len;
    uint8_t *data = read_all(data_path("small.tar"), &len);
    uint8_t *more = malloc(len + 5);
    memcpy(more, data, len);
    memcpy(more + len, "extra", 5);
    CHECK_CODE(diffid_digest_buffer(more, len + 5, NULL, &r), DIFFID_OK);
    CHECK(diffid_result_warning_count(r) == 1);
    CHECK_STR(diffid_result_warning_code(r, 0), "data_after_end_marker");
    diffid_result_free(r);
    free(more);
    free(data);
    /* NULL and error results have none. */
    CHECK(diffid_result_warning_count(NULL) == 0);
    CHECK(diffid_result_warning(NULL, 0) == NULL);
    CHECK(diffid_result_warning_code(NULL, 0) == NULL);
    CHECK_CODE(diffid_digest_file(data_path("corrupt.gz"), NULL, &r), DIFFID_CORRUPT);
    CHECK(diffid_result_warning_count(r) == 0);
    diffid_result_free(r);
}

static void test_null_arguments(void) {
    const layer *l = input("small.tar.gz");
    diffid_result *r = NULL;
    diffid_options *o = NULL;
    diffid_stream *s = NULL;
    static const uint8_t byte = 0;

    CHECK_CODE(diffid_options_new(NULL), DIFFID_INVALID_ARGUMENT);
    diffid_options_free(NULL);
    CHECK_CODE(diffid_options_set_algorithm(NULL, DIFFID_ALGORITHM_SHA256),
               DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_options_set_lenient_gzip(NULL, true), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_options_set_full_xz(NULL, true), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_options_set_max_size(NULL, 1), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_options_set_memory_limit(NULL, 1), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_options_set_threads(NULL, 1), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_options_set_require_tar(NULL, true), DIFFID_INVALID_ARGUMENT);

    /* NULL input with an out: an error result. NULL out: no result, nothing done. */
    CHECK_CODE(diffid_digest_file(NULL, NULL, &r), DIFFID_INVALID_ARGUMENT);
    check_err(r, DIFFID_INVALID_ARGUMENT);
    diffid_result_free(r);
    CHECK_CODE(diffid_digest_file(l->path, NULL, NULL), DIFFID_INVALID_ARGUMENT);
    int fd = open(l->path, O_RDONLY);
    CHECK_CODE(diffid_digest_fd(fd, NULL, NULL), DIFFID_INVALID_ARGUMENT);
    CHECK(lseek(fd, 0, SEEK_CUR) == 0); /* not read */
    close(fd);
    CHECK_CODE(diffid_digest_buffer(NULL, 1, NULL, &r), DIFFID_INVALID_ARGUMENT);
    check_err(r, DIFFID_INVALID_ARGUMENT);
    diffid_result_free(r);
    CHECK_CODE(diffid_digest_buffer(&byte, 1, NULL, NULL), DIFFID_INVALID_ARGUMENT);

    CHECK_CODE(diffid_stream_new(NULL, NULL), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_stream_write(NULL, &byte, 1), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_stream_write(NULL, NULL, 0), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_stream_finish(NULL, &r), DIFFID_INVALID_ARGUMENT);
    check_err(r, DIFFID_INVALID_ARGUMENT);
    diffid_result_free(r);
    CHECK_CODE(diffid_stream_finish(NULL, NULL), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_stream_cancel(NULL), DIFFID_INVALID_ARGUMENT);
    diffid_stream_free(NULL);

    /* On a live stream: a NULL buffer and a NULL out change nothing. */
    CHECK_CODE(diffid_stream_new(NULL, &s), DIFFID_OK);
    CHECK_CODE(diffid_stream_write(s, NULL, 1), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_stream_write(s, NULL, 0), DIFFID_OK);
    size_t len;
    uint8_t *data = read_all(l->path, &len);
    CHECK_CODE(diffid_stream_write(s, data, len), DIFFID_OK);
    CHECK_CODE(diffid_stream_finish(s, NULL), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_stream_finish(s, &r), DIFFID_OK);
    check_ok(r, l, DIFFID_ALGORITHM_SHA256);
    diffid_result_free(r);
    diffid_stream_free(s);
    free(data);

    /* Accessors of a NULL result. */
    CHECK_CODE(diffid_result_code(NULL), DIFFID_INVALID_ARGUMENT);
    CHECK(diffid_result_error(NULL) == NULL);
    CHECK(diffid_result_blob_digest(NULL) == NULL);
    CHECK(diffid_result_blob_size(NULL) == 0);
    CHECK(diffid_result_diff_id(NULL) == NULL);
    CHECK(diffid_result_diff_size(NULL) == 0);
    CHECK(diffid_result_format(NULL) == DIFFID_FORMAT_NONE);
    CHECK(diffid_result_format_name(NULL) == NULL);
    CHECK(diffid_result_media_type(NULL) == NULL);
    CHECK(!diffid_result_tar_valid(NULL));
    CHECK(diffid_result_tar_entries(NULL) == 0);
    CHECK(!diffid_result_tar_end_marker(NULL));
    CHECK(diffid_result_tar_error(NULL) == NULL);
    diffid_result_free(NULL);
    (void)o;
}

static void test_misuse(void) {
    const layer *l = input("layer.tar.gz"); /* large: the stream runs worker threads */
    size_t len;
    uint8_t *data = read_all(l->path, &len);
    diffid_stream *s = NULL;
    CHECK_CODE(diffid_stream_new(NULL, &s), DIFFID_OK);
    CHECK_CODE(diffid_stream_write(s, data, len), DIFFID_OK);
    diffid_result *r = NULL;
    CHECK_CODE(diffid_stream_finish(s, &r), DIFFID_OK);
    check_ok(r, l, DIFFID_ALGORITHM_SHA256);
    diffid_result_free(r);
    /* Write after finish, finish twice. */
    CHECK_CODE(diffid_stream_write(s, data, 10), DIFFID_MISUSE);
    CHECK_CODE(diffid_stream_write(s, NULL, 0), DIFFID_MISUSE);
    CHECK_CODE(diffid_stream_finish(s, &r), DIFFID_MISUSE);
    check_err(r, DIFFID_MISUSE);
    diffid_result_free(r);
    CHECK_CODE(diffid_stream_cancel(s), DIFFID_OK); /* after finish: nothing */
    diffid_stream_free(s);

    /* A failed stream keeps failing the same way, and finish says why. */
    uint8_t *bad = read_all(data_path("corrupt.gz"), &len);
    CHECK_CODE(diffid_stream_new(NULL, &s), DIFFID_OK);
    /* The CRC is in the trailer: checked at the end, or by a worker already. */
    diffid_code c = diffid_stream_write(s, bad, len);
    CHECK(c == DIFFID_OK || c == DIFFID_CORRUPT);
    CHECK_CODE(diffid_stream_finish(s, &r), DIFFID_CORRUPT);
    check_err(r, DIFFID_CORRUPT);
    diffid_result_free(r);
    CHECK_CODE(diffid_stream_write(s, bad, 1), DIFFID_MISUSE);
    diffid_stream_free(s);

    /* Freed unfinished, with worker threads running: cancelled and joined, no leak. */
    CHECK_CODE(diffid_stream_new(NULL, &s), DIFFID_OK);
    CHECK_CODE(diffid_stream_write(s, data, len / 2), DIFFID_OK);
    diffid_stream_free(s);
    CHECK_CODE(diffid_stream_new(NULL, &s), DIFFID_OK);
    diffid_stream_free(s); /* never written */
    free(bad);
    free(data);
}

struct writer {
    diffid_stream *s;
    const uint8_t *buf;
    size_t len;
    size_t max_writes;
    atomic_int started;
    diffid_code last;
};

static void *write_until_error(void *arg) {
    struct writer *w = arg;
    diffid_code c = DIFFID_OK;
    for (size_t i = 0; i < w->max_writes && c == DIFFID_OK; i++) {
        c = diffid_stream_write(w->s, w->buf, w->len);
        atomic_store(&w->started, 1);
    }
    w->last = c;
    return NULL;
}

struct canceller {
    diffid_stream *s;
    atomic_int stop;
    atomic_long calls;
};

static void *cancel_repeatedly(void *arg) {
    struct canceller *c = arg;
    while (!atomic_load(&c->stop)) {
        if (diffid_stream_cancel(c->s) != DIFFID_OK)
            break;
        atomic_fetch_add(&c->calls, 1);
    }
    return NULL;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Cancels a stream from another thread while a writer thread is writing. */
static void cancel_during_writes(uint32_t threads, int hammer) {
    enum { PIECE = 256 * 1024 };
    uint8_t *zeros = calloc(1, PIECE); /* an endless uncompressed stream */
    diffid_options *o = options_with(DIFFID_ALGORITHM_SHA256, threads);
    diffid_stream *s = NULL;
    CHECK_CODE(diffid_stream_new(o, &s), DIFFID_OK);
    diffid_options_free(o); /* the stream copied them */
    /* 64 GiB at most: far longer than the test waits before cancelling. */
    struct writer w = {s, zeros, PIECE, (size_t)1 << 18, 0, DIFFID_OK};
    pthread_t t, h;
    CHECK(pthread_create(&t, NULL, write_until_error, &w) == 0);
    while (!atomic_load(&w.started))
        sleep_ms(1);
    sleep_ms(20);
    struct canceller c = {s, 0, 0};
    if (hammer) {
        CHECK(pthread_create(&h, NULL, cancel_repeatedly, &c) == 0);
        /* On a loaded machine the hammer may start late: let it cancel at least once. */
        while (atomic_load(&c.calls) == 0)
            sleep_ms(1);
    }
    CHECK_CODE(diffid_stream_cancel(s), DIFFID_OK);
    pthread_join(t, NULL);
    if (hammer) {
        atomic_store(&c.stop, 1);
        pthread_join(h, NULL);
        CHECK(atomic_load(&c.calls) > 0);
    }
    CHECK_CODE(w.last, DIFFID_CANCELLED);
    CHECK_CODE(diffid_stream_write(s, zeros, 1), DIFFID_CANCELLED);
    diffid_result *r = NULL;
    CHECK_CODE(diffid_stream_finish(s, &r), DIFFID_CANCELLED);
    check_err(r, DIFFID_CANCELLED);
    diffid_result_free(r);
    CHECK_CODE(diffid_stream_cancel(s), DIFFID_OK); /* twice, after finish: fine */
    diffid_stream_free(s);
    free(zeros);
}

static void test_cancel(void) {
    cancel_during_writes(0, 0); /* worker threads */
    cancel_during_writes(1, 0); /* everything on the writer's thread */
    cancel_during_writes(2, 1); /* with another thread cancelling over and over */

    /* Cancelled before any write. */
    diffid_stream *s = NULL;
    CHECK_CODE(diffid_stream_new(NULL, &s), DIFFID_OK);
    CHECK_CODE(diffid_stream_cancel(s), DIFFID_OK);
    CHECK_CODE(diffid_stream_cancel(s), DIFFID_OK);
    static const uint8_t b = 1;
    CHECK_CODE(diffid_stream_write(s, &b, 1), DIFFID_CANCELLED);
    diffid_result *r = NULL;
    CHECK_CODE(diffid_stream_finish(s, &r), DIFFID_CANCELLED);
    check_err(r, DIFFID_CANCELLED);
    diffid_result_free(r);
    diffid_stream_free(s);
}

struct digest_job {
    const layer *l;
    const diffid_options *o;
    int failures;
};

static void *digest_in_thread(void *arg) {
    struct digest_job *j = arg;
    for (int i = 0; i < (quick ? 1 : 3); i++) {
        diffid_result *r = NULL;
        if (diffid_digest_file(j->l->path, j->o, &r) != DIFFID_OK ||
            strcmp(diffid_result_blob_digest(r), j->l->blob256) != 0 ||
            strcmp(diffid_result_diff_id(r), j->l->diff256) != 0)
            j->failures++;
        diffid_result_free(r);
    }
    return NULL;
}

static void test_concurrent_digests(void) {
    enum { N = 8 };
    const char *names[] = {"layer.tar.gz", "small.tar.xz", "layer.tar.zst", "layer.tar"};
    diffid_options *o = options_with(DIFFID_ALGORITHM_SHA256, 2); /* shared, read-only */
    pthread_t t[N];
    struct digest_job jobs[N];
    int n = quick ? 2 : N;
    for (int i = 0; i < n; i++) {
        jobs[i] = (struct digest_job){input(names[i % 4]), o, 0};
        CHECK(pthread_create(&t[i], NULL, digest_in_thread, &jobs[i]) == 0);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        CHECK(jobs[i].failures == 0);
    }
    diffid_options_free(o);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DATA_DIR [--quick]\n", argv[0]);
        return 2;
    }
    data_dir = argv[1];
    quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
    n_layers = load("expected.txt", layers);
    n_with_options = load("options.txt", with_options);
    if (n_layers < 11 || n_with_options < 3) {
        fprintf(stderr, "expected.txt or options.txt is incomplete\n");
        return 2;
    }

    run("version", test_version);
    run("code_names", test_code_names);
    run("options", test_options);
    run("digest_file", test_digest_file);
    run("digest_fd", test_digest_fd);
    run("digest_fd_pipe", test_digest_fd_pipe);
    run("digest_buffer", test_digest_buffer);
    run("stream_pieces", test_stream_pieces);
    run("threads_agree", test_threads_agree);
    run("algorithms", test_algorithms);
    run("lenient_gzip", test_lenient_gzip);
    run("full_xz", test_full_xz);
    run("max_size", test_max_size);
    run("memory_limit", test_memory_limit);
    run("tar_verdict", test_tar_verdict);
    run("bad_input", test_bad_input);
    run("error_offset", test_error_offset);
    run("error_format", test_error_format);
    run("warnings", test_warnings);
    run("null_arguments", test_null_arguments);
    run("misuse", test_misuse);
    run("cancel", test_cancel);
    run("concurrent_digests", test_concurrent_digests);
    return tests_failed ? 1 : 0;
}
