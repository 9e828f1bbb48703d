#!/usr/bin/env bash
# The whole test suite: unit tests (no root needed) and the root-only integration tests against
# the real kernel, driven through cnitool. Builds the release plugins first: the integration
# tests exec them from target/release, the directory an operator would use as CNI_PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

bash "$here/setup.sh"
cargo build --release --workspace --bins
cargo test --workspace --exclude integration-tests
CNI_PLUGIN_DIR="$repo/target/release" cargo test -p integration-tests
