//! Running one request against our plugin and the Go reference, side by side.

use crate::exec::PluginCall;
use crate::locate::Plugin;
use crate::process::Output;
use crate::world::World;

/// Which implementation a request is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Our binary (`CNI_PLUGIN_DIR` / `target/release`).
    Ours,
    /// The Go reference in `/usr/lib/cni`.
    Reference,
}

/// Both outputs of one differential run.
#[derive(Debug, Clone)]
pub struct Differential {
    /// What our plugin did.
    pub ours: Output,
    /// What the reference plugin did.
    pub reference: Output,
}

impl Differential {
    /// Runs the identical `call` with our `plugin` and then with the reference one.
    pub fn same(world: &World, plugin: &str, call: &PluginCall) -> Differential {
        Differential::run(world, plugin, |_| call.clone())
    }

    /// Runs `request(Side::Ours)` with ours, then `request(Side::Reference)` with the reference
    /// (for stateful plugins, e.g. to give each side its own `dataDir`).
    pub fn run(world: &World, plugin: &str, request: impl Fn(Side) -> PluginCall) -> Differential {
        let ours = world.exec(&Plugin::ours(plugin), &request(Side::Ours));
        let reference = world.exec(&Plugin::reference(plugin), &request(Side::Reference));
        Differential { ours, reference }
    }

    /// Both sides side by side, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- ours\n{}\n--- reference\n{}",
            self.ours.describe(),
            self.reference.describe()
        )
    }

    /// Panics unless both succeeded; returns both stdouts as JSON with empty members stripped
    /// (see [`crate::strip_empty`]).
    #[track_caller]
    pub fn results(&self) -> (serde_json::Value, serde_json::Value) {
        assert!(
            self.ours.success() && self.reference.success(),
            "expected both to succeed\n{}",
            self.describe()
        );
        (
            crate::strip_empty(self.ours.json()),
            crate::strip_empty(self.reference.json()),
        )
    }
}
