#!/usr/bin/env bash
# The long runs behind `make soak`: what `make test` does in small, done at full size.
#
#   scripts/soak.sh [ROUNDS]     (default 3)
#
# - every bomb at 16 GiB (gzip, bzip2, xz, zstd), and uncompressed zeros through a
#   pipe, each checked against openssl over /dev/zero with the CLI's peak RSS under 200 MiB
#   (tests/bombs.rs with DIFFID_SOAK=1);
# - the fault, cancel and drop tests ROUNDS times in a row (timing races show up as flakes);
# - the truncation and bit-flip tests with more random trials (DIFFID_SOAK=1);
# - the fault tests once under valgrind (memcheck, leak check), when valgrind is installed.
#
# Needs the Go reference (make oracle) like `make test`. Takes about 10-15 minutes on
# 2 cores.
set -euo pipefail

rounds=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export DIFFID_SOAK=1
: "${DIFFID_ORACLE:=$root/target/oracle/oracle}"
export DIFFID_ORACLE

start=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - start ))s)"; }

step "bombs: 16 GiB in every format and uncompressed"
cargo test --release --locked --features cli --test bombs -- --test-threads=1 --nocapture 2>&1 |
    grep -E '^(test |none:|gzip:|bzip2:|xz:|zstd:|test result)'

step "truncations and bit flips, more trials"
cargo test --release --locked --features cli --test hostile -- --nocapture 2>&1 |
    grep -E 'trials|^test result'

for i in $(seq "$rounds"); do
    step "faults, round $i of $rounds"
    cargo test --release --locked --features cli --test faults -- --nocapture 2>&1 |
        grep -E 'injected faults|^test result|FAILED|panicked'
done

if command -v valgrind >/dev/null; then
    step "faults under valgrind"
    bin=$(cargo test --release --locked --features cli --test faults --no-run --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*faults[^"]*"' | head -n 1 | cut -d'"' -f4)
    # The quick scenarios: drops, cancels at the edges, the caller's bytes. Definite and
    # indirect leaks fail (the test harness keeps some "still reachable" memory).
    DIFFID_FAULTS=drop,cancel-edges,bytes valgrind --fair-sched=yes --error-exitcode=1 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect -q \
        "$bin" --test-threads=1 2>&1 | tail -n 5
fi
step "soak passed"
