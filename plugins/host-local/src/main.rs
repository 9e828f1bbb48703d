//! The `host-local` IPAM plugin binary.

fn main() {
    cni_core::skel::run(host_local::plugin::HostLocal)
}
