#!/usr/bin/env bash
# Startup cost and size of each plugin binary, ours next to Debian's Go reference.
# A plugin is exec'd once per container per verb, so process start is most of its cost for
# the cheap verbs. Measures N runs of VERSION (no kernel work) and of loopback ADD+DEL in a
# throwaway netns. Usage: bench-startup.sh [N]   (default 500)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
n="${1:-500}"
ours="$repo/target/release"
ref=/usr/lib/cni
[ -x "$ours/loopback" ] || { echo "build first: cargo build --release --workspace --bins" >&2; exit 1; }

time_loop() { # time_loop N cmd... -> microseconds per run
  local count=$1; shift
  local start end
  start=$(date +%s%N)
  for ((i = 0; i < count; i++)); do "$@" >/dev/null 2>&1 || true; done
  end=$(date +%s%N)
  echo $(( (end - start) / count / 1000 ))
}

version() { echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION "$1"; }
ns="cnibench-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null' EXIT
lo_cycle() {
  local conf='{"cniVersion":"1.0.0","name":"bench","type":"loopback"}'
  echo "$conf" | CNI_COMMAND=ADD CNI_CONTAINERID=b CNI_NETNS="/run/netns/$ns" CNI_IFNAME=eth0 CNI_PATH=/x "$1"
  echo "$conf" | CNI_COMMAND=DEL CNI_CONTAINERID=b CNI_NETNS="/run/netns/$ns" CNI_IFNAME=eth0 CNI_PATH=/x "$1"
}

printf '%-12s %12s %12s %14s %14s %8s\n' plugin "size ours" "size Go" "VERSION ours" "VERSION Go" ratio
for p in ${PLUGINS:-loopback host-local}; do
  so=$(stat -c %s "$ours/$p"); sg=$(stat -c %s "$ref/$p")
  to=$(time_loop "$n" version "$ours/$p"); tg=$(time_loop "$n" version "$ref/$p")
  printf '%-12s %11dK %11dK %12dus %12dus %7.1fx\n' "$p" $((so / 1024)) $((sg / 1024)) "$to" "$tg" "$(awk -v a="$tg" -v b="$to" 'BEGIN{print a/b}')"
done
to=$(time_loop "$n" lo_cycle "$ours/loopback"); tg=$(time_loop "$n" lo_cycle "$ref/loopback")
printf '%-12s %25s %12dus %12dus %7.1fx\n' "loopback" "ADD+DEL in a netns" "$to" "$tg" "$(awk -v a="$tg" -v b="$to" 'BEGIN{print a/b}')"
