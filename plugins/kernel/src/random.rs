//! Random numbers for interface names.

use std::io::Read;

/// A random `u32` from `/dev/urandom` (for host-side interface names such as `veth1a2b3c4d`).
/// Without urandom, time and pid still make collisions unlikely, and the callers retry on
/// `EEXIST`.
pub fn random_u32() -> u32 {
    let mut buf = [0u8; 4];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return u32::from_ne_bytes(buf);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_differ() {
        let draws: std::collections::HashSet<u32> = (0..8).map(|_| super::random_u32()).collect();
        assert!(draws.len() > 1, "{draws:?}");
    }
}
