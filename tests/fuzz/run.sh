#!/usr/bin/env bash
# Runs every fuzz target for a short time; fails on the first crash, leak, timeout or OOM.
#   bash tests/fuzz/run.sh [seconds per target, default 20] [target ...]
# Installs the nightly toolchain and cargo-fuzz when missing. New corpus entries go to
# tests/fuzz/corpus/<target> (not committed); the committed seeds in tests/fuzz/seeds/<target> are
# read too. A crashing input is left in tests/fuzz/artifacts/<target>/: reproduce it with
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz <target> tests/fuzz/artifacts/<target>/<file>
# and turn it into a unit test in the crate where the bug lives.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
shift || true

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir .)
fi

# The committed Cargo.lock must already be complete (cargo-fuzz has no --locked of its own).
cargo +nightly metadata --locked --format-version 1 >/dev/null

# One build for all targets (debug assertions and overflow checks on, as cargo-fuzz does).
cargo +nightly fuzz build --fuzz-dir .

summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  log="target/fuzz-$t.log"
  mkdir -p target
  printf '\n---- %s (%s s) ----\n' "$t" "$seconds"
  if ! cargo +nightly fuzz run --fuzz-dir . "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $t failed: input kept under tests/fuzz/artifacts/$t/" >&2
    exit 1
  fi
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+')
  summary+=("$(printf '%-22s %10s runs  cov %s' "$t" "${runs:-?}" "${cov:-?}")")
done
printf '\nfuzzing: no crash\n'
printf '  %s\n' "${summary[@]}"
