//! Progress where no bar can be seen: a stage whose bar is hidden (stderr is not a terminal, as in
//! a SLURM log) logs a line now and then instead, so a long job is never silent.

use indicatif::ProgressBar;
use std::time::{Duration, Instant};

/// Logs the bar's position at most every `every` while the bar is hidden; silent while it draws.
#[derive(Debug)]
pub struct Heartbeat {
    last: Instant,
    every: Duration,
}

/// Seconds between progress lines, unless `STARPIPE_PROGRESS_SECONDS` says otherwise (like
/// `RUST_LOG`, a knob of the log, not of the result).
pub const DEFAULT_SECONDS: u64 = 30;

impl Default for Heartbeat {
    fn default() -> Self {
        let seconds = std::env::var("STARPIPE_PROGRESS_SECONDS").ok().and_then(|s| s.parse().ok());
        Self::every(Duration::from_secs(seconds.unwrap_or(DEFAULT_SECONDS)))
    }
}

impl Heartbeat {
    pub fn every(every: Duration) -> Self {
        Self { last: Instant::now(), every }
    }

    /// Whether a progress line is due now (the bar is hidden and `every` has passed); restarts the
    /// interval when it is.
    pub fn due(&mut self, bar: &ProgressBar) -> bool {
        if !bar.is_hidden() || self.last.elapsed() < self.every {
            return false;
        }
        self.last = Instant::now();
        true
    }

    /// Logs "`what`: position/length" when due.
    pub fn tick(&mut self, bar: &ProgressBar, what: &str) {
        if self.due(bar) {
            let total = bar.length().map_or_else(|| "?".to_string(), |n| n.to_string());
            tracing::info!(done = bar.position(), total = %total, "{what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_only_for_a_hidden_bar_and_at_most_once_per_interval() {
        let hidden = ProgressBar::hidden();
        let mut h = Heartbeat::every(Duration::ZERO);
        assert!(h.due(&hidden) && h.due(&hidden));
        let mut slow = Heartbeat::every(Duration::from_secs(3600));
        assert!(!slow.due(&hidden));
        let drawn = ProgressBar::with_draw_target(Some(1), indicatif::ProgressDrawTarget::term_like(Box::new(Sink)));
        assert!(!Heartbeat::every(Duration::ZERO).due(&drawn));
    }

    #[derive(Debug)]
    struct Sink;
    impl indicatif::TermLike for Sink {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, _: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn write_str(&self, _: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
