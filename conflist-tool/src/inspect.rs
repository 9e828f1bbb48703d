//! `ls` and `inspect`: podman's view of each network (name, driver, bridge, subnets, gateways,
//! ranges, internal, isolate, mtu, labels, options, plugin chain, file), as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;

use serde::Serialize;

use crate::model::{ConfDir, ConfFile, ConfList};
use crate::podman::{self, IpamDriver, Network};

/// One address range of a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseRange {
    /// First address handed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_ip: Option<String>,
    /// Last address handed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ip: Option<String>,
}

/// One subnet in podman's inspect shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetView {
    /// The subnet.
    pub subnet: String,
    /// Its gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The configured range, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_range: Option<LeaseRange>,
}

/// `inspect`'s view of a network: podman's fields plus the tool's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkView {
    /// Name.
    pub name: String,
    /// podman's network ID (SHA-256 of the name).
    pub id: String,
    /// First plugin's type.
    pub driver: String,
    /// Bridge or master.
    pub network_interface: String,
    /// File change time (podman's `Created`), RFC 3339 UTC.
    pub created: String,
    /// Subnets.
    pub subnets: Vec<SubnetView>,
    /// A v6 subnet exists.
    pub ipv6_enabled: bool,
    /// No gateway, no masquerade.
    pub internal: bool,
    /// dnsname in the chain.
    pub dns_enabled: bool,
    /// `args.podman_labels`.
    pub labels: BTreeMap<String, String>,
    /// `args.podman_options`.
    pub options: BTreeMap<String, String>,
    /// `{"driver": <ipam driver>}`.
    pub ipam_options: BTreeMap<String, String>,
    /// Firewall ingress policy when isolated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolate: Option<String>,
    /// MTU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// VLAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// macvlan mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The list's `cniVersion`.
    pub cni_version: String,
    /// Plugin types in chain order.
    pub plugins: Vec<String>,
    /// The file.
    pub file: String,
}

fn ipam_name(d: IpamDriver) -> &'static str {
    match d {
        IpamDriver::HostLocal => "host-local",
        IpamDriver::Dhcp => "dhcp",
        IpamDriver::None => "none",
        IpamDriver::Other => "other",
    }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// The inspect view of a loaded list.
pub fn view(file: &ConfFile, list: &ConfList) -> NetworkView {
    let net: Network = podman::network_from_list(list);
    let created = std::fs::metadata(&file.path)
        .map(|m| rfc3339(m.ctime()))
        .unwrap_or_default();
    NetworkView {
        id: podman::network_id(&net.name),
        name: net.name,
        driver: net.driver,
        network_interface: net.network_interface,
        created,
        subnets: net
            .subnets
            .iter()
            .map(|s| SubnetView {
                subnet: s.subnet.to_string(),
                gateway: s.gateway.map(|g| g.to_string()),
                lease_range: (s.range_start.is_some() || s.range_end.is_some()).then(|| {
                    LeaseRange {
                        start_ip: s.range_start.map(|i| i.to_string()),
                        end_ip: s.range_end.map(|i| i.to_string()),
                    }
                }),
            })
            .collect(),
        ipv6_enabled: net.ipv6_enabled,
        internal: net.internal,
        dns_enabled: net.dns_enabled,
        labels: net.labels,
        options: net.options,
        ipam_options: BTreeMap::from([(
            "driver".to_owned(),
            ipam_name(net.ipam_driver).to_owned(),
        )]),
        isolate: net.isolate.map(|i| i.ingress_policy().to_owned()),
        mtu: net.mtu,
        vlan: net.vlan,
        mode: net.mode,
        cni_version: net.cni_version,
        plugins: list.plugin_types(),
        file: file.path.display().to_string(),
    }
}

fn pairs(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The view as aligned text.
pub fn render_text(v: &NetworkView) -> String {
    let mut out = String::new();
    let mut line = |k: &str, val: String| {
        let _ = writeln!(out, "{:<12} {val}", format!("{k}:"));
    };
    line("Name", v.name.clone());
    line("ID", v.id.clone());
    line("Driver", v.driver.clone());
    line(
        "Interface",
        Some(v.network_interface.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".into()),
    );
    if v.subnets.is_empty() {
        line("Subnet", "-".into());
    }
    for s in &v.subnets {
        let mut text = s.subnet.clone();
        if let Some(g) = &s.gateway {
            let _ = write!(text, "  gateway {g}");
        }
        if let Some(r) = &s.lease_range {
            let _ = write!(
                text,
                "  range {}-{}",
                r.start_ip.as_deref().unwrap_or("…"),
                r.end_ip.as_deref().unwrap_or("…")
            );
        }
        line("Subnet", text);
    }
    line(
        "IPAM",
        v.ipam_options.get("driver").cloned().unwrap_or_default(),
    );
    line("Internal", v.internal.to_string());
    line("IPv6", v.ipv6_enabled.to_string());
    line("DNS", v.dns_enabled.to_string());
    line("Isolate", v.isolate.clone().unwrap_or_else(|| "-".into()));
    line("MTU", v.mtu.map_or_else(|| "-".into(), |m| m.to_string()));
    line("VLAN", v.vlan.map_or_else(|| "-".into(), |m| m.to_string()));
    if let Some(m) = &v.mode {
        line("Mode", m.clone());
    }
    line("Labels", pairs(&v.labels));
    line("Options", pairs(&v.options));
    line("Plugins", v.plugins.join(" -> "));
    line("CNI version", v.cni_version.clone());
    line("File", v.file.clone());
    line("Created", v.created.clone());
    out
}

/// One `ls` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LsRow {
    /// Network name ("" for a broken file).
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Bridge or master.
    pub network_interface: String,
    /// Subnets.
    pub subnets: Vec<String>,
    /// `cniVersion`.
    pub cni_version: String,
    /// The file.
    pub file: String,
    /// `ok`, `shadowed` (an earlier file has the name) or `broken`.
    pub status: String,
    /// Why the file is broken or shadowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Every file of the directory as an `ls` row, in libcni's order.
pub fn rows(dir: &ConfDir) -> Vec<LsRow> {
    let mut seen: Vec<(String, String)> = Vec::new();
    dir.files
        .iter()
        .map(|f| match &f.list {
            Err(e) => LsRow {
                name: String::new(),
                driver: String::new(),
                network_interface: String::new(),
                subnets: Vec::new(),
                cni_version: String::new(),
                file: f.path.display().to_string(),
                status: "broken".into(),
                note: Some(e.to_string()),
            },
            Ok(list) => {
                let net = podman::network_from_list(list);
                let winner = seen
                    .iter()
                    .find(|(n, _)| *n == list.name)
                    .map(|(_, f)| f.clone());
                if winner.is_none() {
                    seen.push((list.name.clone(), f.file_name()));
                }
                LsRow {
                    name: list.name.clone(),
                    driver: net.driver,
                    network_interface: net.network_interface,
                    subnets: net.subnets.iter().map(|s| s.subnet.to_string()).collect(),
                    cni_version: list.cni_version.clone(),
                    file: f.path.display().to_string(),
                    status: if winner.is_some() { "shadowed" } else { "ok" }.into(),
                    note: winner.map(|w| format!("{w} defines {:?} first", list.name)),
                }
            }
        })
        .collect()
}

/// `ls` as a table.
pub fn render_rows(rows: &[LsRow]) -> String {
    let table: Vec<[String; 6]> = std::iter::once(
        ["NAME", "DRIVER", "INTERFACE", "SUBNETS", "VERSION", "FILE"].map(String::from),
    )
    .chain(rows.iter().map(|r| {
        let file = match &r.note {
            Some(n) => format!("{} ({}: {n})", r.file, r.status),
            None => r.file.clone(),
        };
        [
            r.name.clone(),
            r.driver.clone(),
            r.network_interface.clone(),
            r.subnets.join(","),
            r.cni_version.clone(),
            file,
        ]
    }))
    .collect();
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_marks_shadowed_and_broken_files() {
        let tmp = tempfile::tempdir().unwrap();
        let list = |name: &str, subnet: &str| {
            serde_json::json!({"cniVersion": "0.4.0", "name": name, "plugins": [{"type": "bridge",
                "bridge": "cni-x", "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]]}}]})
            .to_string()
        };
        std::fs::write(tmp.path().join("10-a.conflist"), list("a", "10.1.0.0/24")).unwrap();
        std::fs::write(tmp.path().join("20-a.conflist"), list("a", "10.2.0.0/24")).unwrap();
        std::fs::write(tmp.path().join("30-x.conflist"), "{").unwrap();
        let rows = rows(&ConfDir::read(tmp.path()));
        let status: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(status, ["ok", "shadowed", "broken"]);
        assert_eq!(rows[0].subnets, ["10.1.0.0/24"]);
        assert_eq!(
            rows[1].note.as_deref(),
            Some("10-a.conflist defines \"a\" first")
        );
        let table = render_rows(&rows);
        assert!(table.starts_with("NAME"), "{table}");
        assert_eq!(table.lines().count(), 4);
        let file = ConfFile::load(&tmp.path().join("10-a.conflist"));
        let view = view(&file, file.list.as_ref().unwrap());
        assert_eq!(view.ipam_options["driver"], "host-local");
        assert_eq!(view.subnets[0].gateway.as_deref(), Some("10.1.0.1"));
        assert!(render_text(&view).contains("Subnet:      10.1.0.0/24  gateway 10.1.0.1"));
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
