//! `rm NAME`: removes the file that defines a network (under the directory lock); with
//! `--force` also attachments in the cache are no obstacle, and the bridge link goes too when
//! no container uses it (no port on it, no other network on it).

use std::path::{Path, PathBuf};

use crate::host::{HostError, HostSnapshot};
use crate::model::ConfDir;
use crate::runtime::cache;
use crate::store::{self, StoreError};
use crate::subnets;

/// What `rm` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The file removed.
    pub file: PathBuf,
    /// The bridge link deleted, if any.
    pub bridge_deleted: Option<String>,
    /// Why the bridge was kept (with `--force`), if it was.
    pub bridge_kept: Option<String>,
    /// Other files still defining the same name (now the effective one is the first of them).
    pub still_defined_by: Vec<PathBuf>,
}

/// Why `rm` refused.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// Not a valid network name (also refuses anything path-like).
    #[error("invalid network name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// No file defines it.
    #[error("no network {name:?} in {dir}")]
    NotFound {
        /// The name.
        name: String,
        /// The directory.
        dir: String,
    },
    /// Attachments exist in the result cache.
    #[error("network {name:?} has attachments in the result cache ({}): detach them first (exec del), or use --force", .attachments.join(", "))]
    InUse {
        /// The name.
        name: String,
        /// `containerID/ifname` of each.
        attachments: Vec<String>,
    },
    /// Removing the file failed.
    #[error("cannot remove the network file")]
    Store(#[from] StoreError),
    /// Deleting the bridge failed.
    #[error("the file is removed, but deleting the bridge failed")]
    Bridge(#[source] HostError),
}

/// Removes network `name` from `dir`. The caller holds the directory lock. `host` and
/// `delete_link` are only used with `force`.
pub fn remove_network(
    dir: &Path,
    name: &str,
    cache_dir: &Path,
    force: bool,
    host: Option<&HostSnapshot>,
    delete_link: &mut dyn FnMut(&str) -> Result<(), HostError>,
) -> Result<Removed, RemoveError> {
    cni_core::validate::network_name(name).map_err(|e| RemoveError::InvalidName {
        name: name.to_owned(),
        reason: e.msg,
    })?;
    let conf = ConfDir::read(dir);
    let mut matches = conf.lists().filter(|(_, l)| l.name == name);
    let Some((file, list)) = matches.next() else {
        return Err(RemoveError::NotFound {
            name: name.to_owned(),
            dir: dir.display().to_string(),
        });
    };
    let still_defined_by: Vec<PathBuf> = matches.map(|(f, _)| f.path.clone()).collect();
    let attachments: Vec<String> = cache::list(cache_dir)
        .into_iter()
        .filter_map(|(_, e)| e.ok())
        .filter(|a| a.network_name == name)
        .map(|a| format!("{}/{}", a.container_id, a.if_name))
        .collect();
    if !attachments.is_empty() && !force {
        return Err(RemoveError::InUse {
            name: name.to_owned(),
            attachments,
        });
    }
    store::remove(&file.path)?;
    let mut removed = Removed {
        file: file.path.clone(),
        bridge_deleted: None,
        bridge_kept: None,
        still_defined_by,
    };
    let (Some(bridge), true, Some(host)) = (subnets::list_bridge(list), force, host) else {
        return Ok(removed);
    };
    let others: Vec<String> = conf
        .lists()
        .filter(|(f, l)| f.path != file.path && subnets::list_bridge(l).as_deref() == Some(&bridge))
        .map(|(_, l)| l.name.clone())
        .collect();
    let ports = host.ports_of(&bridge);
    removed.bridge_kept = if host.link(&bridge).is_none_or(|l| l.kind != "bridge") {
        Some(format!("no bridge {bridge} on this host"))
    } else if !ports.is_empty() {
        let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        Some(format!(
            "bridge {bridge} still has ports ({}): containers use it",
            names.join(", ")
        ))
    } else if !others.is_empty() {
        Some(format!(
            "bridge {bridge} is also used by network {}",
            others.join(", ")
        ))
    } else {
        delete_link(&bridge).map_err(RemoveError::Bridge)?;
        removed.bridge_deleted = Some(bridge);
        None
    };
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::host::HostLink;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net.d");
        fs::create_dir(&dir).unwrap();
        let list = serde_json::json!({"cniVersion": "0.4.0", "name": "web",
            "plugins": [{"type": "bridge", "bridge": "cni-web"}]});
        fs::write(dir.join("web.conflist"), list.to_string()).unwrap();
        let cache = tmp.path().join("cache");
        (tmp, dir, cache)
    }

    fn host(with_port: bool) -> HostSnapshot {
        let mut links = vec![HostLink {
            index: 7,
            name: "cni-web".into(),
            kind: "bridge".into(),
            ..HostLink::default()
        }];
        if with_port {
            links.push(HostLink {
                index: 8,
                name: "veth1".into(),
                kind: "veth".into(),
                master: Some(7),
                ..HostLink::default()
            });
        }
        HostSnapshot { links }
    }

    #[test]
    fn refuses_paths_and_unknown_names() {
        let (_tmp, dir, cache) = setup();
        let mut never = |_: &str| -> Result<(), HostError> { panic!("no link may be deleted") };
        let e = remove_network(&dir, "../web", &cache, true, None, &mut never).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid network name \"../web\""),
            "{e}"
        );
        let e = remove_network(&dir, "db", &cache, true, None, &mut never).unwrap_err();
        assert!(e.to_string().starts_with("no network \"db\" in"), "{e}");
        assert!(dir.join("web.conflist").exists());
    }

    #[test]
    fn cached_attachments_block_unless_forced_and_ports_keep_the_bridge() {
        let (_tmp, dir, cache) = setup();
        let entry = cache::CachedAttachment {
            kind: cache::KIND_V1.into(),
            container_id: "c1".into(),
            config: Vec::new(),
            if_name: "eth0".into(),
            network_name: "web".into(),
            netns: String::new(),
            cni_args: Vec::new(),
            capability_args: serde_json::Map::new(),
            result: None,
        };
        cache::write(&cache, &entry).unwrap();
        let mut deleted = Vec::new();
        let mut delete = |n: &str| -> Result<(), HostError> {
            deleted.push(n.to_owned());
            Ok(())
        };
        let e = remove_network(&dir, "web", &cache, false, None, &mut delete).unwrap_err();
        assert!(matches!(e, RemoveError::InUse { .. }), "{e}");
        let h = host(true);
        let r = remove_network(&dir, "web", &cache, true, Some(&h), &mut delete).unwrap();
        assert!(r.bridge_kept.unwrap().contains("still has ports (veth1)"));
        assert!(!dir.join("web.conflist").exists());
        assert!(deleted.is_empty());
    }

    #[test]
    fn force_deletes_an_unused_bridge() {
        let (_tmp, dir, cache) = setup();
        let mut deleted = Vec::new();
        let h = host(false);
        let r = remove_network(&dir, "web", &cache, true, Some(&h), &mut |n: &str| {
            deleted.push(n.to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(r.bridge_deleted.as_deref(), Some("cni-web"));
        assert_eq!(deleted, ["cni-web"]);
    }
}
