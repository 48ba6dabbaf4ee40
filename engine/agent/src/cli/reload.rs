//! `huatuo reload`: asks a running agent to re-read its rules, stdlib and config
//! (`POST /v1/rules/reload`, what SIGHUP does) and prints what came of it: the new generation
//! and what was kept, or the `file:line:col` diagnostics that kept the running set.

use super::client::{Client, Connection};
use clap::Args;
use serde_json::Value as Json;
use std::process::ExitCode;

/// Flags of `huatuo reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    connection: Connection,
    /// Print the agent's JSON reply instead of a summary.
    #[arg(long)]
    json: bool,
}

fn names(value: &Json) -> String {
    let list: Vec<&str> = value
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// The summary of an applied reload.
fn applied(data: &Json) -> String {
    let mut out = format!(
        "reload applied: generation {} loaded at {}\n",
        data["generation"],
        data["loaded_at"].as_str().unwrap_or("?")
    );
    let rules = &data["rules"];
    out += &format!("  rules kept (state carried): {}\n", names(&rules["kept"]));
    out += &format!("  rules started fresh: {}\n", names(&rules["fresh"]));
    let templates = &data["templates"];
    for (what, key) in [
        ("attached", "attached"),
        ("detached", "detached"),
        ("loaded again", "reloaded"),
    ] {
        if templates[key].as_array().is_some_and(|a| !a.is_empty()) {
            out += &format!("  templates {what}: {}\n", names(&templates[key]));
        }
    }
    for failed in templates["failed"].as_array().into_iter().flatten() {
        out += &format!("  template {} unavailable: {}\n", failed[0], failed[1]);
    }
    if data["needs_restart"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        out += &format!(
            "  needs a restart to take effect: {}\n",
            names(&data["needs_restart"])
        );
    }
    out
}

/// The diagnostics of a refused reload, one `path:line:col: severity[code]: message` each.
fn refused(error: &Json) -> String {
    let mut out = format!(
        "reload refused, the running set is unchanged: {}\n",
        error["message"].as_str().unwrap_or("")
    );
    for d in error["diagnostics"].as_array().into_iter().flatten() {
        out += &format!(
            "{}:{}:{}: {}[{}]: {}\n",
            d["path"].as_str().unwrap_or("?"),
            d["line"],
            d["col"],
            d["severity"].as_str().unwrap_or("error"),
            d["code"].as_str().unwrap_or(""),
            d["message"].as_str().unwrap_or("")
        );
        if let Some(help) = d["help"].as_str() {
            out += &format!("  help: {help}\n");
        }
    }
    out
}

/// Runs the command; exit 0 when the agent applied the new set, 1 otherwise.
pub fn run(args: ReloadArgs) -> ExitCode {
    let reply = Client::new(&args.connection)
        .and_then(|client| client.exchange("POST", "/v1/rules/reload", None));
    let (status, text) = match reply {
        Ok(reply) => reply,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let body: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
    if args.json {
        println!("{}", text.trim_end());
    } else if status == 200 {
        print!("{}", applied(&body["data"]));
    } else if body["error"]["code"] == "rules_invalid" {
        eprint!("{}", refused(&body["error"]));
    } else {
        eprintln!("error: HTTP {status}: {}", text.trim());
    }
    if status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
