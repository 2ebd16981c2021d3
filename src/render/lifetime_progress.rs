//! The `natlens nat --lifetime` progress line on stderr: a spinner with the bracket so far,
//! drawn only when stderr is a terminal and `-q` is not given (like the probe bars).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::core::fingerprint::lifetime::Status;

/// The spinner of one lifetime measurement.
pub struct LifetimeBar {
    bar: ProgressBar,
    start: Instant,
}

impl LifetimeBar {
    pub fn new(max: Duration) -> Self {
        let target = if std::io::stderr().is_terminal() && !super::verbosity::quiet() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let style = ProgressStyle::with_template("UDP mapping lifetime {spinner} {msg}")
            .expect("a valid template")
            .tick_chars("-\\|/ ");
        let bar = ProgressBar::with_draw_target(None, target).with_style(style);
        bar.set_message(format!("(tries idle times up to {})", seconds(max)));
        LifetimeBar {
            bar,
            start: Instant::now(),
        }
    }

    /// Shows where the measurement stands.
    pub fn update(&self, status: Status) {
        let elapsed = seconds(self.start.elapsed());
        let alive = status
            .alive_for
            .map_or_else(|| "none yet".to_owned(), seconds);
        let message = match status.dead_after {
            None => format!("{elapsed}: idle mappings live at least {alive}"),
            Some(dead) => format!(
                "{elapsed}: between {alive} and {}; checking refreshes",
                seconds(dead)
            ),
        };
        self.bar.set_message(message);
        self.bar.tick();
    }

    /// Removes the line before the report is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}
