#!/usr/bin/env bash
# The main job, end to end on a real kernel: build the plugins, write a podman-style conflist
# (bridge + host-local + firewall + tuning + portmap, like 87-podman-bridge.conflist), attach
# two fresh network namespaces through cnitool (the real libcni client), show their addresses
# and let them talk; fetch a page from the first through its published host port; then give
# both a second interface on a macvlan network and let them talk over that too.
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
cargo build --release --quiet -p loopback -p host-local -p bridge -p firewall -p macvlan -p tuning -p portmap
cargo build --release --quiet -p integration-tests --bin cni-echo

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
      in_host env CNI_IFNAME=lan1 cnitool del demo-lan "/run/netns/$ns" >/dev/null 2>&1
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
cat > "$NETCONFPATH/90-demo-lan.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "demo-lan",
  "plugins": [
    { "type": "macvlan", "master": "lan0", "mode": "bridge",
      "ipam": { "type": "host-local", "dataDir": "$work/ipam",
                "ranges": [ [ { "subnet": "192.168.250.0/24" } ] ] } }
  ]
}
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
    },
    { "type": "firewall", "backend": "iptables", "ingressPolicy": "same-bridge",
      "dataDir": "$work/firewall" },
    { "type": "tuning", "mtu": 1450, "dataDir": "$work/tuning" },
    { "type": "portmap", "capabilities": { "portMappings": true }, "dataDir": "$work/portmap" }
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
  caps='{}'
  # The first container is the web tier: host port 8080 is published to its port 80.
  [ "$ns" = "${ctrs[0]}" ] && caps='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'
  result="$(run in_host env CAP_ARGS="$caps" cnitool add demo "/run/netns/$ns")"
  v4[$ns]="$(grep -o '"10\.250\.7\.[0-9]*/24"' <<<"$result" | tr -d '"')"
  v6[$ns]="$(grep -o '"fd00:250:7::[0-9a-f]*/64"' <<<"$result" | tr -d '"')"
  echo "    $ns got ${v4[$ns]} and ${v6[$ns]}"
  ip -n "$ns" -br addr show eth0
  echo "    eth0 mtu (set by tuning): $(ip -n "$ns" -j link show eth0 | grep -o '"mtu":[0-9]*')"
  run in_host env CAP_ARGS="$caps" cnitool check demo "/run/netns/$ns"
done
a="${ctrs[0]}"; b="${ctrs[1]}"

echo "==> the host side (netns $host)"
in_host ip -br link show type bridge
in_host ip -br addr show dev cni-demo0
echo "    masquerade rules (nat) and firewall rules (filter):"
in_host iptables-save -t nat | grep -- '^-A' | sed 's/^/    /'
in_host iptables-save -t filter | grep -- '^-A' | sed 's/^/    /'

echo "==> talking"
run ip netns exec "$a" ping -c 2 -W 2 "${v4[$b]%/*}"
run ip netns exec "$b" ping -6 -c 2 -W 2 "${v6[$a]%/*}"
run ip netns exec "$a" ping -c 1 -W 2 10.250.7.1

echo "==> the web tier's port, published on the host"
ip netns exec "$a" "$repo/target/release/cni-echo" 80 30 "web-tier" > /dev/null &
echo_pid=$!
for _ in $(seq 50); do ip netns exec "$a" ss -ltn 2>/dev/null | grep -q ':80 ' && break; sleep 0.1; done
# From the second container, through the host's published port 8080 (bridge gateway address).
run ip netns exec "$b" bash -c 'exec 3<>/dev/tcp/10.250.7.1/8080; printf "GET / HTTP/1.0\r\n\r\n" >&3; cat <&3'
kill "$echo_pid" 2>/dev/null || true
wait "$echo_pid" 2>/dev/null || true

echo "==> a macvlan pair on the host's \"physical\" interface lan0 (a veth inside the host netns)"
in_host ip link add lan0 type veth peer name lan0-peer
in_host ip link set lan0 up
in_host ip link set lan0-peer up
declare -A lan
for ns in "${ctrs[@]}"; do
  result="$(run in_host env CNI_IFNAME=lan1 cnitool add demo-lan "/run/netns/$ns")"
  lan[$ns]="$(grep -o '"192\.168\.250\.[0-9]*/24"' <<<"$result" | tr -d '"')"
  ip -n "$ns" -br addr show lan1
done
run ip netns exec "$a" ping -c 2 -W 2 "${lan[$b]%/*}"
for ns in "${ctrs[@]}"; do
  run in_host env CNI_IFNAME=lan1 cnitool del demo-lan "/run/netns/$ns"
done
in_host ip link del lan0

echo "==> detach"
for ns in "${ctrs[@]}"; do
  caps='{}'
  [ "$ns" = "${ctrs[0]}" ] && caps='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'
  run in_host env CAP_ARGS="$caps" cnitool del demo "/run/netns/$ns"
  run in_host cnitool del demo-lo "/run/netns/$ns"
done
echo "    host links after DEL: $(in_host ip -br link | awk '{print $1}' | tr '\n' ' ')(the bridge stays, as in the reference)"
echo "    nat + filter rules after DEL: $(in_host iptables-save | grep -c -- '^-A' || true)"
echo "    IPAM store after DEL: $(ls "$work/ipam/demo" | tr '\n' ' ')"
echo "==> demo OK"
