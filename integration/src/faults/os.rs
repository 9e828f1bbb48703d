//! The operating-system side of fault injection: processes of a container (found through
//! their environment) and SIGKILL at a chosen moment, foreign lock holders, a tiny tmpfs,
//! seeded files, the legacy iptables tools, and a seedable random generator.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::locate::{self, CHILD_PATH};
use crate::process;
use crate::world::World;

// ---------------------------------------------------------------------------------------------
// Processes

/// Live processes whose environment holds `CNI_CONTAINERID=<id>`, as (pid, binary path). The
/// ID must be unique on the machine (e.g. contain the world's host netns name): tests run in
/// parallel.
pub fn processes_of(id: &str) -> Vec<(u32, PathBuf)> {
    let needle = format!("CNI_CONTAINERID={id}");
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter_map(|pid| {
            let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
            let mine = environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes());
            let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            mine.then_some((pid, exe))
        })
        .collect()
}

/// Waits until `binary` (one of our plugins) runs for container `id`, waits `delay` more, then
/// SIGKILLs every one of our plugin processes of that container (a plugin and the IPAM plugin it
/// delegated to die together, as when a runtime's cgroup is killed). Gives up when `stop` is
/// set (the operation ended first). Returns the names of the binaries killed.
pub fn kill_plugin(id: &str, binary: &str, delay: Duration, stop: &AtomicBool) -> Vec<String> {
    let ours = locate::our_plugin_dir();
    let plugin_of = |exe: &Path| {
        exe.parent()
            .filter(|d| *d == ours)
            .and_then(|_| exe.file_name()?.to_str().map(str::to_owned))
    };
    while !processes_of(id)
        .iter()
        .any(|(_, exe)| plugin_of(exe).as_deref() == Some(binary))
    {
        if stop.load(Ordering::SeqCst) {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(delay);
    let mut killed = Vec::new();
    for (pid, exe) in processes_of(id) {
        if let Some(name) = plugin_of(&exe) {
            let out = process::run(Command::new("kill").args(["-9", &pid.to_string()]), b"");
            if out.success() {
                killed.push(name);
            }
        }
    }
    killed
}

/// Waits (up to twenty seconds) until no process of container `id` is left: children of a
/// killed plugin (an `iptables-restore`, say) run to their end before the runtime's DEL.
#[track_caller]
pub fn wait_for_orphans(id: &str) {
    let start = Instant::now();
    while !processes_of(id).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "processes of {id} outlived their plugin: {:?}",
            processes_of(id)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Another process holding an exclusive `flock` on a file (`flock FILE sleep SECONDS`), for
/// at most `hold`. Dropping it kills the holder (by its pid) and so releases the lock.
#[derive(Debug)]
pub struct LockHolder {
    child: Child,
    /// When the lock was taken.
    pub since: Instant,
}

impl LockHolder {
    /// Takes the lock on `path` (created if missing) and returns once it is held.
    pub fn hold(path: &Path, hold: Duration) -> LockHolder {
        let script = format!("echo held; exec sleep {}", hold.as_secs_f64());
        let mut child = Command::new("flock")
            .arg(path)
            .args(["sh", "-c", &script])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn flock");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("flock stdout is piped"))
            .read_line(&mut line)
            .expect("read from flock");
        assert_eq!(line.trim(), "held", "flock did not take {}", path.display());
        LockHolder {
            child,
            since: Instant::now(),
        }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// File systems and tools

/// Creates `dir` (and parents) and writes each `(name, bytes)` into it.
pub fn seed_dir(dir: &Path, files: &[(&str, &[u8])]) {
    fs::create_dir_all(dir).expect("create the directory to seed");
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes).expect("seed a file");
    }
}

/// `<world>/bin/legacy` with `iptables`, `ip6tables` and their `-save` / `-restore` pointing
/// at `xtables-legacy-multi` (which takes `/run/xtables.lock`, unlike `iptables-nft`); returns
/// the `PATH` that puts them first for a plugin.
pub fn legacy_iptables_path(world: &World) -> String {
    let dir = world.root().join("bin/legacy");
    fs::create_dir_all(&dir).expect("create bin/legacy");
    for tool in [
        "iptables",
        "ip6tables",
        "iptables-save",
        "ip6tables-save",
        "iptables-restore",
        "ip6tables-restore",
    ] {
        std::os::unix::fs::symlink("/usr/sbin/xtables-legacy-multi", dir.join(tool))
            .expect("symlink a legacy tool");
    }
    format!("{}:{CHILD_PATH}", dir.display())
}

/// A tmpfs of `size` mounted on a directory inside the world; unmounted when dropped (also on
/// panic), lazily if something still uses it.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=…`, e.g. `64k`) on `<world>/<name>`.
    pub fn mount(world: &World, name: &str, size: &str) -> Tmpfs {
        let path = world.root().join(name);
        fs::create_dir_all(&path).expect("create the mount point");
        let opts = format!("size={size},mode=0755");
        let out = process::run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
                .arg(&path),
            b"",
        );
        out.expect_success();
        Tmpfs { path }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `<mount>/filler` until the file system is full.
    pub fn fill(&self) {
        let mut f = fs::File::create(self.path.join("filler")).expect("create filler");
        let chunk = [0u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling {}: {e}", self.path.display()),
            }
        }
    }

    /// Frees `pages` pages of the filler (tmpfs allocates whole pages).
    pub fn free_pages(&self, pages: u64) {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("filler"))
            .expect("open filler");
        let len = f.metadata().expect("filler metadata").len();
        f.set_len(len.saturating_sub(pages * 4096))
            .expect("shrink filler");
    }

    /// Removes the filler again.
    pub fn drain(&self) {
        fs::remove_file(self.path.join("filler")).expect("remove filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let plain = process::run(Command::new("umount").arg(&self.path), b"");
        if !plain.success() {
            let _ = process::run(Command::new("umount").arg("-l").arg(&self.path), b"");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness

/// A small deterministic generator (xorshift64*), seeded from `CNI_FAULT_SEED` when set, so a
/// failing run can be repeated; the seed is printed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `CNI_FAULT_SEED` or the clock.
    pub fn from_env() -> Rng {
        let seed = std::env::var("CNI_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("CNI_FAULT_SEED={seed}");
        Rng(seed | 1)
    }

    /// A generator with a fixed seed.
    pub fn from_seed(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
