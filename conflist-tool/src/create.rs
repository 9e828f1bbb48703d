//! `create`: podman's `network create` flags turned into a [`Network`], with podman's defaults
//! (free `cni-podmanN` name and bridge, free /24 from podman's pools avoiding other networks'
//! subnets and the host's addresses, random ULA /64 for `--ipv6`) and clear refusals.

use std::collections::BTreeMap;
use std::net::IpAddr;

use cni_core::CniVersion;
use ipnetwork::IpNetwork;

use crate::host::HostSnapshot;
use crate::model::ConfDir;
use crate::podman::{self, IpamDriver, Network, Subnet};
use crate::subnets::{self, UsedSubnet};

use self::flags::{Options, key_value, parse_options, parse_range, parse_subnet, usable_in};

/// podman's pools for automatic IPv4 subnets, searched in order, one /24 at a time.
pub const DEFAULT_POOLS: [&str; 5] = [
    "10.89.0.0/16",
    "10.90.0.0/15",
    "10.92.0.0/14",
    "10.96.0.0/11",
    "10.128.0.0/9",
];

/// Prefix of generated network and bridge names.
pub const NAME_PREFIX: &str = "cni-podman";

/// The `create` flags, as given.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// Network name (free `cni-podmanN` when absent).
    pub name: Option<String>,
    /// `bridge` or `macvlan`.
    pub driver: String,
    /// `--subnet`, repeatable.
    pub subnets: Vec<String>,
    /// `--gateway`, i-th for the i-th subnet.
    pub gateways: Vec<String>,
    /// `--ip-range` (CIDR or `start-end`), i-th for the i-th subnet.
    pub ip_ranges: Vec<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--ipv6`.
    pub ipv6: bool,
    /// `--ipam-driver`.
    pub ipam_driver: Option<String>,
    /// `--interface-name` (bridge name, or macvlan parent).
    pub interface_name: Option<String>,
    /// `--opt k=v`.
    pub opts: Vec<String>,
    /// `--label k=v`.
    pub labels: Vec<String>,
    /// `--cni-version`.
    pub cni_version: String,
    /// `--disable-dns`.
    pub disable_dns: bool,
    /// `--ipam-data-dir` (host-local `dataDir`; not a podman flag).
    pub ipam_data_dir: Option<String>,
}

/// Why `create` refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// The name is taken.
    #[error("network name {name:?} is already used by {file}")]
    DuplicateName {
        /// The name.
        name: String,
        /// The file defining it.
        file: String,
    },
    /// A subnet overlaps another network's subnet or a host address.
    #[error("subnet {subnet} overlaps with {owner}")]
    SubnetOverlap {
        /// The requested subnet.
        subnet: IpNetwork,
        /// Who already uses it.
        owner: String,
    },
    /// A gateway outside its subnet (or its network / broadcast address).
    #[error("gateway {gateway} is not a usable address of subnet {subnet}")]
    GatewayOutsideSubnet {
        /// The gateway.
        gateway: IpAddr,
        /// The subnet.
        subnet: IpNetwork,
    },
    /// An address range not inside its subnet.
    #[error("ip range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet {
        /// The range as given.
        range: String,
        /// The subnet.
        subnet: IpNetwork,
    },
    /// An option the driver cannot honour.
    #[error("option {option:?} is not supported with driver {driver:?}")]
    OptionDriver {
        /// The option key.
        option: String,
        /// The driver.
        driver: String,
    },
    /// The macvlan parent does not exist.
    #[error("parent interface {0} does not exist")]
    ParentMissing(String),
    /// Anything else that is wrong with the flags.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> CreateError {
    CreateError::Invalid(msg.into())
}

/// What `create` needs besides the flags.
pub struct CreateContext<'a> {
    /// The configuration directory as it is now.
    pub dir: &'a ConfDir,
    /// The host's links and addresses.
    pub host: &'a HostSnapshot,
    /// Whether a `dnsname` binary is in the CNI path (podman then adds the plugin).
    pub dnsname_available: bool,
    /// Source of the 40 random bits of a ULA global ID.
    pub random: &'a mut dyn FnMut() -> [u8; 5],
}

fn used_names(ctx: &CreateContext<'_>) -> Vec<String> {
    let mut names: Vec<String> = ctx.dir.lists().map(|(_, l)| l.name.clone()).collect();
    names.extend(subnets::bridges_in_use(ctx.dir).into_iter().map(|(b, _)| b));
    names.extend(ctx.host.links.iter().map(|l| l.name.clone()));
    names
}

/// The first `cni-podmanN` (N ≥ 1; 0 is podman's default network) not used as a network name,
/// a bridge name or a live interface.
pub fn free_name(used: &[String]) -> Result<String, CreateError> {
    (1..100_000)
        .map(|n| format!("{NAME_PREFIX}{n}"))
        .find(|c| !used.contains(c))
        .ok_or_else(|| invalid("no free cni-podmanN name left"))
}

fn check_free(subnet: IpNetwork, used: &[UsedSubnet]) -> Result<(), CreateError> {
    match used.iter().find(|u| subnets::overlap(&u.subnet, &subnet)) {
        Some(u) => Err(CreateError::SubnetOverlap {
            subnet,
            owner: u.owner.clone(),
        }),
        None => Ok(()),
    }
}

/// Builds the network `create` would write, or says why not.
pub fn plan(req: &CreateRequest, ctx: &mut CreateContext<'_>) -> Result<Network, CreateError> {
    let driver = req.driver.as_str();
    if !matches!(driver, "bridge" | "macvlan") {
        return Err(invalid(format!(
            "driver {driver:?} is not supported: use bridge or macvlan"
        )));
    }
    let version = CniVersion::parse(&req.cni_version)
        .ok_or_else(|| invalid(format!("unknown CNI version {:?}", req.cni_version)))?;
    let used = used_names(ctx);
    let name = match &req.name {
        Some(n) => {
            cni_core::validate::network_name(n)
                .map_err(|e| invalid(format!("invalid network name {n:?}: {}", e.msg)))?;
            if let Some((file, _)) = ctx.dir.lists().find(|(_, l)| &l.name == n) {
                return Err(CreateError::DuplicateName {
                    name: n.clone(),
                    file: file.path.display().to_string(),
                });
            }
            n.clone()
        }
        None => free_name(&used)?,
    };
    let labels = req
        .labels
        .iter()
        .map(|l| key_value(l, "label"))
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let opts = parse_options(&req.opts, driver)?;

    let ipam_driver = match req.ipam_driver.as_deref() {
        None if driver == "macvlan" && req.subnets.is_empty() => IpamDriver::Dhcp,
        None | Some("host-local") => IpamDriver::HostLocal,
        Some("dhcp") => IpamDriver::Dhcp,
        Some("none") => IpamDriver::None,
        Some(other) => return Err(invalid(format!("unsupported ipam driver {other:?}"))),
    };
    if ipam_driver != IpamDriver::HostLocal {
        let d = req.ipam_driver.as_deref().unwrap_or("dhcp");
        if !req.subnets.is_empty() {
            return Err(invalid(format!(
                "{d} ipam driver is set but subnets are given"
            )));
        }
        if req.ipv6 || !req.gateways.is_empty() || !req.ip_ranges.is_empty() {
            return Err(invalid(format!(
                "--ipv6, --gateway and --ip-range need the host-local ipam driver, not {d}"
            )));
        }
    }
    if driver == "macvlan" && req.internal && ipam_driver == IpamDriver::Dhcp {
        return Err(invalid(
            "internal is not supported with the macvlan driver and the dhcp ipam driver",
        ));
    }
    if req.gateways.len() > req.subnets.len() {
        return Err(invalid("cannot set more gateways than subnets"));
    }
    if req.ip_ranges.len() > req.subnets.len() {
        return Err(invalid("cannot set more ip ranges than subnets"));
    }
    if let Some(dir) = &req.ipam_data_dir
        && !dir.starts_with('/')
    {
        return Err(invalid(format!(
            "--ipam-data-dir must be an absolute path, got {dir:?}"
        )));
    }

    let interface = interface_for(req, &opts, driver, &name, &used, ctx)?;
    let subnets = subnets_for(req, ipam_driver, ctx)?;
    let mut options = opts.stored;
    if driver == "bridge" && opts.bridge_name.is_some() {
        options.remove("com.docker.network.bridge.name");
    }
    Ok(Network {
        name,
        driver: driver.to_owned(),
        network_interface: interface,
        ipv6_enabled: subnets.iter().any(|s| s.subnet.is_ipv6()),
        subnets,
        internal: req.internal,
        dns_enabled: driver == "bridge"
            && !req.disable_dns
            && !req.internal
            && ctx.dnsname_available,
        ipam_driver,
        labels,
        options,
        mtu: opts.mtu,
        vlan: opts.vlan,
        mode: opts.mode,
        isolate: opts.isolate,
        cni_version: version.as_str().to_owned(),
        ipam_data_dir: req.ipam_data_dir.clone(),
    })
}

fn interface_for(
    req: &CreateRequest,
    opts: &Options,
    driver: &str,
    name: &str,
    used: &[String],
    ctx: &CreateContext<'_>,
) -> Result<String, CreateError> {
    if driver == "macvlan" {
        let parent = opts.parent.clone().or_else(|| req.interface_name.clone());
        if let Some(p) = &parent {
            cni_core::validate::interface_name(p)
                .map_err(|e| invalid(format!("invalid parent interface {p:?}: {}", e.msg)))?;
            if ctx.host.link(p).is_none() {
                return Err(CreateError::ParentMissing(p.clone()));
            }
        }
        return Ok(parent.unwrap_or_default());
    }
    let requested = opts
        .bridge_name
        .clone()
        .or_else(|| req.interface_name.clone());
    let Some(bridge) = requested else {
        // A generated network name is itself free as a bridge name, as podman does it.
        return if req.name.is_none() {
            Ok(name.to_owned())
        } else {
            free_name(used)
        };
    };
    cni_core::validate::interface_name(&bridge)
        .map_err(|e| invalid(format!("invalid bridge name {bridge:?}: {}", e.msg)))?;
    if let Some((_, owner)) = subnets::bridges_in_use(ctx.dir)
        .into_iter()
        .find(|(b, _)| *b == bridge)
    {
        return Err(invalid(format!(
            "bridge name {bridge} is already used by network {owner}"
        )));
    }
    if let Some(link) = ctx.host.link(&bridge)
        && link.kind != "bridge"
    {
        return Err(invalid(format!(
            "interface {bridge} already exists and is not a bridge"
        )));
    }
    Ok(bridge)
}

fn subnets_for(
    req: &CreateRequest,
    ipam: IpamDriver,
    ctx: &mut CreateContext<'_>,
) -> Result<Vec<Subnet>, CreateError> {
    let mut used = subnets::used_subnets(ctx.dir, ctx.host);
    let mut out = Vec::new();
    for (i, text) in req.subnets.iter().enumerate() {
        let subnet = parse_subnet(text)?;
        check_free(subnet, &used)?;
        used.push(UsedSubnet {
            subnet,
            owner: format!("--subnet {text}"),
        });
        let gateway = match req.gateways.get(i) {
            Some(g) => {
                let gateway: IpAddr = g
                    .parse()
                    .map_err(|_| invalid(format!("gateway {g:?} is not an address")))?;
                if !usable_in(&subnet, gateway) {
                    return Err(CreateError::GatewayOutsideSubnet { gateway, subnet });
                }
                Some(gateway)
            }
            None if req.internal => None,
            None => podman::first_host(&subnet),
        };
        let range = req
            .ip_ranges
            .get(i)
            .map(|r| parse_range(r, &subnet))
            .transpose()?;
        out.push(Subnet {
            subnet,
            gateway,
            range_start: range.map(|r| r.0),
            range_end: range.map(|r| r.1),
        });
    }
    if ipam != IpamDriver::HostLocal {
        return Ok(out);
    }
    if req.driver == "macvlan" && out.is_empty() {
        return Err(invalid(
            "the macvlan driver needs --subnet when the host-local ipam driver is set",
        ));
    }
    let has_v4 = out.iter().any(|s| s.subnet.is_ipv4());
    let has_v6 = out.iter().any(|s| s.subnet.is_ipv6());
    let gateway = |s: &IpNetwork| {
        if req.internal {
            None
        } else {
            podman::first_host(s)
        }
    };
    if out.is_empty() || (req.ipv6 && !has_v4) {
        let subnet = subnets::free_v4(&DEFAULT_POOLS, &used)
            .ok_or_else(|| invalid("no free /24 subnet left in the default pools"))?;
        used.push(UsedSubnet {
            subnet,
            owner: "the new network".into(),
        });
        out.push(Subnet {
            subnet,
            gateway: gateway(&subnet),
            range_start: None,
            range_end: None,
        });
    }
    if req.ipv6 && !has_v6 {
        let subnet = (0..16)
            .map(|_| subnets::ula_subnet((ctx.random)()))
            .find(|s| check_free(*s, &used).is_ok())
            .ok_or_else(|| invalid("could not find a free random IPv6 ULA subnet"))?;
        out.push(Subnet {
            subnet,
            gateway: gateway(&subnet),
            range_start: None,
            range_end: None,
        });
    }
    Ok(out)
}

mod flags;
#[cfg(test)]
mod tests;
