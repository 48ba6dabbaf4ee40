//! `huatuo status`: what a running agent loaded and attached, or a probe of this kernel.

use clap::Args;
use std::process::ExitCode;

/// Flags of `huatuo status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Address of a running agent.
    #[arg(long, default_value = "127.0.0.1:19704")]
    addr: String,
    /// Instead of asking an agent, load every kernel template here and report what attached.
    #[arg(long)]
    probe: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn print_templates(templates: &[huatuo_bpf::TemplateStatus]) {
    println!(
        "{:<18} {:<8} {:<22} attached",
        "template", "loaded", "program"
    );
    for template in templates {
        for program in &template.programs {
            let host = template
                .hosted_by
                .as_ref()
                .map(|h| format!(" in {h}'s program"))
                .unwrap_or_default();
            let attached = program
                .attached_variant()
                .map(|v| format!("{:?} {} ({}){host}", v.kind, v.target, v.prog))
                .or_else(|| {
                    program
                        .not_needed
                        .as_ref()
                        .map(|why| format!("not needed ({why})"))
                })
                .unwrap_or_else(|| {
                    let reasons: Vec<String> = program
                        .tried
                        .iter()
                        .map(|t| format!("{:?}: {}", t.kind, t.error.as_deref().unwrap_or("?")))
                        .collect();
                    format!("none ({})", reasons.join("; "))
                });
            println!(
                "{:<18} {:<8} {:<22} {}",
                template.name,
                if template.loaded { "yes" } else { "no" },
                program.program,
                attached
            );
        }
    }
}

/// Prints the status; exit 1 when the agent cannot be reached.
pub fn run(args: StatusArgs) -> ExitCode {
    if args.probe {
        let names: Vec<&str> = huatuo_bpf::TEMPLATES.iter().map(|t| t.name).collect();
        let templates = huatuo_bpf::Templates::load(&names, &Default::default());
        let status = templates.status();
        if args.json {
            println!("{}", serde_json::json!(status));
        } else {
            print_templates(&status);
        }
        return ExitCode::SUCCESS;
    }
    let url = format!("http://{}/status", args.addr);
    match ureq::get(&url)
        .timeout(std::time::Duration::from_secs(5))
        .call()
    {
        Ok(response) => match response.into_string() {
            Ok(body) => {
                println!("{body}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {url}: {e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!(
                "error: cannot reach the agent at {url}: {e} (use --probe to test this kernel)"
            );
            ExitCode::from(1)
        }
    }
}
