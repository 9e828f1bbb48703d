#!/usr/bin/env bash
# The whole test suite: unit tests (no root needed) and the root-only integration tests against
# the real kernel, driven through cnitool. Builds the release plugins first: the integration
# tests exec them from target/release, the directory an operator would use as CNI_PATH.
# Ends with one line adding up every test binary's counts.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

bash "$here/setup.sh"
cargo build --release --workspace --bins

log="$(mktemp /tmp/cni-test-log.XXXXXX)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --exclude integration-tests --exclude cni-netfilter 2>&1 | tee -a "$log"
# The netfilter layer's tests, including its root-only ones (ignored by a plain `cargo test`)
# that check our rules against the Go plugins' in throwaway netns.
cargo test -p cni-netfilter -- --include-ignored 2>&1 | tee -a "$log"
CNI_PLUGIN_DIR="$repo/target/release" cargo test -p integration-tests --tests 2>&1 | tee -a "$log"

# The side-by-side benchmark must keep working; CI asserts no timing.
bash "$here/bench.sh" --quick

awk '/^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed/) p += $i
         if ($(i+1) ~ /^failed/) f += $i
         if ($(i+1) ~ /^ignored/) s += $i
       }
     }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
