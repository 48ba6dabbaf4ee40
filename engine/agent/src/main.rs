//! The `huatuo` command.

fn main() {
    println!("huatuo {}", env!("CARGO_PKG_VERSION"));
}
