#!/usr/bin/env bash
# The main job, end to end on a real kernel: build the plugins, write conflists, attach two
# fresh network namespaces through cnitool (the real libcni client), and show them talking.
#
# What runs today: loopback (lo up in each namespace) and host-local (addresses from a
# byte-compatible store). The bridge plugin arrives next; until then the demo joins the two
# namespaces with a plain veth pair so the host-local addresses carry real traffic.
# Everything lives in namespaces and a temp dir made here, and is removed on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

bash "$here/setup.sh"
echo "==> building the plugins (release)"
cargo build --release --quiet -p loopback -p host-local

work="$(mktemp -d /tmp/cni-demo.XXXXXX)"
ns_a="cnidemo-a-$$"
ns_b="cnidemo-b-$$"
cleanup() {
  set +e
  for ns in "$ns_a" "$ns_b"; do
    [ -e "/run/netns/$ns" ] && run cnitool del demo-net "/run/netns/$ns" >/dev/null 2>&1
    [ -e "/run/netns/$ns" ] && run cnitool del demo-lo "/run/netns/$ns" >/dev/null 2>&1
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT

export NETCONFPATH="$work/net.d" CNI_PATH="$repo/target/release" CNI_CACHEDIR="$work/cache"
mkdir -p "$NETCONFPATH"
run() { echo "+ $*" >&2; "$@"; }

cat > "$NETCONFPATH/10-demo-lo.conflist" <<JSON
{ "cniVersion": "1.0.0", "name": "demo-lo", "plugins": [ { "type": "loopback" } ] }
JSON
cat > "$NETCONFPATH/20-demo-net.conflist" <<JSON
{ "cniVersion": "1.0.0", "name": "demo-net",
  "plugins": [ { "type": "host-local",
                 "ipam": { "type": "host-local", "dataDir": "$work/ipam",
                           "ranges": [ [ { "subnet": "10.250.7.0/24", "gateway": "10.250.7.1" } ],
                                       [ { "subnet": "fd00:250:7::/64" } ] ],
                           "routes": [ { "dst": "0.0.0.0/0" } ] } } ] }
JSON
echo "==> conflists in $NETCONFPATH"; cat "$NETCONFPATH"/*.conflist

declare -A v4 v6
for ns in "$ns_a" "$ns_b"; do
  ip netns add "$ns"
  echo "==> attach $ns"
  run cnitool add demo-lo "/run/netns/$ns" >/dev/null
  ip -n "$ns" -br link show lo
  result="$(run cnitool add demo-net "/run/netns/$ns")"
  echo "$result"
  v4[$ns]="$(grep -o '"10\.250\.7\.[0-9]*/24"' <<<"$result" | tr -d '"')"
  v6[$ns]="$(grep -o '"fd00:250:7::[0-9a-f]*/64"' <<<"$result" | tr -d '"')"
  run cnitool check demo-lo "/run/netns/$ns"
done

echo "==> the host-local store (byte-compatible with the Go plugin)"
for f in "$work/ipam/demo-net"/*; do printf '  %-20s %s\n' "$(basename "$f")" "$(sed -z 's/\r/\\r/g; s/\n/\\n/g' "$f")"; done

echo "==> wiring $ns_a <-> $ns_b with a veth pair and the allocated addresses"
ip link add demo-a netns "$ns_a" type veth peer name demo-b netns "$ns_b"
ip -n "$ns_a" addr add "${v4[$ns_a]}" dev demo-a && ip -n "$ns_a" addr add "${v6[$ns_a]}" dev demo-a nodad
ip -n "$ns_b" addr add "${v4[$ns_b]}" dev demo-b && ip -n "$ns_b" addr add "${v6[$ns_b]}" dev demo-b nodad
ip -n "$ns_a" link set demo-a up && ip -n "$ns_b" link set demo-b up

echo "==> talking"
run ip netns exec "$ns_a" ping -c 2 -W 2 "${v4[$ns_b]%/*}"
run ip netns exec "$ns_b" ping -6 -c 2 -W 2 "${v6[$ns_a]%/*}"
run ip netns exec "$ns_a" ping -c 1 -W 2 127.0.0.1

echo "==> detach"
for ns in "$ns_a" "$ns_b"; do
  run cnitool del demo-net "/run/netns/$ns"
  run cnitool del demo-lo "/run/netns/$ns"
done
echo "store after DEL: $(ls "$work/ipam/demo-net" | tr '\n' ' ')"
echo "==> demo OK"
