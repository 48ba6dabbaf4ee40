//! `huatuo catalog`: the registered catalog as Markdown (the source of docs/CATALOG.md).

use super::inputs::InputArgs;
use crate::catalog::build_catalog;
use crate::catalog_doc::catalog_markdown;
use clap::Args;
use huatuo_dsl::render::render_human;
use std::process::ExitCode;

/// Flags of `huatuo catalog`.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    inputs: InputArgs,
}

/// Prints the catalog.
pub fn run(args: CatalogArgs) -> ExitCode {
    let inputs = match args.inputs.load(&[]) {
        Ok(inputs) => inputs,
        Err((diags, _)) => {
            eprint!("{}", render_human(&diags, &|_| None));
            return ExitCode::from(1);
        }
    };
    print!("{}", catalog_markdown(&build_catalog(&inputs.script_host)));
    ExitCode::SUCCESS
}
