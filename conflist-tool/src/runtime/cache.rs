//! libcni's result cache, byte-compatible: `<cacheDir>/results/<net>-<containerID>-<ifname>`,
//! directory 0700, file 0600, JSON `{"kind":"cniCacheV1","containerId",…,"config":<base64 of the
//! conflist bytes>,"ifName","networkName","netns"?,"cniArgs"?,"capabilityArgs"?,"result"?}` in
//! Go's field order — so cnitool, podman and this tool can take over each other's attachments.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::store::{self, StoreError};

/// libcni's cache entry kind.
pub const KIND_V1: &str = "cniCacheV1";

/// One cached attachment, field for field as libcni writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAttachment {
    /// Always [`KIND_V1`].
    pub kind: String,
    /// Container ID.
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The conflist bytes the attachment was made with (base64 on disk, as Go encodes `[]byte`).
    #[serde(
        serialize_with = "to_base64",
        deserialize_with = "from_base64",
        default
    )]
    pub config: Vec<u8>,
    /// Interface name.
    #[serde(rename = "ifName")]
    pub if_name: String,
    /// Network name.
    #[serde(rename = "networkName")]
    pub network_name: String,
    /// Network namespace path (newer libcni; absent in entries written by libcni 1.1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    /// `CNI_ARGS` pairs.
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<[String; 2]>,
    /// Capability arguments.
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    pub capability_args: Map<String, Value>,
    /// The final ADD result, in the version it was produced in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// Reading or writing the cache failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// File system failure.
    #[error("result cache")]
    Store(#[from] StoreError),
    /// The entry is not JSON.
    #[error("failed to unmarshal cached network {network:?} config: {reason}")]
    Corrupt {
        /// Network name.
        network: String,
        /// serde's message.
        reason: String,
    },
}

/// What a cache file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheEntry {
    /// A `cniCacheV1` entry.
    V1(Box<CachedAttachment>),
    /// A legacy entry: the raw result JSON.
    Legacy(Value),
}

impl CacheEntry {
    /// The cached result, whatever the format.
    pub fn result(&self) -> Option<&Value> {
        match self {
            CacheEntry::V1(a) => a.result.as_ref(),
            CacheEntry::Legacy(v) => Some(v),
        }
    }
}

/// `<cache_dir>/results`.
pub fn results_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("results")
}

/// The cache file of an attachment (names are validated by the caller: no `/` possible).
pub fn path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    results_dir(cache_dir).join(format!("{network}-{container_id}-{ifname}"))
}

/// Writes an entry (directory created 0700, file 0600, atomically).
pub fn write(cache_dir: &Path, entry: &CachedAttachment) -> Result<PathBuf, CacheError> {
    let dir = results_dir(cache_dir);
    if !dir.exists() {
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            action: "cannot create",
            path: dir.clone(),
            source,
        })?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            StoreError::Io {
                action: "cannot set the mode of",
                path: dir.clone(),
                source,
            }
        })?;
    }
    let file = path(
        cache_dir,
        &entry.network_name,
        &entry.container_id,
        &entry.if_name,
    );
    let bytes = serde_json::to_vec(entry).map_err(|e| CacheError::Corrupt {
        network: entry.network_name.clone(),
        reason: e.to_string(),
    })?;
    store::write_atomic(&file, &bytes, 0o600, true)?;
    Ok(file)
}

/// Parses the bytes of a cache file: `cniCacheV1`, else a legacy raw result.
pub fn parse(network: &str, bytes: &[u8]) -> Result<CacheEntry, CacheError> {
    let corrupt = |reason: String| CacheError::Corrupt {
        network: network.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if value.get("kind").and_then(Value::as_str) == Some(KIND_V1) {
        let entry: CachedAttachment =
            serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        return Ok(CacheEntry::V1(Box::new(entry)));
    }
    Ok(CacheEntry::Legacy(value))
}

/// Reads an attachment's entry; `None` when there is none.
pub fn read(
    cache_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<Option<CacheEntry>, CacheError> {
    let file = path(cache_dir, network, container_id, ifname);
    match fs::read(&file) {
        Ok(bytes) => parse(network, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CacheError::Store(StoreError::Io {
            action: "cannot read",
            path: file,
            source,
        })),
    }
}

/// Removes an attachment's entry (absent is fine).
pub fn delete(
    cache_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<(), CacheError> {
    let file = path(cache_dir, network, container_id, ifname);
    match fs::remove_file(&file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CacheError::Store(StoreError::Io {
                action: "cannot remove",
                path: file,
                source: e,
            }))
        }
        _ => Ok(()),
    }
}

/// Every `cniCacheV1` entry with a network name and an interface name (libcni's
/// `GetCachedAttachments` rule), with its file. Unparsable files are returned as errors.
pub fn list(cache_dir: &Path) -> Vec<(PathBuf, Result<CachedAttachment, CacheError>)> {
    let Ok(entries) = fs::read_dir(results_dir(cache_dir)) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Result<CachedAttachment, CacheError>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let parsed = fs::read(&path)
                .map_err(|source| {
                    CacheError::Store(StoreError::Io {
                        action: "cannot read",
                        path: path.clone(),
                        source,
                    })
                })
                .and_then(|b| parse(&name, &b));
            match parsed {
                Ok(CacheEntry::V1(a)) if !a.if_name.is_empty() && !a.network_name.is_empty() => {
                    Some((path, Ok(*a)))
                }
                Ok(_) => None,
                Err(e) => Some((path, Err(e))),
            }
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

// ---- base64 (Go's encoding of []byte) -----------------------------------------------------

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u32> = text
        .trim_end_matches('=')
        .bytes()
        .map(|c| ALPHABET.iter().position(|a| *a == c).map(|p| p as u32))
        .collect::<Option<_>>()?;
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | (d << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn to_base64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64_encode(bytes))
}

fn from_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    match text {
        None => Ok(Vec::new()),
        Some(t) => {
            base64_decode(&t).ok_or_else(|| serde::de::Error::custom("config is not valid base64"))
        }
    }
}

#[cfg(test)]
mod tests;
