//! The `portmap` CNI plugin binary.

fn main() {
    cni_core::skel::run(portmap::Portmap)
}
