//! Progress lines while a snapshot streams: `backup`, `restore`, `verify`
//! and `decode` log how far they got at most once per interval.

use std::time::{Duration, Instant};

use contract::units::human_bytes;

pub struct Progress {
    interval: Duration,
    started: Instant,
    last: Instant,
}

impl Progress {
    pub fn new(interval: Duration) -> Self {
        let now = Instant::now();
        Self {
            interval,
            started: now,
            last: now,
        }
    }

    /// `<verb> 1.5 GiB at 200.0 MiB/s` once the interval has passed since
    /// the last line; None before.
    pub fn due(&mut self, verb: &str, bytes: u64) -> Option<String> {
        if self.last.elapsed() < self.interval {
            return None;
        }
        self.last = Instant::now();
        let rate = bytes as f64 / self.started.elapsed().as_secs_f64();
        Some(format!(
            "{verb} {} at {}/s",
            human_bytes(bytes as f64),
            human_bytes(rate)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_at_most_once_per_interval() {
        let mut every = Progress::new(Duration::ZERO);
        let line = every.due("restored", 3 * 1024 * 1024).unwrap();
        assert!(line.starts_with("restored 3.0 MiB at "), "{line}");
        let mut rarely = Progress::new(Duration::from_secs(3600));
        assert_eq!(rarely.due("restored", 1), None);
    }
}
