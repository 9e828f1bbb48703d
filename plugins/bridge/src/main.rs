//! The `bridge` CNI plugin binary.

fn main() {
    cni_core::skel::run(bridge::Bridge)
}
