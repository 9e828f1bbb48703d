#!/usr/bin/env python3
"""Regenerates the seed corpora in corpus/<target>/ from the repository's testdata.

Run from anywhere: `python3 integration/fuzz/make-seeds.py`. The corpora are committed, so
neither CI nor `integration/scripts/fuzz.sh` needs Python; this script only documents (and
repeats) where every seed came from. Files are named by content hash, so rerunning is
idempotent.
"""

import hashlib
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
TESTDATA = REPO / "testdata"
NETFILTER = REPO / "plugins" / "netfilter" / "testdata"


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    (d / name).write_bytes(data)


def conflists():
    for p in sorted(TESTDATA.rglob("*")):
        if p.is_file() and p.suffix in (".conflist", ".conf", ".json"):
            yield p


def plugin_configs():
    """Each plugin object of each loadable conflist, with name and cniVersion injected."""
    for p in conflists():
        try:
            doc = json.loads(p.read_bytes())
        except ValueError:
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("plugins"), list):
            continue
        for plugin in doc["plugins"]:
            if not isinstance(plugin, dict):
                continue
            conf = dict(plugin)
            conf["name"] = doc.get("name", "")
            conf["cniVersion"] = doc.get("cniVersion", "")
            yield conf


def results():
    v4 = {"address": "10.88.0.5/16", "gateway": "10.88.0.1"}
    v6 = {"address": "fd00::5/64", "gateway": "fd00::1"}
    ifaces = [
        {"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 1500},
        {"name": "eth0", "mac": "c2:11:22:33:44:55", "sandbox": "/run/netns/c1", "pciID": "0000:00:01.0"},
    ]
    routes = [{"dst": "0.0.0.0/0", "priority": 10, "table": 0}, {"dst": "::/0", "gw": "fd00::1"}]
    dns = {"nameservers": ["10.88.0.1"], "domain": "example", "search": ["a"], "options": ["ndots:2"]}
    yield {"cniVersion": "1.1.0", "interfaces": ifaces, "ips": [dict(v4, interface=1), dict(v6, interface=1)], "routes": routes, "dns": dns}
    yield {"cniVersion": "1.0.0", "ips": [v4], "routes": [{"dst": "0.0.0.0/0"}]}
    for ver in ("0.3.0", "0.3.1", "0.4.0"):
        yield {"cniVersion": ver, "interfaces": ifaces[1:], "ips": [dict(v4, version="4", interface=0), dict(v6, version="6")], "routes": routes[:1], "dns": dns}
    for ver in ("0.1.0", "0.2.0"):
        yield {"cniVersion": ver, "ip4": {"ip": "10.88.0.5/16", "gateway": "10.88.0.1", "routes": [{"dst": "0.0.0.0/0"}]}, "ip6": {"ip": "fd00::5/64"}, "dns": dns}
    yield {"ip4": {"ip": "10.0.0.2/24"}}
    yield {"cniVersion": "1.1.0"}


def main():
    configs = list(plugin_configs())
    for p in conflists():
        put("netconf", p.read_bytes())
        put("conflist", p.read_bytes())
    for conf in configs:
        text = json.dumps(conf)
        put("netconf", text)
        kind = conf.get("type", "")
        for cmd, args in (("ADD", "IP=10.88.0.9"), ("CHECK", "MAC=c2:00:00:00:00:01"), ("DEL", "x;y=z"), ("GC", ""), ("STATUS", ""), ("VERSION", "")):
            prev = dict(conf)
            if cmd in ("ADD", "CHECK") and kind in ("firewall", "tuning", "portmap"):
                prev["prevResult"] = next(results())
            header = f"{kind}|{cmd}|ctr1|eth0|/run/netns/c1|{args}|/opt/cni/bin"
            put("dispatch_env", header + "\n" + json.dumps(prev))
        if isinstance(conf.get("ipam"), dict):
            put("host_local_ipam", json.dumps(conf["ipam"]))
            put("host_local_ipam", json.dumps({"ipam": conf["ipam"], "runtimeConfig": {"ipRanges": [[{"subnet": "10.99.0.0/24"}]]}}))
        if kind == "tuning":
            put("tuning_sysctl", text)
            put("tuning_sysctl", "ifname=eth0.100\n" + text)
    put("tuning_sysctl", json.dumps({"sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1", "net/ipv6/conf/IFNAME/accept_ra": "0"}, "args": {"cni": {"sysctl": {"net.core.somaxconn": "512"}}}}))
    put("dispatch_env", "loopback|VERSION|||||\n" + json.dumps({"cniVersion": "0.4.0"}))
    put("dispatch_env", "host-local|ADD|ctr1|eth0|/run/netns/c1|IgnoreUnknown=1;K8S_POD_NAME=x|/opt/cni/bin\n" + json.dumps({"cniVersion": "1.1.0", "name": "n", "type": "host-local", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}]]}}))
    for r in results():
        put("result_convert", json.dumps(r))
    for i, a in enumerate(["", "IP=10.1.0.5", "IgnoreUnknown=1;FOO=bar", "K8S_POD_NAME=a;K8S_POD_NAMESPACE=b;IP=1.2.3.4;MAC=c2:00:00:00:00:01", "a=b=c", "novalue;;x=", "IgnoreUnknown=maybe"]):
        put("cni_args", bytes([i % 3]) + a.encode())
    for names in (["cnixnet", "ctr1", "eth0", "cnix0"], ["podman", "0123456789abcdef", "eth1", "br,0"], ["-j ACCEPT", "a\"b", "x y", "../x"], ["-s", "10.0.0.0/8", "-m", "comment", "--comment", "name: \"n\" id: \"c\""]):
        put("netfilter_names", "\0".join(names))
    for p in sorted(NETFILTER.iterdir()):
        put("netfilter_names", p.read_bytes())


if __name__ == "__main__":
    main()
