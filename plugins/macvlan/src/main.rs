//! The `macvlan` CNI plugin binary.

fn main() {
    cni_core::skel::run(macvlan::Macvlan)
}
