//! `cni-conflist`: the conflist tool. Only a placeholder until its own issue lands.

fn main() {
    eprintln!("cni-conflist: not implemented yet; see the README's plugin table");
    std::process::exit(2);
}
