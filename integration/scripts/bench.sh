#!/usr/bin/env bash
# Side-by-side benchmark: the same conflist (bridge + host-local + firewall same-bridge +
# tuning mtu) through the same real client (cnitool over libcni), against our binaries
# (target/release) and Debian's Go reference (/usr/lib/cni), interleaved, in dedicated
# network namespaces. Prints each figure for both and the ratio ours / reference.
#
#   bench.sh            full run (a few minutes on 2 cores; 1000 containers for the scaling figure)
#   bench.sh --quick    smoke run for CI: small counts, checks that it works, asserts no timing
#
# Everything lives in namespaces and a temp dir made here and is removed on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
quick=0
[ "${1:-}" = "--quick" ] && quick=1
if [ "$quick" = 1 ]; then single=5 many=16 scale=20; else single=40 many=100 scale=1000; fi
parallel=8

ours="$repo/target/release"
ref=/usr/lib/cni
for p in bridge host-local firewall tuning loopback; do
  [ -x "$ours/$p" ] || { echo "bench: $ours/$p missing; run: cargo build --release --workspace --bins" >&2; exit 1; }
  [ -x "$ref/$p" ] || { echo "bench: $ref/$p missing; run integration/scripts/setup.sh" >&2; exit 1; }
done
command -v cnitool >/dev/null || { echo "bench: cnitool missing; run integration/scripts/setup.sh" >&2; exit 1; }

work="$(mktemp -d /tmp/cni-bench.XXXXXX)"
tag="cb$$"
cleanup() {
  set +e
  for side in ours ref; do
    for ns in $(ip netns list | awk '{print $1}' | grep "^$tag-$side-"); do ip netns del "$ns"; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

# One host netns per side; the conflist is the same apart from dataDirs.
setup_side() { # side
  local side=$1
  ip netns add "$tag-$side-host"
  ip -n "$tag-$side-host" link set lo up
  mkdir -p "$work/$side/net.d" "$work/$side/cache"
  cat > "$work/$side/net.d/10-bench.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "bench",
  "plugins": [
    { "type": "bridge", "bridge": "cni-bench0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": { "type": "host-local", "dataDir": "$work/$side/ipam",
                "ranges": [ [ { "subnet": "10.90.0.0/20" } ] ], "routes": [ { "dst": "0.0.0.0/0" } ] } },
    { "type": "firewall", "backend": "iptables", "ingressPolicy": "same-bridge", "dataDir": "$work/$side/fw" },
    { "type": "tuning", "mtu": 1400, "dataDir": "$work/$side/tuning" }
  ]
}
JSON
}
setup_side ours
setup_side ref

dir_of() { [ "$1" = ours ] && echo "$ours" || echo "$ref"; }
tool() { # side verb ns
  ip netns exec "$tag-$1-host" env NETCONFPATH="$work/$1/net.d" CNI_PATH="$(dir_of "$1")" \
    CNI_CACHEDIR="$work/$1/cache" cnitool "$2" bench "/run/netns/$3"
}
now() { date +%s%N; }
ms() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1000000 }'; }

# stats FILE -> "median p90" in ms
stats() {
  sort -n "$1" | awk '{ v[NR] = $1 } END {
    m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.999)]; if (p == "") p = v[NR];
    printf "%.1f %.1f", m / 1000000, p / 1000000 }'
}

row() { # label ours ref unit
  awk -v l="$1" -v a="$2" -v b="$3" -v u="$4" 'BEGIN {
    r = (b > 0) ? a / b : 0; printf "%-44s %10s %10s %6.2f  %s\n", l, a, b, r, u }'
}

echo "== one container at a time ($single rounds, interleaved)"
for side in ours ref; do : > "$work/$side.add"; : > "$work/$side.del"; : > "$work/$side.cycle"; done
for i in $(seq "$single"); do
  for side in ours ref; do
    ns="$tag-$side-c$i"
    ip netns add "$ns"
    t0=$(now); tool "$side" add "$ns" >/dev/null; t1=$(now)
    tool "$side" del "$ns"; t2=$(now)
    ip netns del "$ns"
    echo $((t1 - t0)) >> "$work/$side.add"
    echo $((t2 - t1)) >> "$work/$side.del"
    echo $((t2 - t0)) >> "$work/$side.cycle"
  done
done
printf '%-44s %10s %10s %6s\n' figure ours Go ratio
for what in add del cycle; do
  read -r om op <<<"$(stats "$work/ours.$what")"
  read -r rm rp <<<"$(stats "$work/ref.$what")"
  row "$what median" "$om" "$rm" ms
  row "$what p90" "$op" "$rp" ms
done

echo "== $many containers, ADD then DEL, $parallel in parallel"
par() { # side verb count
  seq "$3" | xargs -P "$parallel" -I{} bash -c "$(declare -f tool dir_of); tag=$tag work=$work ours=$ours ref=$ref; tool $1 $2 $tag-$1-p{} >/dev/null"
}
for side in ours ref; do
  for i in $(seq "$many"); do ip netns add "$tag-$side-p$i"; done
  t0=$(now); par "$side" add "$many"; t1=$(now)
  addrs=$(ip netns exec "$tag-$side-host" ls "$work/$side/ipam/bench" | grep -c '^10\.')
  [ "$addrs" = "$many" ] || { echo "bench: $side has $addrs reservations, want $many" >&2; exit 1; }
  par "$side" del "$many"; t2=$(now)
  for i in $(seq "$many"); do ip netns del "$tag-$side-p$i"; done
  eval "${side}_par=$(( (t2 - t0) ))"
done
row "$many x (ADD+DEL), wall" "$(ms "$ours_par")" "$(ms "$ref_par")" ms

# One ADD is a noisy sample on a busy machine: each end is the median of its first / last
# $ends containers (containers 1-5 and 996-1000 in the full run).
ends=5
echo "== ADD latency of container 1 vs container $scale on one bridge (median of $ends at each end)"
for side in ours ref; do
  : > "$work/$side.first"; : > "$work/$side.last"
  for i in $(seq "$scale"); do
    ns="$tag-$side-s$i"; ip netns add "$ns"
    t0=$(now); tool "$side" add "$ns" >/dev/null; t1=$(now)
    [ "$i" -le "$ends" ] && echo $((t1 - t0)) >> "$work/$side.first"
    [ "$i" -gt $((scale - ends)) ] && echo $((t1 - t0)) >> "$work/$side.last"
  done
  for i in $(seq "$scale"); do tool "$side" del "$tag-$side-s$i"; ip netns del "$tag-$side-s$i"; done
  read -r m _ <<<"$(stats "$work/$side.first")"; eval "${side}_first=$m"
  read -r m _ <<<"$(stats "$work/$side.last")"; eval "${side}_last=$m"
done
row "ADD of containers 1-$ends, median" "$ours_first" "$ref_first" ms
row "ADD of the last $ends containers, median" "$ours_last" "$ref_last" ms
awk -v a="$ours_last" -v b="$ours_first" -v c="$ref_last" -v d="$ref_first" 'BEGIN {
  printf "%-44s %10.2f %10.2f\n", "growth (container N / container 1)", a / b, c / d }'

echo "== process start, memory, size"
version_ns() { # dir plugin -> ns per exec over 200 runs
  local t0 t1; t0=$(now)
  for _ in $(seq 200); do echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION "$1/$2" >/dev/null; done
  t1=$(now); echo $(( (t1 - t0) / 200 ))
}
rss() { # dir plugin -> KiB
  echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION /usr/bin/time -f %M "$1/$2" 2>&1 >/dev/null | tail -1
}
# The shell's own fork+exec of a trivial binary, subtracted to get each plugin's start cost.
spawn=$(version_ns /bin true)
total_o=0; total_r=0
for p in bridge host-local firewall tuning; do
  vo=$(version_ns "$ours" "$p"); vr=$(version_ns "$ref" "$p")
  row "VERSION $p" "$(ms "$vo")" "$(ms "$vr")" "ms (incl. shell fork+exec)"
  row "VERSION $p, net of fork+exec of /bin/true" "$(ms $((vo > spawn ? vo - spawn : 0)))" "$(ms $((vr > spawn ? vr - spawn : 0)))" ms
  row "peak RSS $p (VERSION)" "$(rss "$ours" "$p")" "$(rss "$ref" "$p")" KiB
  so=$(stat -c %s "$ours/$p"); sr=$(stat -c %s "$ref/$p")
  total_o=$((total_o + so)); total_r=$((total_r + sr))
  row "size $p" "$((so / 1024))" "$((sr / 1024))" KiB
done
row "size, these four together" "$((total_o / 1024))" "$((total_r / 1024))" KiB

for side in ours ref; do
  left=$(ip netns exec "$tag-$side-host" iptables-save | grep -c '^-A' || true)
  [ "$left" = 0 ] || [ "$side" = ref ] || { echo "bench: $side left $left rules" >&2; exit 1; }
done
echo "bench: done ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r))"
