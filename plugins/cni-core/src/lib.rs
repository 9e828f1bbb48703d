//! The CNI protocol core shared by every plugin binary of the suite.
//!
//! A plugin's `main` calls [`skel::run`] with its [`skel::Plugin`] implementation. The core reads the
//! environment ([`env`]) and stdin ([`config`]), checks versions ([`version`]), dispatches the verb,
//! converts the plugin's [`result::CniResult`] to the config's `cniVersion` ([`result::convert`]) and
//! prints either the result or a [`error::CniError`] as the spec demands. [`delegate`] runs IPAM plugins.

pub mod args;
pub mod config;
pub mod delegate;
pub mod env;
pub mod error;
pub mod fault;
pub mod lock;
pub mod phase;
pub mod result;
pub mod skel;
pub mod validate;
pub mod version;

pub use config::NetConf;
pub use error::{CniError, ErrorCode};
pub use result::CniResult;
pub use version::CniVersion;
