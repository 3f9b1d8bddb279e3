// The header compiled as C++ (cpp_compat: extern "C", enums with a fixed underlying type),
// with an RAII owner as a C++ caller would write one.
#include "diffid.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <type_traits>

static_assert(std::is_same<std::underlying_type<diffid_code>::type, uint32_t>::value,
              "diffid_code is 32 bits");
static_assert(DIFFID_OK == 0 && DIFFID_INTERNAL == 11, "fixed code numbers");

struct result_free {
    void operator()(diffid_result *r) const { diffid_result_free(r); }
};
using result_ptr = std::unique_ptr<diffid_result, result_free>;

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s LAYER\n", argv[0]);
        return 2;
    }
    diffid_options *o = nullptr;
    if (diffid_options_new(&o) != DIFFID_OK ||
        diffid_options_set_algorithm(o, DIFFID_ALGORITHM_SHA256) != DIFFID_OK)
        return 1;
    diffid_result *raw = nullptr;
    diffid_code c = diffid_digest_file(argv[1], o, &raw);
    diffid_options_free(o);
    result_ptr r(raw);
    if (c != DIFFID_OK) {
        std::fprintf(stderr, "%s: %s\n", diffid_code_name(c), diffid_result_error(r.get()));
        return 1;
    }
    diffid_format f = diffid_result_format(r.get());
    std::printf("%s %s %s\n", diffid_result_format_name(r.get()),
                diffid_result_blob_digest(r.get()), diffid_result_diff_id(r.get()));
    return f == DIFFID_FORMAT_XZ && std::strcmp(diffid_version(), "") != 0 ? 0 : 1;
}
