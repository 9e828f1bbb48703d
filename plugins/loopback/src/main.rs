//! The `loopback` CNI plugin binary.

fn main() {
    cni_core::skel::run(loopback::Loopback)
}
