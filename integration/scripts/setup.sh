#!/usr/bin/env bash
# Installs what the demo and the integration tests need on a fresh Debian 12 machine (as root):
# the kernel tools, Debian's Go reference plugins (the oracle and benchmark baseline, never part
# of the product) and cnitool built over the real libcni. Idempotent and quiet when all is there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root (network namespaces, netlink and iptables need it)" >&2
  exit 1
fi

pkgs=(iproute2 iptables nftables containernetworking-plugins iputils-ping procps time)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
fi

if ! command -v cnitool >/dev/null 2>&1; then
  builder=""
  for cand in "$repo/../shared/tools/build-cnitool.sh" "${CNITOOL_BUILDER:-}"; do
    [ -n "$cand" ] && [ -f "$cand" ] && builder="$cand" && break
  done
  if [ -z "$builder" ]; then
    echo "setup: cnitool is missing and build-cnitool.sh was not found next to the repo (../shared/tools);" >&2
    echo "       set CNITOOL_BUILDER=/path/to/build-cnitool.sh or put a cnitool on PATH" >&2
    exit 1
  fi
  bash "$builder" /usr/local/bin/cnitool
fi
