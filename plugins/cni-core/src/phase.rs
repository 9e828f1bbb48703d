//! Per-phase timing for profiling, off unless asked for.
//!
//! With the environment variable [`PHASE_TIMES`] set to `1`, every [`mark`] prints one line to
//! standard error — the plugin's process id, the label, the time since the previous mark and
//! since the first one:
//!
//! ```text
//! cni-phase 4711 bridge:ipam +4.21 ms (9.87 ms)
//! ```
//!
//! libcni passes a plugin's standard error through to its caller, so `CNI_PHASE_TIMES=1 cnitool
//! add …` shows where an ADD spends its time, without strace's own overhead distorting it.
//! Unset, a mark costs one environment lookup on the first call and a load afterwards.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::Instant;

/// The environment variable that turns the marks on.
pub const PHASE_TIMES: &str = "CNI_PHASE_TIMES";

/// (first mark, previous mark), present only when enabled.
static CLOCK: OnceLock<Option<Mutex<(Instant, Instant)>>> = OnceLock::new();

fn clock() -> Option<&'static Mutex<(Instant, Instant)>> {
    CLOCK
        .get_or_init(|| {
            let on = std::env::var_os(PHASE_TIMES).is_some_and(|v| v == "1");
            on.then(|| Mutex::new((Instant::now(), Instant::now())))
        })
        .as_ref()
}

/// Report the time spent since the previous mark under `label` (see the module docs).
pub fn mark(label: &str) {
    let Some(clock) = clock() else {
        return;
    };
    let now = Instant::now();
    let mut times = clock.lock().unwrap_or_else(|e| e.into_inner());
    let (first, previous) = *times;
    *times = (first, now);
    drop(times);
    eprintln!("{}", line(label, now - previous, now - first));
}

fn line(label: &str, step: std::time::Duration, total: std::time::Duration) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    format!(
        "cni-phase {} {label} +{:.2} ms ({:.2} ms)",
        std::process::id(),
        ms(step),
        ms(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_line_names_the_process_the_phase_and_both_durations() {
        let text = line(
            "bridge:ipam",
            Duration::from_micros(4210),
            Duration::from_micros(9870),
        );
        assert_eq!(
            text,
            format!(
                "cni-phase {} bridge:ipam +4.21 ms (9.87 ms)",
                std::process::id()
            )
        );
    }

    #[test]
    fn marks_without_the_variable_print_nothing_and_do_not_fail() {
        // The test runner never sets the variable; a mark is then a no-op.
        if std::env::var_os(PHASE_TIMES).is_none() {
            mark("test:nothing");
            assert!(clock().is_none());
        }
    }
}
