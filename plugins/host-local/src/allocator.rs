//! The reference allocation algorithm, plus the garbage collection and readiness checks built on
//! the same store. Every function here takes a [`StoreLock`], i.e. runs with the lock held.

use std::collections::HashSet;
use std::net::IpAddr;

use cni_core::result::types::IpConfig;
use ipnetwork::IpNetwork;

use crate::error::HostLocalError;
use crate::range::{Range, RangeSet};
use crate::store::{Owner, Reservation, StoreLock, teardown_result};

/// One allocated address: the address with its subnet's prefix, and the subnet's gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The address with the prefix of the subnet it came from, e.g. `10.1.0.5/16`.
    pub address: IpNetwork,
    /// The gateway of that subnet.
    pub gateway: Option<IpAddr>,
}

impl Allocation {
    /// The result entry for this allocation (`ips[]`, without an interface index).
    pub fn to_ip_config(&self) -> IpConfig {
        IpConfig {
            address: self.address,
            gateway: self.gateway,
            interface: None,
        }
    }

    fn new(ip: IpAddr, range: &Range) -> Result<Allocation, HostLocalError> {
        let address = IpNetwork::new(ip, range.subnet().prefix())
            .map_err(|_| HostLocalError::FamilyMismatch)?;
        Ok(Allocation {
            address,
            gateway: Some(range.gateway()),
        })
    }
}

/// Allocates one address per range set for `(id, ifname)`, exactly like the reference ADD.
///
/// Per range set `i`: a requested address lying in the set is reserved (refused if it is its
/// range's gateway or already taken); otherwise the call fails if the attachment (or the
/// legacy ID) already owns an address in the set, and else the first free candidate of
/// [`RangeSet::round_robin`] (starting after `last_reserved_ip.<i>`) is reserved. Errors are
/// wrapped as `failed to allocate for range <i>`. Requested addresses matching no set fail the
/// whole call. On any failure, the reservations made by this call are removed again.
pub fn allocate(
    lock: &StoreLock<'_>,
    range_sets: &[RangeSet],
    id: &str,
    ifname: &str,
    requested: &[IpAddr],
) -> Result<Vec<Allocation>, HostLocalError> {
    let mut pending: Vec<IpAddr> = Vec::with_capacity(requested.len());
    for ip in requested.iter().map(|ip| ip.to_canonical()) {
        if !pending.contains(&ip) {
            pending.push(ip);
        }
    }

    let mut state = CallState {
        lock,
        id,
        ifname,
        existing: None,
        made: Vec::new(),
    };
    let mut out = Vec::with_capacity(range_sets.len());
    for (index, set) in range_sets.iter().enumerate() {
        match state.allocate_from(index, set, &mut pending) {
            Ok(allocation) => out.push(allocation),
            Err(source) => {
                state.rollback();
                return Err(HostLocalError::AllocateRange {
                    index,
                    source: Box::new(source),
                });
            }
        }
    }
    if !pending.is_empty() {
        state.rollback();
        return Err(HostLocalError::RequestedNotAllocated { ips: pending });
    }
    Ok(out)
}

/// What one ADD has seen and done so far.
struct CallState<'l, 'a> {
    lock: &'l StoreLock<'a>,
    id: &'l str,
    ifname: &'l str,
    /// Directory listing, read on first need: (addresses owned by the attachment in file-name
    /// order, addresses whose file exists under the canonical name).
    existing: Option<(Vec<IpAddr>, HashSet<IpAddr>)>,
    /// Addresses reserved by this call.
    made: Vec<IpAddr>,
}

impl CallState<'_, '_> {
    fn allocate_from(
        &mut self,
        index: usize,
        set: &RangeSet,
        pending: &mut Vec<IpAddr>,
    ) -> Result<Allocation, HostLocalError> {
        let requested = pending
            .iter()
            .enumerate()
            .find_map(|(i, ip)| set.range_for(*ip).map(|r| (i, r)));
        if let Some((position, range)) = requested {
            let ip = pending.remove(position);
            if ip == range.gateway() {
                return Err(HostLocalError::RequestedIsGateway { ip });
            }
            if !self.lock.reserve(self.id, self.ifname, ip, index)? {
                return Err(HostLocalError::RequestedUnavailable {
                    ip,
                    range_set: set.to_string(),
                });
            }
            self.made.push(ip);
            return Allocation::new(ip, range);
        }

        if self.existing.is_none() {
            self.existing = Some(self.list_existing()?);
        }
        let Some((owned, taken)) = self.existing.as_mut() else {
            return Err(HostLocalError::RangeExhausted {
                range_set: set.to_string(),
            });
        };
        if let Some(ip) = owned.iter().find(|ip| set.contains(**ip)) {
            return Err(HostLocalError::DuplicateAllocation {
                ip: *ip,
                id: self.id.to_owned(),
            });
        }
        let last = self.lock.last_reserved_ip(index);
        for (ip, range) in set.round_robin(last) {
            if taken.contains(&ip) {
                continue;
            }
            if self.lock.reserve(self.id, self.ifname, ip, index)? {
                self.made.push(ip);
                taken.insert(ip);
                return Allocation::new(ip, range);
            }
        }
        Err(HostLocalError::RangeExhausted {
            range_set: set.to_string(),
        })
    }

    /// The attachment's own addresses (re-read from their files when the owner cache named
    /// them; a cached "not owned" is trusted, see [`crate::store::owner_cache`]) and every
    /// address whose file exists under the canonical name.
    fn list_existing(&self) -> Result<(Vec<IpAddr>, HashSet<IpAddr>), HostLocalError> {
        let mut reservations = self.lock.reservations()?;
        let mine = |r: &Reservation| owned_by(r, self.id, self.ifname);
        let owned = match self.lock.confirmed(&reservations, mine)? {
            Some(owned) => owned,
            None => {
                reservations = self.lock.reservations_from_files()?;
                reservations.iter().filter(|r| mine(r)).cloned().collect()
            }
        };
        let taken = reservations
            .iter()
            .filter(|r| r.has_canonical_name())
            .map(|r| r.ip)
            .collect();
        Ok((owned.into_iter().map(|r| r.ip).collect(), taken))
    }

    fn rollback(&self) {
        for ip in &self.made {
            // Best effort: the original error is what the caller needs to see.
            let _ = self.lock.remove(*ip);
        }
    }
}

/// True when the reservation belongs to `(id, ifname)` or, in the legacy format, to `id`.
fn owned_by(r: &Reservation, id: &str, ifname: &str) -> bool {
    match r.owner() {
        Owner::Attachment {
            id: rid,
            ifname: rif,
        } => rid == id.trim() && rif == ifname,
        Owner::Legacy { id: rid } => rid == id.trim(),
        Owner::Unreadable => false,
    }
}

/// Releases every reservation not owned by one of the `valid` attachments
/// (`(container ID, ifname)`). Legacy ID-only reservations are kept when any valid attachment
/// has that ID; unreadable ones are released. An empty `valid` list releases everything.
/// `lock` and `last_reserved_ip.*` are never touched. Every removal is attempted; failures are
/// reported together. Returns the released addresses.
pub fn gc(lock: &StoreLock<'_>, valid: &[(String, String)]) -> Result<Vec<IpAddr>, HostLocalError> {
    let attachments: HashSet<(&str, &str)> = valid
        .iter()
        .map(|(id, ifname)| (id.trim(), ifname.as_str()))
        .collect();
    let ids: HashSet<&str> = valid.iter().map(|(id, _)| id.trim()).collect();
    // Not a hot path: every owner is read from its file, the cache is not trusted here.
    let reservations = lock.reservations_from_files()?;
    let stale = reservations.iter().filter(|r| match r.owner() {
        Owner::Attachment { id, ifname } => !attachments.contains(&(id.as_str(), ifname.as_str())),
        Owner::Legacy { id } => !ids.contains(id.as_str()),
        Owner::Unreadable => true,
    });
    let mut released = Vec::new();
    let mut failures = Vec::new();
    lock.remove_all(stale, &mut released, &mut failures);
    teardown_result(released, failures)
}

/// Fails when some range set has no free address left, i.e. when an ADD without requested
/// addresses could not succeed. Counts reservation files (canonical names, gateways excluded)
/// against each set's capacity, so it is cheap even for huge IPv6 ranges.
pub fn check_capacity(lock: &StoreLock<'_>, range_sets: &[RangeSet]) -> Result<(), HostLocalError> {
    let reserved: HashSet<IpAddr> = lock
        .reservations()?
        .into_iter()
        .filter(Reservation::has_canonical_name)
        .map(|r| r.ip)
        .collect();
    for (index, set) in range_sets.iter().enumerate() {
        let used = reserved
            .iter()
            .filter(|ip| set.range_for(**ip).is_some_and(|r| r.gateway() != **ip))
            .count();
        if u128::try_from(used).unwrap_or(u128::MAX) >= set.capacity() {
            return Err(HostLocalError::RangeSetFull {
                index,
                source: Box::new(HostLocalError::RangeExhausted {
                    range_set: set.to_string(),
                }),
            });
        }
    }
    Ok(())
}
