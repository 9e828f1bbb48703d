#!/usr/bin/env bash
# Runs every cargo-fuzz target in integration/fuzz for a bounded time each (default 60 s; CI
# passes a small value, e.g. `fuzz.sh 10`). Works on a stable toolchain: cargo-fuzz needs
# nightly-only flags, which RUSTC_BOOTSTRAP=1 unlocks on stable. Installs cargo-fuzz when it is
# missing.
#
# Seeds come from integration/fuzz/corpus/<target>/ (read-only here: new inputs go to a scratch
# directory). Any crash fails the run, and the crashing input is copied to
# testdata/fuzz-crashes/<target>/ so `integration/tests/hostile_fuzz_replay.rs` replays it in
# every `cargo test` from then on. Keep the file after the fix: the replay keeps it fixed.
#
# Usage: integration/scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
fuzz_dir="$repo/integration/fuzz"
crash_dir="$repo/testdata/fuzz-crashes"

seconds="${1:-60}"
shift || true
case "$seconds" in
  ''|*[!0-9]*) echo "fuzz: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz >/dev/null
fi

cd "$fuzz_dir"
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# One build for all targets (sanitizer "none": the code under test is safe Rust, and without
# ASan every target runs several times faster; debug assertions and overflow checks stay on).
cargo fuzz build --sanitizer none --debug-assertions >/dev/null

work="$(mktemp -d /tmp/cni-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t" "corpus/$t"
  log="$work/$t.log"
  echo "fuzz: $t for ${seconds}s" >&2
  if cargo fuzz run --sanitizer none --debug-assertions "$t" "$work/corpus/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
      -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    runs="$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
    echo "fuzz: $t ok (${runs:-?} runs)" >&2
  else
    failed+=("$t")
    tail -n 40 "$log" >&2
    mkdir -p "$crash_dir/$t"
    found=0
    for f in "$work/artifacts/$t"/*; do
      [ -f "$f" ] || continue
      cp "$f" "$crash_dir/$t/"
      echo "fuzz: $t crashed; input saved as testdata/fuzz-crashes/$t/$(basename "$f")" >&2
      found=1
    done
    [ "$found" = 1 ] || echo "fuzz: $t failed without an artifact (see the log above)" >&2
  fi
done

total="${#targets[@]}"
bad="${#failed[@]}"
echo "fuzz: $((total - bad)) passed, $bad failed"
[ "$bad" -eq 0 ]
