//! Network namespaces: open by path, enter through a guard that always restores.

use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};
use nix::sys::statfs::{NSFS_MAGIC, fstatfs};

use crate::error::KernelError;

/// An open network namespace (a file descriptor on nsfs).
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens the netns at `path` (e.g. `/run/netns/x` or `/proc/PID/ns/net`) and checks that it is
    /// one. A missing path gives [`KernelError::NetnsNotFound`].
    pub fn open(path: &Path) -> Result<Netns, KernelError> {
        let file = File::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                KernelError::NetnsNotFound {
                    path: path.to_path_buf(),
                }
            } else {
                KernelError::NetnsOpen {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let fs = fstatfs(&file).map_err(|e| KernelError::NetnsOpen {
            path: path.to_path_buf(),
            source: std::io::Error::from(e),
        })?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Err(KernelError::NotANetns {
                path: path.to_path_buf(),
            });
        }
        Ok(Netns {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The netns of the calling thread.
    pub fn current() -> Result<Netns, KernelError> {
        Self::open(Path::new("/proc/thread-self/ns/net"))
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Enters this netns on the calling thread until the returned guard is dropped.
    pub fn enter(&self) -> Result<NetnsGuard, KernelError> {
        NetnsGuard::enter(self)
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// While alive, the calling thread is in another netns; dropping it returns the thread to the
/// netns it was in before. Not `Send`: a namespace belongs to a thread. Never hold it across
/// an `.await`.
#[derive(Debug)]
pub struct NetnsGuard {
    original: File,
    _not_send: PhantomData<*const ()>,
}

impl NetnsGuard {
    fn enter(target: &Netns) -> Result<NetnsGuard, KernelError> {
        let original =
            File::open("/proc/thread-self/ns/net").map_err(|source| KernelError::NetnsOpen {
                path: PathBuf::from("/proc/thread-self/ns/net"),
                source,
            })?;
        setns(target.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(KernelError::NetnsEnter)?;
        Ok(NetnsGuard {
            original,
            _not_send: PhantomData,
        })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.original.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Going on in the wrong namespace would act on the container as if it were the host.
            eprintln!("fatal: failed to restore the thread's network namespace: {e}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_not_found() {
        let e = Netns::open(Path::new("/run/netns/definitely-not-here-cni-kernel")).unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }

    #[test]
    fn regular_file_is_not_a_netns() {
        let e = Netns::open(Path::new("/proc/self/status")).unwrap_err();
        assert!(matches!(e, KernelError::NotANetns { .. }), "{e}");
    }

    #[test]
    fn current_netns_opens() {
        // Any process may open its own netns handle; entering it needs privileges, not tested here.
        assert!(Netns::current().is_ok());
    }
}
