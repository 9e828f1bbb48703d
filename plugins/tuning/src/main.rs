//! The `tuning` CNI plugin binary.

fn main() {
    cni_core::skel::run(tuning::Tuning)
}
