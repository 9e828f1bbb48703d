#!/usr/bin/env bash
# The main job, end to end on a real kernel: the seed's exercise 1.
#
#   web ── frontend ── api ── backend (internal, isolated) ── db
#
# Two networks are created with `cni-conflist create` exactly as podman would write them
# (bridge + host-local + portmap + firewall + tuning), three network namespaces are attached
# through cnitool (the real libcni client), and the demo measures who can reach whom: web→api
# and api→db work, web→db is blocked, the backend has no route out, the frontend does (through
# masquerade), and a page is fetched from web through its published host port. A macvlan pair
# on the host's "physical" interface follows. Then everything is detached and shown clean.
#
# The machine's own network is never touched: a dedicated netns plays the host (bridges,
# gateway addresses, iptables rules live there) and another plays the outside world; all
# namespaces and the temp dir (conflists, result cache, IPAM store) are removed on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

bash "$here/setup.sh"
echo "==> building the plugins and cni-conflist (release)"
cargo build --release --quiet --workspace --bins

work="$(mktemp -d /tmp/cni-demo.XXXXXX)"
id="$$"
host="cnidemo-host-$id"
out="cnidemo-out-$id"
web="cnidemo-web-$id" api="cnidemo-api-$id" db="cnidemo-db-$id"
bin="$repo/target/release"
export NETCONFPATH="$work/net.d" CNI_PATH="$bin" CNI_CACHEDIR="$work/cache"
publish='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'

run() { echo "+ $*" >&2; "$@"; }
in_host() { ip netns exec "$host" "$@"; }
tool() { in_host env CNI_IFNAME="${IFNAME:-eth0}" CAP_ARGS="${CAPS:-}" cnitool "$@"; }
conflist() { in_host "$bin/cni-conflist" --dir "$NETCONFPATH" --cache-dir "$CNI_CACHEDIR" "$@"; }

attachments=()   # "net ns ifname caps", in attach order
attach() { # net ns ifname [caps]; sets $ip to the attachment's IPv4 address
  local r
  attachments+=("$1 $2 $3 ${4:-}")
  r="$(IFNAME=$3 CAPS=${4:-} run tool add "$1" "/run/netns/$2")"
  ip="$(grep -o '"address": "[0-9.]*/[0-9]*"' <<<"$r" | head -1 | grep -o '[0-9.]*/' | tr -d /)"
}
detach_all() {
  local i net ns ifname caps
  for ((i = ${#attachments[@]} - 1; i >= 0; i--)); do
    read -r net ns ifname caps <<<"${attachments[$i]}"
    IFNAME=$ifname CAPS=$caps run tool del "$net" "/run/netns/$ns"
  done
  attachments=()
}
cleanup() {
  set +e
  [ -n "${echo_pid:-}" ] && kill "$echo_pid" 2>/dev/null
  detach_all >/dev/null 2>&1
  for ns in "$web" "$api" "$db" "$out" "$host"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> namespaces: host $host, outside world $out, containers web / api / db"
for ns in "$host" "$out" "$web" "$api" "$db"; do ip netns add "$ns"; done
in_host ip link set lo up
ip -n "$out" link set lo up
in_host ip link add uplink type veth peer name wan netns "$out"
in_host ip addr add 10.250.99.1/24 dev uplink
ip -n "$out" addr add 10.250.99.2/24 dev wan
in_host ip link set uplink up
ip -n "$out" link set wan up
in_host sysctl -qw net.ipv4.ip_forward=1

echo "==> networks, created with cni-conflist as podman would"
mkdir -p "$NETCONFPATH"
run conflist create frontend --subnet 10.250.10.0/24 --opt mtu=1450 --ipam-data-dir "$work/ipam"
run conflist create backend --subnet 10.250.20.0/24 --internal --opt isolate=true --ipam-data-dir "$work/ipam"
run conflist ls
run conflist inspect backend
run conflist validate --all

echo "==> attach"
attach frontend "$web" eth0 "$publish"
attach frontend "$api" eth0; api_front=$ip
attach backend "$api" eth1; api_back=$ip
attach backend "$db" eth0; db_ip=$ip
for ns in "$web" "$api" "$db"; do ip -n "$ns" -br addr show | grep -v '^lo'; done
echo "    web's eth0 mtu (frontend --opt mtu=1450): $(ip -n "$web" -j link show eth0 | grep -o '"mtu":[0-9]*')"
for a in "frontend $web eth0 $publish" "frontend $api eth0" "backend $api eth1" "backend $db eth0"; do
  read -r net ns ifname caps <<<"$a"
  IFNAME=$ifname CAPS=${caps:-} run tool check "$net" "/run/netns/$ns"
done

echo "==> the web tier serves on port 80, published on the host as 8080"
ip netns exec "$web" "$bin/cni-echo" 80 60 "web-tier" >/dev/null &
echo_pid=$!
for _ in $(seq 50); do ip netns exec "$web" ss -ltn 2>/dev/null | grep -q ':80 ' && break; sleep 0.1; done

reach() { ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && echo ok || echo blocked; }
fetch() { # ns addr port
  ip netns exec "$1" timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null
}
page="$(fetch "$out" 10.250.99.1 8080 || true)"

echo "==> reachability, measured"
failures=0
check() { # label got want
  local mark="as expected"
  [ "$2" = "$3" ] || { mark="UNEXPECTED (want $3)"; failures=$((failures + 1)); }
  printf '    %-44s %-8s %s\n' "$1" "$2" "$mark"
}
check "web -> api ($api_front, frontend)" "$(reach "$web" "$api_front")" ok
check "api -> db  ($db_ip, backend)" "$(reach "$api" "$db_ip")" ok
check "web -> db  ($db_ip)" "$(reach "$web" "$db_ip")" blocked
check "web -> api ($api_back, api's backend side)" "$(reach "$web" "$api_back")" blocked
check "db  -> outside world (10.250.99.2)" "$(reach "$db" 10.250.99.2)" blocked
check "web -> outside world (masqueraded)" "$(reach "$web" 10.250.99.2)" ok
got_page=blocked; grep -q '^HTTP/1.0 200 OK' <<<"$page" && got_page=ok
check "outside -> host:8080 -> web:80 (a page)" "$got_page" ok
echo "    db's routes (internal network: none out): $(ip -n "$db" route | tr '\n' ';')"
echo "    the page, as fetched from the outside world:"
sed 's/^/      /' <<<"$page"
kill "$echo_pid" 2>/dev/null || true
wait "$echo_pid" 2>/dev/null || true
echo_pid=""

echo "==> the host side (netns $host)"
in_host ip -br link show type bridge
in_host iptables-save | grep -c '^-A' | sed 's/^/    iptables rules while attached: /'

echo "==> a macvlan pair on the host's \"physical\" interface lan0"
cat > "$NETCONFPATH/90-demo-lan.conflist" <<JSON
{ "cniVersion": "1.0.0", "name": "demo-lan",
  "plugins": [ { "type": "macvlan", "master": "lan0", "mode": "bridge",
                 "ipam": { "type": "host-local", "dataDir": "$work/ipam",
                           "ranges": [ [ { "subnet": "192.168.250.0/24" } ] ] } } ] }
JSON
in_host ip link add lan0 type veth peer name lan0-peer
in_host ip link set lan0 up
in_host ip link set lan0-peer up
attach demo-lan "$web" lan1
attach demo-lan "$db" lan1; lan_db=$ip
check "web -> db over macvlan ($lan_db)" "$(reach "$web" "$lan_db")" ok

echo "==> detach"
detach_all
in_host ip link del lan0
echo "    host links after DEL: $(in_host ip -br link | awk '{print $1}' | tr '\n' ' ')(bridges stay, as in the reference)"
echo "    iptables rules after DEL: $(in_host iptables-save | grep -c '^-A' || true)"
echo "    IPAM store after DEL: $(find "$work/ipam" -type f -printf '%P ' | sort | tr '\n' ' ')"
echo "    result cache after DEL: $(find "$CNI_CACHEDIR" -type f | wc -l) files"
left="$(in_host iptables-save | grep -c '^-A' || true)"
[ "$left" = 0 ] || { echo "==> demo FAILED: $left iptables rules left after DEL" >&2; exit 1; }
if [ "$failures" -ne 0 ]; then
  echo "==> demo FAILED: $failures reachability results differ from the expected matrix" >&2
  exit 1
fi
echo "==> demo OK"
