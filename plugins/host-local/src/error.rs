//! The crate's single error type and its classification into [`ErrorKind`]s.
//!
//! Display texts follow the reference plugin word for word. A variant that wraps another error
//! (`invalid range set N`, `failed to allocate for range N`, store I/O) does not repeat the cause
//! in its own text; [`HostLocalError::message`] renders the whole chain joined by `": "`, which is
//! exactly the text the Go plugin prints.

use std::error::Error as _;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

/// What kind of failure an error is; the CNI layer maps each kind to a CNI error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The IPAM configuration (or a name used to build a path) is invalid (CNI code 7).
    InvalidConfig,
    /// A requested address is taken, is a gateway, or lies in no range set (CNI code 110).
    AddressUnavailable,
    /// A range set has no free address left (CNI code 111).
    RangeExhausted,
    /// The attachment already owns an address in the range set (CNI code 112).
    DuplicateAllocation,
    /// Reading or writing the on-disk store failed (CNI code 113).
    Store,
    /// Another process held the store's lock for longer than the lock timeout (CNI code 11,
    /// "try again later"); nothing was changed.
    LockTimeout,
    /// CHECK found no address owned by the container (CNI code 114).
    NotFound,
}

/// Everything that can go wrong in the host-local library.
#[derive(Debug, thiserror::Error)]
pub enum HostLocalError {
    // ----- configuration -----
    /// The `ipam` object (or a range inside it) could not be decoded.
    #[error("{reason}")]
    Decode {
        /// Go-style description, e.g. `invalid CIDR address: 10.0.0.0`.
        reason: String,
    },
    /// Neither `ranges`, a legacy `subnet` nor `runtimeConfig.ipRanges` was given.
    #[error("no IP ranges specified")]
    NoRanges,
    /// Range set `index` failed validation.
    #[error("invalid range set {index}")]
    InvalidRangeSet {
        /// 0-based index of the range set (after runtime and legacy ranges were prepended).
        index: usize,
        /// Why it is invalid.
        #[source]
        source: Box<HostLocalError>,
    },
    /// A range has no `subnet` (the Go plugin's wording for a nil subnet address).
    #[error("IP <nil> not v4 nor v6")]
    MissingSubnet,
    /// The subnet is a /31, /32, /127 or /128.
    #[error("Network {network} too small to allocate from")]
    NetworkTooSmall {
        /// The subnet as written (Go `IPNet.String()`).
        network: String,
    },
    /// An IPv4-mapped IPv6 subnet address with an IPv6 prefix.
    #[error("IPNet IP and Mask version mismatch")]
    FamilyMismatch,
    /// The subnet address has bits set beyond its prefix.
    #[error(
        "Network has host bits set. For a subnet mask of length {prefix} the network address is {network}"
    )]
    HostBitsSet {
        /// Prefix length.
        prefix: u8,
        /// The network address the subnet should have used.
        network: IpAddr,
    },
    /// `rangeStart` lies outside the subnet (or after `rangeEnd`).
    #[error("RangeStart {start} not in network {network}")]
    RangeStartNotInNetwork {
        /// The configured start.
        start: IpAddr,
        /// The subnet.
        network: String,
    },
    /// `rangeEnd` lies outside the subnet (or before `rangeStart`).
    #[error("RangeEnd {end} not in network {network}")]
    RangeEndNotInNetwork {
        /// The configured end.
        end: IpAddr,
        /// The subnet.
        network: String,
    },
    /// A range set has no ranges.
    #[error("empty range set")]
    EmptyRangeSet,
    /// A range set mixes IPv4 and IPv6 ranges.
    #[error("mixed address families")]
    MixedAddressFamilies,
    /// Two ranges of one range set overlap (texts are `start-end`).
    #[error("subnets {first} and {second} overlap")]
    RangesOverlap {
        /// First range, `start-end`.
        first: String,
        /// Second range, `start-end`.
        second: String,
    },
    /// Two range sets overlap.
    #[error("range set {first} overlaps with {second}")]
    RangeSetsOverlap {
        /// Index of the first set.
        first: usize,
        /// Index of the second set.
        second: usize,
    },
    /// More than one range set of a family with a config version below 0.3.0.
    #[error("CNI version {version} does not support more than 1 address per family")]
    TooManyAddressesPerFamily {
        /// The config's `cniVersion` as given.
        version: String,
    },
    /// A requested address could not be parsed.
    #[error("invalid IP address: {value}")]
    InvalidRequestedIp {
        /// The text that failed to parse.
        value: String,
    },
    /// The network name cannot be used as a directory name.
    #[error("invalid characters found in network name {name:?}")]
    InvalidNetworkName {
        /// The rejected name.
        name: String,
    },
    /// The container ID is not a valid CNI container ID.
    #[error("invalid characters in containerID {id:?}")]
    InvalidContainerId {
        /// The rejected ID.
        id: String,
    },
    /// The interface name is not a valid CNI interface name.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidInterfaceName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// `resolvConf` could not be read.
    #[error("failed to read resolvConf {path}")]
    ResolvConf {
        /// The configured path.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },

    // ----- allocation -----
    /// Allocation from range set `index` failed.
    #[error("failed to allocate for range {index}")]
    AllocateRange {
        /// 0-based range set index.
        index: usize,
        /// Why.
        #[source]
        source: Box<HostLocalError>,
    },
    /// The requested address is the gateway of its range.
    #[error("requested ip {ip} is subnet's gateway")]
    RequestedIsGateway {
        /// The requested address.
        ip: IpAddr,
    },
    /// The requested address is already reserved.
    #[error("requested IP address {ip} is not available in range set {range_set}")]
    RequestedUnavailable {
        /// The requested address.
        ip: IpAddr,
        /// The range set, `start-end[,start-end…]`.
        range_set: String,
    },
    /// Some requested addresses lie in no range set.
    #[error("failed to allocate all requested IPs:{}", join_ips(.ips))]
    RequestedNotAllocated {
        /// The addresses left over.
        ips: Vec<IpAddr>,
    },
    /// The attachment already owns an address in this range set.
    #[error("{ip} has been allocated to {id}, duplicate allocation is not allowed")]
    DuplicateAllocation {
        /// The address it already owns.
        ip: IpAddr,
        /// The container ID.
        id: String,
    },
    /// Every address of the range set is reserved.
    #[error("no IP addresses available in range set: {range_set}")]
    RangeExhausted {
        /// The range set, `start-end[,start-end…]`.
        range_set: String,
    },
    /// STATUS: a range set has no free address, so ADD cannot succeed.
    #[error("range set {index} is exhausted")]
    RangeSetFull {
        /// 0-based range set index.
        index: usize,
        /// The exhaustion itself ([`HostLocalError::RangeExhausted`]).
        #[source]
        source: Box<HostLocalError>,
    },
    /// CHECK found no address owned by the container.
    #[error("host-local: Failed to find address added by container {id}")]
    NotFound {
        /// The container ID.
        id: String,
    },

    // ----- store -----
    /// An I/O operation on the store failed.
    #[error("failed to {action} {path}")]
    Store {
        /// What was being done, e.g. `create directory`, `lock`, `write`.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// Several independent teardown steps failed (each was attempted).
    #[error("{}", join_messages(.failures))]
    Teardown {
        /// The individual failures, in the order they happened.
        failures: Vec<HostLocalError>,
    },
}

impl HostLocalError {
    /// Classifies the error; wrappers take the kind of what they wrap.
    pub fn kind(&self) -> ErrorKind {
        use HostLocalError as E;
        match self {
            E::Decode { .. }
            | E::NoRanges
            | E::InvalidRangeSet { .. }
            | E::MissingSubnet
            | E::NetworkTooSmall { .. }
            | E::FamilyMismatch
            | E::HostBitsSet { .. }
            | E::RangeStartNotInNetwork { .. }
            | E::RangeEndNotInNetwork { .. }
            | E::EmptyRangeSet
            | E::MixedAddressFamilies
            | E::RangesOverlap { .. }
            | E::RangeSetsOverlap { .. }
            | E::TooManyAddressesPerFamily { .. }
            | E::InvalidRequestedIp { .. }
            | E::InvalidNetworkName { .. }
            | E::InvalidContainerId { .. }
            | E::InvalidInterfaceName { .. }
            | E::ResolvConf { .. } => ErrorKind::InvalidConfig,
            E::AllocateRange { source, .. } | E::RangeSetFull { source, .. } => source.kind(),
            E::RequestedIsGateway { .. }
            | E::RequestedUnavailable { .. }
            | E::RequestedNotAllocated { .. } => ErrorKind::AddressUnavailable,
            E::DuplicateAllocation { .. } => ErrorKind::DuplicateAllocation,
            E::RangeExhausted { .. } => ErrorKind::RangeExhausted,
            E::NotFound { .. } => ErrorKind::NotFound,
            E::Store { source, .. } if cni_core::lock::is_timeout(source) => ErrorKind::LockTimeout,
            E::Store { .. } => ErrorKind::Store,
            E::Teardown { failures } => failures
                .first()
                .map_or(ErrorKind::Store, HostLocalError::kind),
        }
    }

    /// The full text: this error and every cause, joined by `": "` (the reference's wording,
    /// e.g. `failed to allocate for range 0: no IP addresses available in range set: …`).
    pub fn message(&self) -> String {
        let mut out = self.to_string();
        let mut cause = self.source();
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }

    /// Builds a [`HostLocalError::Store`].
    pub(crate) fn store(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        HostLocalError::Store {
            action,
            path: path.into(),
            source,
        }
    }
}

fn join_ips(ips: &[IpAddr]) -> String {
    ips.iter().map(|ip| format!(" {ip}")).collect()
}

fn join_messages(failures: &[HostLocalError]) -> String {
    failures
        .iter()
        .map(HostLocalError::message)
        .collect::<Vec<_>>()
        .join("; ")
}
