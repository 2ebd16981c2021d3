//! `natlens completions SHELL` and `natlens man [PAGE]`: the generated files, from the binary
//! itself, so an installed natlens needs no copy of the repository to get them.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{CompletionsArgs, ManArgs};
use crate::exit;
use crate::generate;

/// Prints the completion script for the shell asked for.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let (_, script) = generate::completion(args.shell);
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page asked for; an unknown page is a usage error that lists the pages.
pub fn man(args: &ManArgs) -> anyhow::Result<ExitCode> {
    let asked = args.page.join("-");
    match generate::man_page(&asked)? {
        Some(page) => {
            std::io::stdout().lock().write_all(&page)?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let known = generate::man_page_names().join(", ");
            crate::render::terminal::eprint_message(&format!(
                "natlens: no man page {asked:?}; the pages are {known}"
            ));
            Ok(ExitCode::from(exit::USAGE))
        }
    }
}
