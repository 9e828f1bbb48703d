//! The kernel layer: the only place in the suite that performs network side effects.
//!
//! - [`netns`]: opening a network namespace by path and entering it through an RAII guard.
//! - [`netlink`]: the [`netlink::Netlink`] trait plugins program against, the real blocking rtnetlink
//!   socket behind it, and a fake for unit tests that need no root.
//! - [`sysctl`]: `/proc/sys/net` keys read and written from inside a namespace.

pub mod error;
pub mod netlink;
pub mod netns;
pub mod random;
pub mod sysctl;

pub use error::KernelError;
