//! Bounded waits for the advisory locks the plugins share with other processes.
//!
//! A plugin must never wait for a lock forever: a stuck holder would otherwise hang every ADD
//! and DEL on the host until the runtime kills them, with no error to show for it.
//! [`lock_exclusive`] polls a non-blocking `flock` with short sleeps until [`timeout`] has
//! passed, then fails with an [`io::Error`] of kind [`io::ErrorKind::TimedOut`] carrying a
//! [`LockTimeout`] ([`is_timeout`] recognises it); the plugins report that as CNI code 11
//! ("try again later"). The iptables tools are given the same bound as `-w <seconds>`.
//!
//! The bound applies to each wait, not to a whole plugin run.
//!
//! [`DEFAULT_TIMEOUT`] is 30 s. kubelet gives a whole `RunPodSandbox` 2 minutes by default
//! (`--runtime-request-timeout`), and the runtime runs the chain's ADD and, when it fails, the
//! DEL that cleans up inside that window: a stuck lock costs each of them one wait, and 2 × 30 s
//! leaves room for everything else. podman and containerd put no timeout of their own on a
//! plugin, which is why the plugin needs one. Legitimate holders are far shorter: our own
//! read-modify-writes take milliseconds, and kube-proxy's `iptables-restore` of a large
//! cluster's tables a few seconds (kube-proxy itself waits 5 s for the xtables lock); a shorter
//! bound would turn that contention into failed pod starts.
//!
//! Test hook: the environment variable [`TIMEOUT_ENV`] (`CNI_TEST_LOCK_TIMEOUT=<seconds>`,
//! decimals allowed) replaces the default, so the fault suite can prove the bound without
//! waiting half a minute per case. Like `CNI_TEST_ABORT_AT` it is meant for tests only; unset,
//! empty or unparsable, the default applies.

use std::fs::{File, TryLockError};
use std::io;
use std::time::{Duration, Instant};

/// The test hook's environment variable: the lock timeout in seconds.
pub const TIMEOUT_ENV: &str = "CNI_TEST_LOCK_TIMEOUT";

/// How long a plugin waits for a lock unless [`TIMEOUT_ENV`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The first pause between two attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause between two attempts: how late a waiter may notice a released lock.
const MAX_PAUSE: Duration = Duration::from_millis(10);

/// A lock stayed held by another process for longer than the lock timeout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("still held by another process after {waited:?}")]
pub struct LockTimeout {
    /// How long we waited.
    pub waited: Duration,
}

/// The lock timeout: [`TIMEOUT_ENV`] when set to a number of seconds, else [`DEFAULT_TIMEOUT`].
pub fn timeout() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|value| parse_timeout(&value))
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// `"2"`, `"0.5"` → the duration; anything else (empty, negative, not a number) → `None`.
fn parse_timeout(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// The timeout in whole seconds, rounded up and at least 1: what `iptables -w <seconds>` takes
/// (`-w 0` would not wait at all).
pub fn timeout_whole_seconds(timeout: Duration) -> u64 {
    let whole = timeout.as_secs();
    let rounded = if timeout.subsec_nanos() > 0 {
        whole.saturating_add(1)
    } else {
        whole
    };
    rounded.max(1)
}

/// Takes an exclusive `flock` on `file`, waiting at most [`timeout`] for another holder to
/// release it (see [`lock_exclusive_within`]).
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    lock_exclusive_within(file, timeout())
}

/// Takes an exclusive `flock` on `file`, trying again with short sleeps while another open file
/// holds it. After `limit` the error is [`io::ErrorKind::TimedOut`] with a [`LockTimeout`]
/// inside; any other failure of `flock` is returned as it is. Nothing is changed on failure.
pub fn lock_exclusive_within(file: &File, limit: Duration) -> io::Result<()> {
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::Error(e)) => return Err(e),
            Err(TryLockError::WouldBlock) => {}
        }
        let waited = start.elapsed();
        if waited >= limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                LockTimeout { waited: limit },
            ));
        }
        std::thread::sleep(pause.min(limit - waited));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// True when `e` is the timeout of [`lock_exclusive`] (not just any `ETIMEDOUT`).
pub fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
        && e.get_ref().is_some_and(|inner| inner.is::<LockTimeout>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_values_parse_as_seconds() {
        assert_eq!(parse_timeout("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout(" 0.25 "), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("0"), Some(Duration::ZERO));
        for bad in ["", "-1", "x", "NaN", "inf", "1e400"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn whole_seconds_round_up_and_never_reach_zero() {
        assert_eq!(timeout_whole_seconds(DEFAULT_TIMEOUT), 30);
        assert_eq!(timeout_whole_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(timeout_whole_seconds(Duration::from_millis(300)), 1);
        assert_eq!(timeout_whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn a_free_lock_is_taken_at_once() {
        let file = tempfile::tempfile().unwrap();
        lock_exclusive_within(&file, Duration::ZERO).unwrap();
    }

    #[test]
    fn a_held_lock_times_out_after_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = File::create(&path).unwrap();
        holder.lock().unwrap();
        let waiter = File::open(&path).unwrap();
        let start = Instant::now();
        let e = lock_exclusive_within(&waiter, Duration::from_millis(80)).unwrap_err();
        let took = start.elapsed();
        assert!(is_timeout(&e), "{e:?}");
        assert!(took >= Duration::from_millis(80), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(e.to_string(), "still held by another process after 80ms");
        // A timeout leaves the holder's lock alone.
        assert!(matches!(waiter.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(!is_timeout(&io::Error::from(io::ErrorKind::TimedOut)));
    }

    #[test]
    fn a_lock_released_while_waiting_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = File::create(&path).unwrap();
        holder.lock().unwrap();
        let waiter = File::open(&path).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                holder.unlock().unwrap();
            });
            let start = Instant::now();
            lock_exclusive_within(&waiter, Duration::from_secs(10)).unwrap();
            assert!(start.elapsed() >= Duration::from_millis(40));
        });
    }
}
