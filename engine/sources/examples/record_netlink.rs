//! Records the live netlink sources as the JSON files `ReaderConfig::netlink_recorded`
//! replays: `cargo run -p huatuo-sources --example record_netlink -- <dir>`.

use huatuo_sources::netlink::{dcb, link, qdisc};
use std::path::PathBuf;

fn write<T: serde::Serialize>(dir: &std::path::Path, name: &str, value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(name), text + "\n").map_err(|e| format!("{name}: {e}"))
}

fn main() -> Result<(), String> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: record_netlink <dir>")?,
    );
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    write(&dir, "qdisc.json", &qdisc::dump_live()?)?;
    write(&dir, "link.json", &link::dump_live()?)?;
    write(&dir, "dcb.json", &dcb::dump_live(&[])?)?;
    Ok(())
}
