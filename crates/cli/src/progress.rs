//! Progress of a sync on stderr: a spinner per source on a terminal, a line now and then in a
//! log.

#![allow(clippy::print_stderr)] // progress goes to stderr

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use healthanalyzer_pipeline::Event;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Progress on a terminal (a spinner per source), or a line now and then in a log.
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    last_line: Mutex<Instant>,
    quiet: bool,
}

impl Progress {
    pub(crate) fn new(json: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        Progress {
            multi: terminal.then(MultiProgress::new),
            bars: Mutex::new(HashMap::new()),
            last_line: Mutex::new(Instant::now()),
            quiet: json && !terminal,
        }
    }

    pub(crate) fn on(&self, e: Event) {
        match e {
            Event::Started {
                source,
                kind,
                resumed,
            } => {
                let from = if resumed {
                    "resuming"
                } else {
                    "from the start"
                };
                if let Some(m) = &self.multi {
                    let bar = m.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(format!("{source} ({kind})"));
                    bar.set_message(from);
                    bar.enable_steady_tick(Duration::from_millis(120));
                    if let Ok(mut b) = self.bars.lock() {
                        b.insert(source, bar);
                    }
                } else if !self.quiet {
                    eprintln!("{source} ({kind}): {from}");
                }
            }
            Event::Stored {
                source,
                total,
                rejected,
                ..
            } => {
                let msg = format!(
                    "{total} pulled{}",
                    if rejected > 0 { ", some rejected" } else { "" }
                );
                if self.multi.is_some() {
                    if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(&source).cloned()) {
                        bar.set_message(msg);
                    }
                } else if !self.quiet
                    && let Ok(mut last) = self.last_line.lock()
                    && last.elapsed() > Duration::from_secs(2)
                {
                    *last = Instant::now();
                    eprintln!("{source}: {msg}");
                }
            }
            Event::Retrying {
                source,
                attempt,
                reason,
                wait,
            } => {
                let msg = format!(
                    "attempt {attempt} failed ({reason}); retrying in {:.1} s",
                    wait.as_secs_f64()
                );
                match self.bars.lock().ok().and_then(|b| b.get(&source).cloned()) {
                    Some(bar) => bar.set_message(msg),
                    None if !self.quiet => eprintln!("{source}: {msg}"),
                    None => {}
                }
            }
            Event::Finished(s) => {
                if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(&s.source)) {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
    }
}
