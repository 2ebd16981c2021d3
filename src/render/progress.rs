//! Progress bars on stderr, one per transport, drawn only when stderr is a terminal and `-q` is
//! not given: a pipe or a log file gets nothing, so stdout and stderr stay clean for scripts.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::core::Transport;
use crate::io::prober::{Fingerprint, Probing, Progress};

/// The bars of one `natlens nat` run.
pub struct ProbeBars {
    bars: Vec<(Transport, ProgressBar)>,
}

impl ProbeBars {
    pub fn new(transports: &[Transport]) -> Self {
        let target = if std::io::stderr().is_terminal() && !super::verbosity::quiet() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        // Colour only where terminal::colour allows it (a terminal, NO_COLOR unset); the bar's
        // characters are ASCII whatever the locale.
        let template = if super::terminal::colour(super::terminal::Stream::Stderr) {
            "{prefix:>3} [{bar:30.cyan}] {pos}/{len} probes"
        } else {
            "{prefix:>3} [{bar:30}] {pos}/{len} probes"
        };
        let style = ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> ");
        let bars = transports
            .iter()
            .map(|&transport| {
                let bar = multi.add(ProgressBar::new(1).with_style(style.clone()));
                bar.set_prefix(transport.as_str().to_uppercase());
                (transport, bar)
            })
            .collect();
        ProbeBars { bars }
    }

    /// Moves the bar of `progress.transport`.
    pub fn update(&self, progress: Progress) {
        if let Some((_, bar)) = self.bars.iter().find(|(t, _)| *t == progress.transport) {
            bar.set_length(progress.planned as u64);
            bar.set_position(progress.done as u64);
        }
    }

    /// Removes the bars before the report is printed.
    pub fn finish(&self) {
        for (_, bar) in &self.bars {
            bar.finish_and_clear();
        }
    }
}

impl Probing for ProbeBars {
    fn update(&self, progress: Progress) {
        ProbeBars::update(self, progress);
    }

    fn finish(&self) {
        ProbeBars::finish(self);
    }

    /// `-v`: one line per probe (see [`super::probes`]).
    fn probed(&self, fingerprint: &Fingerprint) {
        if super::verbosity::verbose() {
            for line in super::probes::lines(fingerprint) {
                super::terminal::eprint_message(&format!("natlens: probe {line}"));
            }
        }
    }
}
