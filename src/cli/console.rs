//! The terminal is one resource: progress bars and log lines share stderr through one
//! `MultiProgress`, so a log line is printed above the bars instead of into the middle of one.
//! (The logger is process-wide by nature; this is its other half, kept beside it in the binary.)

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

static BARS: OnceLock<MultiProgress> = OnceLock::new();

fn bars() -> &'static MultiProgress {
    BARS.get_or_init(|| {
        let target =
            if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        MultiProgress::with_draw_target(target)
    })
}

/// A progress bar on stderr below the log lines (hidden when stderr is not a terminal; the stages
/// then log a progress line now and then: `starpipe::progress::Heartbeat`).
pub fn progress_bar(len: u64, stage: &str, unit: &str) -> ProgressBar {
    let bar = bars().add(ProgressBar::new(len));
    let template = format!(
        "{{spinner}} {stage} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{rate}}, eta {{eta}})"
    );
    let style = ProgressStyle::with_template(&template)
        .expect("valid template")
        // indicatif's {per_sec} prints four decimals ("1,333.3598/s").
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let r = s.per_sec();
            let _ = if r >= 10.0 { write!(w, "{r:.0}/s") } else { write!(w, "{r:.1}/s") };
        });
    bar.set_style(style);
    bar
}

/// tracing's writer: each event is written whole, with the bars lifted off the screen meanwhile.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        bars().suspend(|| {
            let _ = std::io::stderr().write_all(&bytes);
        });
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(Vec::with_capacity(256))
    }
}
