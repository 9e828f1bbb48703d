//! resolv.conf parsing for the result's `dns` (the reference's `parseResolvConf`).

use std::path::Path;

use cni_core::result::types::Dns;

use crate::error::HostLocalError;

/// Reads and parses a resolv.conf-style file; see [`parse_resolv_conf`].
pub fn parse_resolv_conf_file(path: &Path) -> Result<Dns, HostLocalError> {
    let bytes = std::fs::read(path).map_err(|source| HostLocalError::ResolvConf {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_resolv_conf(&String::from_utf8_lossy(&bytes)))
}

/// Parses resolv.conf text: lines are trimmed; empty lines and lines starting with `#` or `;`
/// are skipped, as are lines with fewer than two fields. `nameserver` appends its first
/// argument, `domain` sets (last wins), `search` and `options` append all their arguments.
/// Anything else is ignored.
pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [keyword, first, ..] = fields.as_slice() else {
            continue;
        };
        let all = || fields[1..].iter().map(|s| (*s).to_owned());
        match *keyword {
            "nameserver" => dns.nameservers.push((*first).to_owned()),
            "domain" => dns.domain = (*first).to_owned(),
            "search" => dns.search.extend(all()),
            "options" => dns.options.extend(all()),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_reference() {
        let text = "# comment\n; other comment\n\nnameserver 10.1.2.3\n  nameserver   fd00::53  extra\n\
                    domain example.com\ndomain last.example\nsearch a.example b.example\n\
                    search c.example\noptions ndots:5 debug\noptions rotate\nsortlist 1.2.3.4\n\
                    nameserver\n\tdomain\r\n";
        let dns = parse_resolv_conf(text);
        assert_eq!(dns.nameservers, ["10.1.2.3", "fd00::53"]);
        assert_eq!(dns.domain, "last.example");
        assert_eq!(dns.search, ["a.example", "b.example", "c.example"]);
        assert_eq!(dns.options, ["ndots:5", "debug", "rotate"]);
    }

    #[test]
    fn empty_file_gives_empty_dns() {
        assert!(parse_resolv_conf("").is_empty());
        assert!(parse_resolv_conf("# only\n;comments\n").is_empty());
    }

    #[test]
    fn missing_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse_resolv_conf_file(&dir.path().join("nope")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidConfig);
        assert!(
            err.message().starts_with("failed to read resolvConf "),
            "{}",
            err.message()
        );
    }

    #[test]
    fn reads_a_file_with_invalid_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, b"nameserver 1.1.1.1\n# \xff\xfe\nsearch x\n").unwrap();
        let dns = parse_resolv_conf_file(&path).unwrap();
        assert_eq!(dns.nameservers, ["1.1.1.1"]);
        assert_eq!(dns.search, ["x"]);
    }
}
