//! Validation of names that arrive from the runtime and later become paths, chain comments or
//! interface names: container IDs, network names and interface names (libcni `pkg/utils` rules).

use crate::error::CniError;

/// The libcni identifier rule `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks a container ID (code 4 `invalid characters in containerID`).
pub fn container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::invalid_env("missing containerID"));
    }
    if !is_identifier(id) {
        return Err(CniError::invalid_env("invalid characters in containerID").with_details(id));
    }
    Ok(())
}

/// Checks a network name (code 7). Names become directory names, so `.` and `..` are refused too.
pub fn network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    if !is_identifier(name) || name == "." || name == ".." {
        return Err(
            CniError::invalid_config("invalid characters found in network name").with_details(name),
        );
    }
    Ok(())
}

/// Checks an interface name (code 4), with libcni's messages.
pub fn interface_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_env("interface name is empty"));
    }
    if name.len() > 15 {
        return Err(CniError::invalid_env("interface name is too long")
            .with_details("interface name should be less than 16 characters"));
    }
    if name == "." || name == ".." {
        return Err(CniError::invalid_env("interface name is . or .."));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(CniError::invalid_env(
            "interface name contains / or : or whitespace characters",
        )
        .with_details(name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn container_ids() {
        for ok in ["a", "ctr1", "cnitool-f09c7c96cd7b16d5da00", "A_b.c-d", "0"] {
            assert!(container_id(ok).is_ok(), "{ok}");
        }
        for bad in ["-bad", ".x", "_x", "a/b", "a b", "a;b", "ä", "../etc"] {
            let e = container_id(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidEnvironment, "{bad}");
            assert_eq!(e.msg, "invalid characters in containerID");
        }
        assert_eq!(container_id("").unwrap_err().msg, "missing containerID");
    }

    #[test]
    fn network_names() {
        assert!(network_name("podman").is_ok());
        assert!(network_name("cni-podman0.x_y").is_ok());
        for bad in ["../../etc", "a/b", ".", "..", "-x", "a b", "a\0b"] {
            let e = network_name(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{bad}");
            assert_eq!(e.msg, "invalid characters found in network name");
        }
        assert_eq!(network_name("").unwrap_err().msg, "missing network name");
    }

    #[test]
    fn interface_names() {
        assert!(interface_name("eth0").is_ok());
        assert!(interface_name("eth0.100").is_ok());
        assert!(interface_name("123456789012345").is_ok());
        let cases = [
            ("", "interface name is empty"),
            ("1234567890123456", "interface name is too long"),
            (".", "interface name is . or .."),
            ("..", "interface name is . or .."),
            (
                "a/b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "eth:1",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "a b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "a\u{a0}b",
                "interface name contains / or : or whitespace characters",
            ),
        ];
        for (name, msg) in cases {
            let e = interface_name(name).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidEnvironment);
            assert_eq!(e.msg, msg, "{name:?}");
        }
    }
}
