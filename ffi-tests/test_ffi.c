/*
 * Tests of every function of the C ABI, against digests computed by `openssl dgst` (see
 * run.sh, which makes the inputs and expected.txt).
 *
 *   test_ffi DATA_DIR [--quick | --layouts]
 *
 * Prints "PASS name" or "FAIL name" per test; exits 1 when any failed. --quick (the
 * valgrind run) skips the repetitions that only add time under an instrumented CPU;
 * --layouts runs only the stage-layout test (run.sh gives it a budget of 4 tokens).
 */
#define _GNU_SOURCE
#include "diffid.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
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
                                  "invalid_tar", "misuse",           "internal",
                                  "digest_mismatch"};
    static const diffid_code codes[] = {
        DIFFID_OK,           DIFFID_INVALID_ARGUMENT, DIFFID_IO,          DIFFID_CORRUPT,
        DIFFID_TRUNCATED,    DIFFID_TRAILING_DATA,    DIFFID_UNSUPPORTED, DIFFID_LIMIT_EXCEEDED,
        DIFFID_CANCELLED,    DIFFID_INVALID_TAR,      DIFFID_MISUSE,      DIFFID_INTERNAL,
        DIFFID_DIGEST_MISMATCH};
    for (unsigned i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        CHECK((unsigned)codes[i] == i); /* the numbers are fixed */
        CHECK_STR(diffid_code_name(codes[i]), names[i]);
    }
    CHECK(diffid_code_name((diffid_code)13) == NULL);
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

/* How many threads of this process named `name` (or, with `prefix`, whose name starts with it)
 * are running now (Linux: /proc/self/task). A thread that was joined may stay listed for a
 * moment while the kernel reaps it: its stat flags have PF_EXITING, and it is not counted. */
static int threads_named(const char *name, int prefix) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[512], stat[1024] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        /* "pid (comm) state ppid pgrp session tty_nr tpgid flags ...": comm may hold spaces
         * and parentheses, so the fields start after the last ')'. */
        char *open = strchr(stat, '('), *close = strrchr(stat, ')');
        if (!open || !close || close < open)
            continue;
        unsigned long long flags = 0;
        if (sscanf(close + 1, " %*c %*d %*d %*d %*d %*d %llu", &flags) != 1 || flags & 0x4)
            continue;
        size_t len = (size_t)(close - open - 1), want = strlen(name);
        if (prefix ? len >= want && strncmp(open + 1, name, want) == 0
                   : len == want && strncmp(open + 1, name, want) == 0)
            found++;
    }
    closedir(d);
    return found;
}

/* The worker threads of one layout: exactly one of each `names`, and no other diffid thread. */
typedef struct {
    uint32_t threads;
    const char *names[3];
} stage_layout;

static int layout_running(const stage_layout *s) {
    int n = 0;
    for (unsigned i = 0; i < 3 && s->names[i]; i++, n++)
        if (threads_named(s->names[i], 0) != 1)
            return 0;
    return threads_named("diffid-", 1) == n;
}

/* The stage threads of an input that does not split (gzip, one xz block), digests against
 * openssl: with 2 threads the decoder alone on one worker and both hashes on the other; with 3
 * and 4 the blob hash, the decoder and the DiffID stage on a thread each. run.sh runs this
 * with DIFFID_WORKERS=4, so that every layout gets its tokens on 2 cores too. */
static void test_layouts(void) {
    const char *names[] = {"layer.tar.gz", "layer.tar.xz"}; /* one xz block */
    static const stage_layout layouts[] = {
        {2, {"diffid-decode", "diffid-hashes", NULL}},
        {3, {"diffid-blob", "diffid-decode", "diffid-diff"}},
        {4, {"diffid-blob", "diffid-decode", "diffid-diff"}},
    };
    for (unsigned k = 0; k < 2; k++) {
        const layer *l = input(names[k]);
        size_t len;
        uint8_t *data = read_all(l->path, &len);
        for (unsigned i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
            diffid_options *o = options_with(DIFFID_ALGORITHM_SHA256, layouts[i].threads);
            diffid_stream *s = NULL;
            CHECK_CODE(diffid_stream_new(o, &s), DIFFID_OK);
            int seen = 0;
            for (size_t off = 0; off < len; off += 65536) {
                size_t n = len - off < 65536 ? len - off : 65536;
                CHECK_CODE(diffid_stream_write(s, data + off, n), DIFFID_OK);
                seen = seen || layout_running(&layouts[i]);
            }
            /* A thread is named by itself once the scheduler first runs it; on a loaded machine
             * every chunk can be queued before that. Every stage thread waits on its channel
             * until finish, so each gets named: wait for them (30 s at most) rather than race. */
            for (int ms = 0; !seen && ms < 30000; ms++) {
                nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
                seen = layout_running(&layouts[i]);
            }
            diffid_result *r = NULL;
            diffid_stream_finish(s, &r);
            diffid_stream_free(s);
            check_ok(r, l, DIFFID_ALGORITHM_SHA256);
            diffid_result_free(r);
            diffid_options_free(o);
            if (!seen)
                fprintf(stderr,
                        "  %s, %u threads: never exactly %s %s %s (%d diffid threads running)\n",
                        l->name, layouts[i].threads, layouts[i].names[0], layouts[i].names[1],
                        layouts[i].names[2] ? layouts[i].names[2] : "",
                        threads_named("diffid-", 1));
            CHECK(seen);
            CHECK(threads_named("diffid-", 1) == 0);
        }
        free(data);
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

    /* BLAKE3 against its official test vectors (input byte i is i % 251; the values are
     * those of BLAKE3's test_vectors.json, as computed by its C reference implementation),
     * in one buffer and in pieces through the worker threads. */
    static const struct {
        size_t len;
        const char *hex;
    } vectors[] = {
        {0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
        {1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
        {8193, "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b"},
        {102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"},
    };
    static uint8_t in[102400];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i % 251);
    o = options_with(DIFFID_ALGORITHM_BLAKE3, 0);
    for (unsigned i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char want[80];
        snprintf(want, sizeof want, "blake3:%s", vectors[i].hex);
        CHECK_CODE(diffid_digest_buffer(in, vectors[i].len, o, &r), DIFFID_OK);
        CHECK_STR(diffid_result_blob_digest(r), want);
        diffid_result_free(r);
        static const size_t piece = 1000;
        r = stream_pieces(in, vectors[i].len, o, &piece, 1);
        CHECK_STR(diffid_result_diff_id(r), want);
        diffid_result_free(r);
    }
    diffid_options_free(o);

    /* And a layer: the form, and file, buffer and stream agree. */
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

/* Expected digests: the references' digests pass; the DiffID expected as the blob digest
   (and the other way round) is DIFFID_DIGEST_MISMATCH with no digests, from a file and from a
   buffer; a string that is not a digest is refused without changing the options. */
static void test_expect_digests(void) {
    const layer *l = input(quick ? "small.tar.zst" : "layer.tar.zst");
    diffid_options *o = NULL;
    diffid_result *r = NULL;
    CHECK_CODE(diffid_options_new(&o), DIFFID_OK);
    CHECK_CODE(diffid_options_set_expect_blob_digest(o, l->blob256), DIFFID_OK);
    CHECK_CODE(diffid_options_set_expect_diff_id(o, l->diff256), DIFFID_OK);
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK);
    check_ok(r, l, DIFFID_ALGORITHM_SHA256);
    diffid_result_free(r);

    CHECK_CODE(diffid_options_set_expect_diff_id(o, "sha256:abc"), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_options_set_expect_diff_id(NULL, l->diff256), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_OK); /* unchanged */
    diffid_result_free(r);

    CHECK_CODE(diffid_options_set_expect_blob_digest(o, l->diff256), DIFFID_OK);
    CHECK_CODE(diffid_digest_file(l->path, o, &r), DIFFID_DIGEST_MISMATCH);
    check_err(r, DIFFID_DIGEST_MISMATCH);
    CHECK(diffid_result_blob_digest(r) == NULL);
    diffid_result_free(r);
    size_t len;
    uint8_t *data = read_all(l->path, &len);
    CHECK_CODE(diffid_options_set_expect_blob_digest(o, NULL), DIFFID_OK);
    CHECK_CODE(diffid_options_set_expect_diff_id(o, l->blob256), DIFFID_OK);
    CHECK_CODE(diffid_digest_buffer(data, len, o, &r), DIFFID_DIGEST_MISMATCH);
    check_err(r, DIFFID_DIGEST_MISMATCH);
    diffid_result_free(r);
    free(data);
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


/* ---- The decoding reader ----------------------------------------------------------------- */

#include <dirent.h>

/* Threads of this process named diffid-* (the reader's feeder, the workers, the decoders'
 * helpers), waiting up to 10 s for them to be gone: a joined thread may still be listed for
 * a moment. Returns how many are left. */
static int diffid_threads_left(void) {
    for (int tries = 0;; tries++) {
        int n = 0;
        DIR *d = opendir("/proc/self/task");
        if (!d)
            return -1;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[300], name[64] = "";
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
            FILE *f = fopen(path, "r");
            if (!f)
                continue;
            if (fgets(name, sizeof name, f) && strncmp(name, "diffid-", 7) == 0)
                n++;
            fclose(f);
        }
        closedir(d);
        if (n == 0 || tries >= 500)
            return n;
        sleep_ms(20);
    }
}

/* The uncompressed tar of a layer: layer.tar, small.tar, or the empty file. */
static uint8_t *decoded_of(const layer *l, size_t *len) {
    const char *tar = strncmp(l->name, "layer.", 6) == 0   ? "layer.tar"
                      : strncmp(l->name, "small.", 6) == 0 ? "small.tar"
                                                           : "empty";
    return read_all(data_path(tar), len);
}

/* Reads `r` to its end in reads of `cap` bytes into a growing buffer; returns the code that
 * ended it (DIFFID_OK: *n == 0 was seen). */
static diffid_code read_to_end(diffid_reader *r, size_t cap, uint8_t **out, size_t *len) {
    size_t size = 1 << 20;
    *out = malloc(size);
    *len = 0;
    uint8_t *buf = malloc(cap);
    diffid_code c;
    for (;;) {
        size_t n = 12345;
        c = diffid_reader_read(r, buf, cap, &n);
        if (c != DIFFID_OK) {
            CHECK(n == 0);
            break;
        }
        if (n == 0)
            break;
        CHECK(n <= cap);
        if (*len + n > size) {
            size *= 2;
            *out = realloc(*out, size);
        }
        memcpy(*out + *len, buf, n);
        *len += n;
    }
    free(buf);
    return c;
}

static void test_reader_fd(void) {
    const size_t caps[] = {1, 4096, 100003, 1 << 20};
    for (int i = 0; i < n_layers; i++) {
        const layer *l = &layers[i];
        if (skipped(l))
            continue;
        size_t want_len;
        uint8_t *want = decoded_of(l, &want_len);
        int fd = open(l->path, O_RDONLY);
        CHECK(fd >= 0);
        diffid_reader *r = NULL;
        CHECK_CODE(diffid_reader_new_fd(fd, NULL, &r), DIFFID_OK);
        uint8_t *got;
        size_t got_len;
        /* One-byte reads only on the small inputs. */
        size_t cap = caps[(size_t)i % 4];
        if (cap == 1 && l->diff_size > 100000)
            cap = 7;
        CHECK_CODE(read_to_end(r, cap, &got, &got_len), DIFFID_OK);
        CHECK(got_len == want_len && memcmp(got, want, want_len) == 0);
        diffid_result *res = NULL;
        CHECK_CODE(diffid_reader_finish(r, &res), DIFFID_OK);
        check_ok(res, l, DIFFID_ALGORITHM_SHA256);
        diffid_result_free(res);
        /* The end stays the end; finish again gives the same result. */
        uint8_t b;
        size_t n = 9;
        CHECK_CODE(diffid_reader_read(r, &b, 1, &n), DIFFID_OK);
        CHECK(n == 0);
        CHECK_CODE(diffid_reader_finish(r, &res), DIFFID_OK);
        check_ok(res, l, DIFFID_ALGORITHM_SHA256);
        diffid_result_free(res);
        diffid_reader_free(r);
        /* Read to its end, and still open. */
        CHECK(fcntl(fd, F_GETFD) != -1);
        CHECK(lseek(fd, 0, SEEK_CUR) == (off_t)l->blob_size);
        close(fd);
        free(got);
        free(want);
    }
    CHECK(diffid_threads_left() == 0);
}

/* A bad stream read to its end: an error code, never *n == 0 with DIFFID_OK. */
static void test_reader_bad_streams(void) {
    struct {
        const char *file;
        diffid_code want;
    } bad[] = {{"corrupt.gz", DIFFID_CORRUPT},
               {"truncated.xz", DIFFID_TRUNCATED},
               {"trailing.gz", DIFFID_TRAILING_DATA},
               {"truncated.zst", DIFFID_TRUNCATED},
               {"corrupt.zst", DIFFID_CORRUPT},
               {"truncated.bz2", DIFFID_TRUNCATED}};
    for (uint32_t threads = 0; threads < (quick ? 1u : 2u); threads++) {
        diffid_options *o = options_with(DIFFID_ALGORITHM_SHA256, threads ? 1 : 0);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            int fd = open(data_path(bad[i].file), O_RDONLY);
            CHECK(fd >= 0);
            diffid_reader *r = NULL;
            CHECK_CODE(diffid_reader_new_fd(fd, o, &r), DIFFID_OK);
            uint8_t *got;
            size_t got_len;
            CHECK_CODE(read_to_end(r, 65536, &got, &got_len), bad[i].want);
            uint8_t b;
            size_t n = 9;
            CHECK_CODE(diffid_reader_read(r, &b, 1, &n), bad[i].want);
            CHECK(n == 0);
            diffid_result *res = NULL;
            CHECK_CODE(diffid_reader_finish(r, &res), bad[i].want);
            check_err(res, bad[i].want);
            diffid_result_free(res);
            diffid_reader_free(r);
            close(fd);
            free(got);
        }
        diffid_options_free(o);
    }
    /* Over the size limit. */
    diffid_options *o = NULL;
    CHECK_CODE(diffid_options_new(&o), DIFFID_OK);
    CHECK_CODE(diffid_options_set_max_size(o, 1000000), DIFFID_OK);
    int fd = open(input("layer.tar.zst")->path, O_RDONLY);
    diffid_reader *r = NULL;
    CHECK_CODE(diffid_reader_new_fd(fd, o, &r), DIFFID_OK);
    diffid_options_free(o);
    uint8_t *got;
    size_t got_len;
    CHECK_CODE(read_to_end(r, 65536, &got, &got_len), DIFFID_LIMIT_EXCEEDED);
    CHECK(got_len <= 1000000);
    diffid_reader_free(r);
    close(fd);
    free(got);
    CHECK(diffid_threads_left() == 0);
}

struct reader_feed {
    diffid_reader *r;
    const uint8_t *data;
    size_t len, piece;
    diffid_code write, close;
    int close_input;
};

/* Writes the blob into a pipe reader in pieces, then ends the input. */
static void *feed_reader(void *arg) {
    struct reader_feed *f = arg;
    f->write = DIFFID_OK;
    for (size_t off = 0; off < f->len && f->write == DIFFID_OK; off += f->piece) {
        size_t n = f->len - off < f->piece ? f->len - off : f->piece;
        f->write = diffid_reader_write(f->r, f->data + off, n);
    }
    if (f->close_input)
        f->close = diffid_reader_close_input(f->r);
    return NULL;
}

/* Duplex: one thread writes the blob, this one reads the decoded stream. */
static void test_reader_pipe_duplex(void) {
    const char *names[] = {"layer.tar.gz", "small.tar.zst", "layer.tar.xz", "layer.tar.bz2",
                           "layer.tar.zst", "empty"};
    for (unsigned i = 0; i < (quick ? 2u : 6u); i++) {
        const layer *l = input(names[i]);
        size_t len, want_len;
        uint8_t *data = read_all(l->path, &len);
        uint8_t *want = decoded_of(l, &want_len);
        diffid_reader *r = NULL;
        CHECK_CODE(diffid_reader_new_pipe(NULL, &r), DIFFID_OK);
        struct reader_feed f = {r, data, len, 3001 + 70000 * i, DIFFID_OK, DIFFID_OK, 1};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, feed_reader, &f) == 0);
        uint8_t *got;
        size_t got_len;
        CHECK_CODE(read_to_end(r, 50000, &got, &got_len), DIFFID_OK);
        pthread_join(t, NULL);
        CHECK_CODE(f.write, DIFFID_OK);
        CHECK_CODE(f.close, DIFFID_OK);
        CHECK(got_len == want_len && memcmp(got, want, want_len) == 0);
        diffid_result *res = NULL;
        CHECK_CODE(diffid_reader_finish(r, &res), DIFFID_OK);
        check_ok(res, l, DIFFID_ALGORITHM_SHA256);
        diffid_result_free(res);
        /* The input is closed. */
        CHECK_CODE(diffid_reader_write(r, data, 1), DIFFID_MISUSE);
        CHECK_CODE(diffid_reader_close_input(r), DIFFID_MISUSE);
        diffid_reader_free(r);
        free(got);
        free(want);
        free(data);
    }
    /* A corrupt blob through the pipe: both ends see the error. */
    size_t len;
    uint8_t *data = read_all(data_path("corrupt.gz"), &len);
    diffid_reader *r = NULL;
    CHECK_CODE(diffid_reader_new_pipe(NULL, &r), DIFFID_OK);
    struct reader_feed f = {r, data, len, 65536, DIFFID_OK, DIFFID_OK, 1};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, feed_reader, &f) == 0);
    uint8_t *got;
    size_t got_len;
    CHECK_CODE(read_to_end(r, 65536, &got, &got_len), DIFFID_CORRUPT);
    pthread_join(t, NULL);
    CHECK(f.write == DIFFID_CORRUPT || f.close == DIFFID_CORRUPT);
    diffid_reader_free(r);
    free(got);
    free(data);
    /* Input given up without close_input: never a clean end. */
    CHECK_CODE(diffid_reader_new_pipe(NULL, &r), DIFFID_OK);
    static const uint8_t partial[100] = {0x1f, 0x8b, 8};
    CHECK_CODE(diffid_reader_write(r, partial, sizeof partial), DIFFID_OK);
    diffid_reader_cancel(r);
    uint8_t b;
    size_t n = 9;
    CHECK_CODE(diffid_reader_read(r, &b, 1, &n), DIFFID_CANCELLED);
    CHECK(n == 0);
    diffid_reader_free(r);
    CHECK(diffid_threads_left() == 0);
}

/* Freed early: never read, read a little, and a pipe whose writer is blocked. */
static void test_reader_early_free(void) {
    const char *names[] = {"layer.tar.gz", "layer.tar.xz", "layer.tar.zst", "layer.tar.bz2",
                           "layer.tar"};
    for (unsigned i = 0; i < (quick ? 1u : 5u); i++) {
        const layer *l = input(names[i]);
        int fd = open(l->path, O_RDONLY);
        diffid_reader *r = NULL;
        CHECK_CODE(diffid_reader_new_fd(fd, NULL, &r), DIFFID_OK);
        diffid_reader_free(r); /* never read */
        CHECK(lseek(fd, 0, SEEK_SET) == 0);
        CHECK_CODE(diffid_reader_new_fd(fd, NULL, &r), DIFFID_OK);
        uint8_t buf[1000];
        size_t n = 0;
        CHECK_CODE(diffid_reader_read(r, buf, sizeof buf, &n), DIFFID_OK);
        CHECK(n > 0);
        sleep_ms(50); /* let the feeder fill the channels and block */
        diffid_reader_free(r);
        close(fd);
        CHECK(diffid_threads_left() == 0);
    }
    /* A pipe reader whose writer blocks (nobody reads): cancel, join the writer, free. */
    const layer *l = input("layer.tar");
    size_t len;
    uint8_t *data = read_all(l->path, &len);
    diffid_reader *r = NULL;
    CHECK_CODE(diffid_reader_new_pipe(NULL, &r), DIFFID_OK);
    struct reader_feed f = {r, data, len, 1 << 20, DIFFID_OK, DIFFID_OK, 1};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, feed_reader, &f) == 0);
    sleep_ms(100);
    diffid_reader_cancel(r);
    pthread_join(t, NULL);
    CHECK(f.write == DIFFID_CANCELLED || f.close == DIFFID_CANCELLED);
    diffid_reader_free(r);
    free(data);
    diffid_reader_free(NULL);
    CHECK(diffid_threads_left() == 0);
}

struct blocked_read {
    diffid_reader *r;
    atomic_int started;
    diffid_code code;
    size_t total;
};

static void *read_until_error(void *arg) {
    struct blocked_read *b = arg;
    uint8_t buf[4096];
    for (;;) {
        size_t n = 0;
        atomic_store(&b->started, 1);
        b->code = diffid_reader_read(b->r, buf, sizeof buf, &n);
        if (b->code != DIFFID_OK || n == 0)
            return NULL;
        b->total += n;
    }
}

/* Cancel from another thread while a read is blocked or running. */
static void test_reader_cancel_mid_read(void) {
    /* A pipe reader nobody writes to: the read blocks until the cancel. */
    diffid_reader *r = NULL;
    CHECK_CODE(diffid_reader_new_pipe(NULL, &r), DIFFID_OK);
    struct blocked_read b = {r, 0, DIFFID_OK, 0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, read_until_error, &b) == 0);
    while (!atomic_load(&b.started))
        sleep_ms(1);
    sleep_ms(50);
    diffid_reader_cancel(r);
    pthread_join(t, NULL);
    CHECK_CODE(b.code, DIFFID_CANCELLED);
    static const uint8_t x = 0;
    CHECK_CODE(diffid_reader_write(r, &x, 1), DIFFID_CANCELLED);
    diffid_result *res = NULL;
    CHECK_CODE(diffid_reader_finish(r, &res), DIFFID_CANCELLED);
    check_err(res, DIFFID_CANCELLED);
    diffid_result_free(res);
    diffid_reader_free(r);

    /* An fd reader over a pipe fed slowly, cancelled mid-stream; the read thread sees it. */
    const layer *l = input("layer.tar.gz");
    size_t len;
    uint8_t *data = read_all(l->path, &len);
    int fds[2];
    CHECK(pipe(fds) == 0);
    struct pipe_feed feed = {fds[1], data, len};
    pthread_t w;
    CHECK(pthread_create(&w, NULL, feed_pipe, &feed) == 0);
    CHECK_CODE(diffid_reader_new_fd(fds[0], NULL, &r), DIFFID_OK);
    struct blocked_read b2 = {r, 0, DIFFID_OK, 0};
    CHECK(pthread_create(&t, NULL, read_until_error, &b2) == 0);
    while (!atomic_load(&b2.started))
        sleep_ms(1);
    sleep_ms(5);
    diffid_reader_cancel(r);
    pthread_join(t, NULL);
    /* Either the cancel came first, or the whole stream was already read and verified. */
    CHECK(b2.code == DIFFID_CANCELLED || (b2.code == DIFFID_OK && b2.total == l->diff_size));
    /* Free joins the reader's feeder thread; then the pipe's writer gets EPIPE, not SIGPIPE. */
    diffid_reader_free(r);
    void (*previous)(int) = signal(SIGPIPE, SIG_IGN);
    close(fds[0]);
    pthread_join(w, NULL);
    signal(SIGPIPE, previous);
    free(data);
    CHECK(diffid_threads_left() == 0);
}

static void test_reader_arguments(void) {
    diffid_reader *r = (diffid_reader *)1;
    CHECK_CODE(diffid_reader_new_fd(-1, NULL, &r), DIFFID_INVALID_ARGUMENT);
    CHECK(r == NULL);
    CHECK_CODE(diffid_reader_new_fd(0, NULL, NULL), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_reader_new_pipe(NULL, NULL), DIFFID_INVALID_ARGUMENT);
    uint8_t buf[16];
    size_t n = 5;
    CHECK_CODE(diffid_reader_read(NULL, buf, sizeof buf, &n), DIFFID_INVALID_ARGUMENT);
    CHECK(n == 0);
    CHECK_CODE(diffid_reader_write(NULL, buf, 1), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_reader_close_input(NULL), DIFFID_INVALID_ARGUMENT);
    diffid_result *res = NULL;
    CHECK_CODE(diffid_reader_finish(NULL, &res), DIFFID_INVALID_ARGUMENT);
    check_err(res, DIFFID_INVALID_ARGUMENT);
    diffid_result_free(res);
    diffid_reader_cancel(NULL);
    diffid_reader_free(NULL);

    int fd = open(input("small.tar.gz")->path, O_RDONLY);
    CHECK_CODE(diffid_reader_new_fd(fd, NULL, &r), DIFFID_OK);
    CHECK_CODE(diffid_reader_read(r, NULL, 10, &n), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_reader_read(r, buf, 0, &n), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_reader_read(r, buf, sizeof buf, NULL), DIFFID_INVALID_ARGUMENT);
    CHECK_CODE(diffid_reader_finish(r, NULL), DIFFID_INVALID_ARGUMENT);
    /* An fd reader takes no writes. */
    CHECK_CODE(diffid_reader_write(r, buf, 1), DIFFID_MISUSE);
    CHECK_CODE(diffid_reader_close_input(r), DIFFID_MISUSE);
    /* Finish before the end drains the rest. */
    CHECK_CODE(diffid_reader_finish(r, &res), DIFFID_OK);
    check_ok(res, input("small.tar.gz"), DIFFID_ALGORITHM_SHA256);
    diffid_result_free(res);
    diffid_reader_free(r);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DATA_DIR [--quick | --layouts]\n", argv[0]);
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

    if (argc > 2 && strcmp(argv[2], "--layouts") == 0) {
        run("layouts", test_layouts);
        return tests_failed ? 1 : 0;
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
    run("expect_digests", test_expect_digests);
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
    run("reader_fd", test_reader_fd);
    run("reader_bad_streams", test_reader_bad_streams);
    run("reader_pipe_duplex", test_reader_pipe_duplex);
    run("reader_early_free", test_reader_early_free);
    run("reader_cancel_mid_read", test_reader_cancel_mid_read);
    run("reader_arguments", test_reader_arguments);
    return tests_failed ? 1 : 0;
}
