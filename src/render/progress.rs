//! Progress bars on stderr, one per transport, drawn only when stderr is a terminal and `-q` is
//! not given: a pipe or a log file gets nothing, so stdout and stderr stay clean for scripts.
//!
//! A bar counts answered (or given-up) probes. A fingerprint that stopped short (the server
//! unreachable, refused or silent) never shows as done: its bar is abandoned with the reason
//! and stays on screen while the others are cleared.

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
        Self::with_target(transports, target)
    }

    fn with_target(transports: &[Transport], target: ProgressDrawTarget) -> Self {
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

    /// Moves the bar of `progress.transport`, or fails it when the fingerprint stopped short.
    pub fn update(&self, progress: Progress) {
        let Some((_, bar)) = self.bars.iter().find(|(t, _)| *t == progress.transport) else {
            return;
        };
        if bar.is_finished() {
            return;
        }
        bar.set_length(progress.planned as u64);
        bar.set_position(progress.done as u64);
        if let Some(why) = progress.failed {
            let failed = ProgressStyle::with_template("{prefix:>3} failed: {msg}")
                .expect("a valid template");
            bar.set_style(failed);
            bar.abandon_with_message(why);
        }
    }

    /// Removes the bars before the report is printed; a failed bar stays, saying why.
    pub fn finish(&self) {
        for (_, bar) in &self.bars {
            if !bar.is_finished() {
                bar.finish_and_clear();
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(transport: Transport, done: usize, failed: Option<&str>) -> Progress {
        Progress {
            transport,
            done,
            planned: 1,
            failed: failed.map(str::to_owned),
        }
    }

    #[test]
    fn a_refused_probe_is_failed_not_done() {
        let bars = ProbeBars::with_target(
            &[Transport::Udp, Transport::Tcp],
            ProgressDrawTarget::hidden(),
        );
        bars.update(progress(Transport::Udp, 0, None));
        let why = "127.0.0.1:9 refused the TCP connection";
        bars.update(progress(Transport::Tcp, 0, Some(why)));
        // A late update cannot turn the failed bar into a done one.
        bars.update(progress(Transport::Tcp, 1, None));
        let tcp = &bars.bars[1].1;
        assert_eq!((tcp.position(), tcp.length()), (0, Some(1)));
        assert!(tcp.is_finished());
        assert_eq!(tcp.message(), why);
        bars.update(progress(Transport::Udp, 1, None));
        bars.finish();
        let udp = &bars.bars[0].1;
        assert_eq!(udp.position(), 1);
        assert!(udp.message().is_empty());
    }
}
