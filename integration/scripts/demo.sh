#!/usr/bin/env bash
# The main job, end to end on a real kernel: build the plugins, write a podman-style conflist
# (bridge + host-local, like 87-podman-bridge.conflist), attach two fresh network namespaces
# through cnitool (the real libcni client), show their addresses and let them talk.
#
# The machine's own network is never touched: a dedicated netns plays the host (the bridge,
# its gateway address and the masquerade rules live there), the containers are two more
# netns, and everything — namespaces and the temp dir with conflists, cache and IPAM store —
# is removed on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

bash "$here/setup.sh"
echo "==> building the plugins (release)"
cargo build --release --quiet -p loopback -p host-local -p bridge

work="$(mktemp -d /tmp/cni-demo.XXXXXX)"
host="cnidemo-host-$$"
ctrs=("cnidemo-a-$$" "cnidemo-b-$$")
export NETCONFPATH="$work/net.d" CNI_PATH="$repo/target/release" CNI_CACHEDIR="$work/cache"
run() { echo "+ $*" >&2; "$@"; }
in_host() { ip netns exec "$host" "$@"; }
cleanup() {
  set +e
  for ns in "${ctrs[@]}"; do
    if [ -e "/run/netns/$ns" ]; then
      in_host cnitool del demo "/run/netns/$ns" >/dev/null 2>&1
      in_host cnitool del demo-lo "/run/netns/$ns" >/dev/null 2>&1
      ip netns del "$ns"
    fi
  done
  ip netns del "$host" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$NETCONFPATH"
cat > "$NETCONFPATH/10-demo-lo.conflist" <<JSON
{ "cniVersion": "1.0.0", "name": "demo-lo", "plugins": [ { "type": "loopback" } ] }
JSON
cat > "$NETCONFPATH/87-demo.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "demo",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni-demo0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$work/ipam",
        "routes": [ { "dst": "0.0.0.0/0" }, { "dst": "::/0" } ],
        "ranges": [ [ { "subnet": "10.250.7.0/24", "gateway": "10.250.7.1" } ],
                    [ { "subnet": "fd00:250:7::/64", "gateway": "fd00:250:7::1" } ] ]
      }
    }
  ]
}
JSON
echo "==> conflist $NETCONFPATH/87-demo.conflist"; cat "$NETCONFPATH/87-demo.conflist"

ip netns add "$host"
in_host ip link set lo up
declare -A v4 v6
for ns in "${ctrs[@]}"; do
  ip netns add "$ns"
  echo "==> attach $ns"
  run in_host cnitool add demo-lo "/run/netns/$ns" >/dev/null
  result="$(run in_host cnitool add demo "/run/netns/$ns")"
  v4[$ns]="$(grep -o '"10\.250\.7\.[0-9]*/24"' <<<"$result" | tr -d '"')"
  v6[$ns]="$(grep -o '"fd00:250:7::[0-9a-f]*/64"' <<<"$result" | tr -d '"')"
  echo "    $ns got ${v4[$ns]} and ${v6[$ns]}"
  ip -n "$ns" -br addr show eth0
  run in_host cnitool check demo "/run/netns/$ns"
done
a="${ctrs[0]}"; b="${ctrs[1]}"

echo "==> the host side (netns $host)"
in_host ip -br link show type bridge
in_host ip -br addr show dev cni-demo0
echo "    masquerade rules:"
in_host iptables-save -t nat | grep -- '-A' | sed 's/^/    /'

echo "==> talking"
run ip netns exec "$a" ping -c 2 -W 2 "${v4[$b]%/*}"
run ip netns exec "$b" ping -6 -c 2 -W 2 "${v6[$a]%/*}"
run ip netns exec "$a" ping -c 1 -W 2 10.250.7.1

echo "==> detach"
for ns in "${ctrs[@]}"; do
  run in_host cnitool del demo "/run/netns/$ns"
  run in_host cnitool del demo-lo "/run/netns/$ns"
done
echo "    host links after DEL: $(in_host ip -br link | awk '{print $1}' | tr '\n' ' ')(the bridge stays, as in the reference)"
echo "    nat rules after DEL: $(in_host iptables-save -t nat | grep -c -- '-A' || true)"
echo "    IPAM store after DEL: $(ls "$work/ipam/demo" | tr '\n' ' ')"
echo "==> demo OK"
