//! The backup file: the values an ADD replaced, so DEL can put them back.
//!
//! `<dataDir>/<containerID>_<ifname>.json`, JSON indented by one space as the reference writes it,
//! mode 0600 in a 0700 directory, written through a temporary file and a rename. Keys `mac`,
//! `promisc`, `mtu`, `allmulti`, `txQLen` are the reference's (so either implementation's DEL can
//! read the other's file); `sysctl` (previous value per resolved key, in application order) and
//! `network` (the network name, which scopes GC) are ours and ignored by the reference.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use cni_core::config::AttachmentKey;
use cni_core::{CniError, ErrorCode, validate};
use serde::{Deserialize, Serialize};

use crate::error;
use crate::sysctls::OrderedMap;

/// What an ADD replaced. `None` / empty fields were not touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// Previous hardware address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Previous promiscuous mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    /// Previous MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Previous all-multicast mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    /// Previous transmit queue length.
    #[serde(default, rename = "txQLen", skip_serializing_if = "Option::is_none")]
    pub tx_qlen: Option<u32>,
    /// Previous sysctl values by resolved key, in the order they were set.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub sysctl: OrderedMap<String>,
    /// The network whose ADD wrote the file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
}

fn is_empty_map(m: &OrderedMap<String>) -> bool {
    m.0.is_empty()
}

impl Backup {
    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        Backup {
            network: String::new(),
            ..self.clone()
        } == Backup::default()
    }

    /// True when a link attribute is recorded.
    pub fn has_link_attributes(&self) -> bool {
        !self.mac.is_empty()
            || self.promisc.is_some()
            || self.mtu.is_some()
            || self.allmulti.is_some()
            || self.tx_qlen.is_some()
    }

    /// `self` (an older backup) completed with what `newer` recorded and `self` did not: the
    /// older value is the one from before any tuning ADD touched the interface.
    pub fn completed_with(mut self, newer: &Backup) -> Backup {
        if self.mac.is_empty() {
            self.mac.clone_from(&newer.mac);
        }
        self.promisc = self.promisc.or(newer.promisc);
        self.mtu = self.mtu.or(newer.mtu);
        self.allmulti = self.allmulti.or(newer.allmulti);
        self.tx_qlen = self.tx_qlen.or(newer.tx_qlen);
        for (k, v) in &newer.sysctl.0 {
            if !self.sysctl.0.iter().any(|(old, _)| old == k) {
                self.sysctl.0.push((k.clone(), v.clone()));
            }
        }
        if self.network.is_empty() {
            self.network.clone_from(&newer.network);
        }
        self
    }
}

/// What the backup file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// No file.
    Absent,
    /// A file that does not parse (the parser's message).
    Corrupt(String),
    /// A backup.
    Present(Backup),
}

/// The backup file of one attachment.
#[derive(Debug, Clone)]
pub struct BackupFile {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
}

/// The file name of an attachment's backup.
pub fn file_name(container_id: &str, ifname: &str) -> String {
    format!("{container_id}_{ifname}.json")
}

impl BackupFile {
    /// The backup of `(container_id, ifname)` in `data_dir`. Both names are checked again here
    /// because they become a file name (code 4, as the core reports them).
    pub fn new(data_dir: &Path, container_id: &str, ifname: &str) -> Result<Self, CniError> {
        validate::container_id(container_id)?;
        validate::interface_name(ifname)?;
        let name = file_name(container_id, ifname);
        Ok(BackupFile {
            dir: data_dir.to_path_buf(),
            path: data_dir.join(&name),
            tmp: data_dir.join(format!(".{name}.tmp")),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file.
    pub fn load(&self) -> Result<Stored, CniError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(match serde_json::from_slice(&bytes) {
                Ok(b) => Stored::Present(b),
                Err(e) => Stored::Corrupt(e.to_string()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stored::Absent),
            Err(e) => Err(self.io_error("failed to read", &e)),
        }
    }

    /// Writes `backup` atomically (temporary file, then rename), creating the directory.
    pub fn store(&self, backup: &Backup) -> Result<(), CniError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| {
                error::backup(
                    &format!("failed to create backup directory {}", self.dir.display()),
                    &e,
                )
            })?;
        let mut text = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut ser = serde_json::Serializer::with_formatter(&mut text, fmt);
        backup.serialize(&mut ser).map_err(|e| {
            error::plugin(
                error::TuningCode::Backup,
                format!("failed to encode backup: {e}"),
            )
        })?;
        let _ = std::fs::remove_file(&self.tmp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.tmp)
            // No fsync: a backup is only useful while its netns lives, and no netns outlives a
            // crash of the host (the default dataDir is on tmpfs anyway).
            .and_then(|mut f| f.write_all(&text))
            .and_then(|()| std::fs::rename(&self.tmp, &self.path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&self.tmp);
            self.io_error("failed to write", &e)
        })
    }

    /// Removes the file; an absent file is fine.
    pub fn remove(&self) -> Result<(), CniError> {
        // A crash between writing the temporary file and renaming it leaves it behind.
        let _ = std::fs::remove_file(&self.tmp);
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_error("failed to remove", &e)),
        }
    }

    /// Puts the file back as `previous` describes (rollback of a failed ADD).
    pub fn reset(&self, previous: &Stored) -> Result<(), CniError> {
        match previous {
            Stored::Present(b) => self.store(b),
            Stored::Absent | Stored::Corrupt(_) => self.remove(),
        }
    }

    fn io_error(&self, what: &str, e: &std::io::Error) -> CniError {
        error::backup(&format!("{what} backup {}", self.path.display()), e)
    }
}

/// True when `name` could be `<containerID>_<ifname>.json` for some split at an `_`.
fn is_backup_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".json") else {
        return false;
    };
    stem.match_indices('_').any(|(i, _)| {
        let (id, ifname) = (&stem[..i], &stem[i + 1..]);
        validate::container_id(id).is_ok() && validate::interface_name(ifname).is_ok()
    })
}

/// GC: removes the backups this network wrote for attachments not in `valid`. Files written by
/// another network, or by the reference (which records no network), are left alone.
pub fn gc(data_dir: &Path, network: &str, valid: &[AttachmentKey]) -> Result<(), CniError> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(error::backup(
                &format!("failed to list {}", data_dir.display()),
                &e,
            ));
        }
    };
    let keep: Vec<String> = valid
        .iter()
        .map(|k| file_name(&k.container_id, &k.ifname))
        .collect();
    let mut failures = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_backup_name(name) || keep.iter().any(|k| k == name) {
            continue;
        }
        let path = entry.path();
        let ours = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Backup>(&b).ok())
            .is_some_and(|b| b.network == network);
        if ours
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(error::plugin(
            error::TuningCode::Backup,
            format!("failed to remove stale backups: {}", failures.join("; ")),
        ))
    }
}

/// STATUS: the backup directory exists and is writable, or can be created (code 50 otherwise).
pub fn status(data_dir: &Path) -> Result<(), CniError> {
    let unusable = |why: String| {
        CniError::new(
            ErrorCode::NotAvailable,
            format!("tuning dataDir {} is not usable: {why}", data_dir.display()),
        )
    };
    let existing = data_dir
        .ancestors()
        .find(|p| p.as_os_str().is_empty() || p.exists())
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        return Err(unusable(format!(
            "{} is not a directory",
            existing.display()
        )));
    }
    nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK)
        .map_err(|e| unusable(format!("{} is not writable: {e}", existing.display())))
}
