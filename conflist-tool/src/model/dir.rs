//! Files and directories as libcni reads them: `*.conflist` sorted by name, then `*.conf` /
//! `*.json`; the first file whose name matches wins, a broken file visited earlier aborts.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ConfList, LoadError, parse_conflist, parse_single_conf};
use crate::span::SpanIndex;

/// What kind of file libcni sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `*.conflist`.
    List,
    /// `*.conf` / `*.json` (single plugin).
    Single,
}

/// One configuration file of a directory, loaded.
#[derive(Debug, Clone)]
pub struct ConfFile {
    /// Full path.
    pub path: PathBuf,
    /// List or single-plugin file.
    pub kind: FileKind,
    /// Raw bytes (empty when unreadable).
    pub bytes: Vec<u8>,
    /// The loaded list, or why libcni would refuse it.
    pub list: Result<ConfList, LoadError>,
}

impl ConfFile {
    /// Loads one file the way libcni would (aggregating `<dir>/<name>/*.conf` for lists).
    pub fn load(path: &Path) -> ConfFile {
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some("conflist") => FileKind::List,
            _ => FileKind::Single,
        };
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                return ConfFile {
                    path: path.to_owned(),
                    kind,
                    bytes: Vec::new(),
                    list: Err(LoadError::Read {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    }),
                };
            }
        };
        let list = match kind {
            FileKind::Single => parse_single_conf(&bytes),
            FileKind::List => {
                let aggregated = path
                    .parent()
                    .and_then(|dir| peek_name(&bytes).map(|n| aggregated_plugins(dir, &n)))
                    .unwrap_or_default();
                parse_conflist(&bytes, &aggregated)
            }
        };
        ConfFile {
            path: path.to_owned(),
            kind,
            bytes,
            list,
        }
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Positions in this file (empty index when it is not valid JSON).
    pub fn spans(&self) -> SpanIndex {
        SpanIndex::build(&String::from_utf8_lossy(&self.bytes))
    }
}

fn peek_name(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let name = v.get("name")?.as_str()?;
    cni_core::validate::network_name(name).ok()?;
    Some(name.to_owned())
}

/// The plugin objects of `<dir>/<name>/*.conf`, sorted by file name (libcni 1.1 aggregation).
/// Unreadable or non-JSON files are skipped here; `validate` reports them.
pub fn aggregated_plugins(dir: &Path, name: &str) -> Vec<Value> {
    let mut files = list_with_ext(&dir.join(name), &["conf"]);
    files.sort();
    files
        .iter()
        .filter_map(|f| fs::read(f).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect()
}

fn list_with_ext(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
        })
        .collect()
}

/// Every configuration file of a directory, in libcni's lookup order: `*.conflist` sorted by
/// path, then `*.conf` / `*.json` sorted by path.
#[derive(Debug, Clone)]
pub struct ConfDir {
    /// The directory.
    pub dir: PathBuf,
    /// The files in lookup order.
    pub files: Vec<ConfFile>,
}

/// The outcome of looking a network up by name.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// Found: the file libcni would use.
    Found(&'a ConfFile),
    /// A broken file visited before any match aborts libcni's lookup.
    Aborted(&'a ConfFile, &'a LoadError),
    /// No file has that name.
    NotFound,
}

impl ConfDir {
    /// Reads every configuration file of `dir` (a missing directory holds none).
    pub fn read(dir: &Path) -> ConfDir {
        let mut lists = list_with_ext(dir, &["conflist"]);
        lists.sort();
        let mut singles = list_with_ext(dir, &["conf", "json"]);
        singles.sort();
        let files = lists
            .iter()
            .chain(singles.iter())
            .map(|p| ConfFile::load(p))
            .collect();
        ConfDir {
            dir: dir.to_owned(),
            files,
        }
    }

    /// libcni `LoadConfList(dir, name)`.
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        for file in &self.files {
            match &file.list {
                Err(e) => return Lookup::Aborted(file, e),
                Ok(list) if list.name == name => return Lookup::Found(file),
                Ok(_) => {}
            }
        }
        Lookup::NotFound
    }

    /// Every loadable list with its file, in lookup order (later duplicates included).
    pub fn lists(&self) -> impl Iterator<Item = (&ConfFile, &ConfList)> {
        self.files
            .iter()
            .filter_map(|f| f.list.as_ref().ok().map(|l| (f, l)))
    }

    /// The list each name resolves to when every file is considered (first file wins), skipping
    /// broken files the way podman does.
    pub fn effective(&self) -> Vec<(&ConfFile, &ConfList)> {
        let mut seen = std::collections::HashSet::new();
        self.lists()
            .filter(|(_, l)| seen.insert(l.name.clone()))
            .collect()
    }
}
