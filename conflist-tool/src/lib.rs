//! `cni-conflist`: create, validate, list, inspect, remove and run CNI network configuration
//! lists, the way libcni reads them and podman writes them.
//!
//! - [`model`]: loading files and directories with libcni's rules and messages; [`span`] maps
//!   JSON paths to line:column.
//! - [`podman`]: podman's network model, the conflist it writes ([`goformat`]) and how it reads one.
//! - [`create`]: podman's `network create` flags and defaults; [`subnets`] the address bookkeeping;
//!   [`store`] the locked, atomic writes.
//! - [`host`]: the host's links and addresses through the kernel layer.

pub mod create;
pub mod doctor;
pub mod goformat;
pub mod host;
pub mod inspect;
pub mod model;
pub mod podman;
pub mod remove;
pub mod runtime;
pub mod span;
pub mod store;
pub mod subnets;
pub mod validate;
