//! The `firewall` CNI plugin binary.

fn main() {
    cni_core::skel::run(firewall::Firewall)
}
