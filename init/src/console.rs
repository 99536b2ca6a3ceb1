//! init's log: one line per step on the console, `[seconds.micros] init: message`, the time
//! read from CLOCK_BOOTTIME like the kernel's own lines, so boot time can be read from the
//! console alone.

use nix::time::{clock_gettime, ClockId};
use std::fs::OpenOptions;
use std::io::Write;

/// Formats one log line (without the newline).
pub fn format_line(secs: i64, nanos: i64, level: &str, msg: &str) -> String {
    let micros = nanos / 1000;
    if level.is_empty() {
        format!("[{secs:5}.{micros:06}] init: {msg}")
    } else {
        format!("[{secs:5}.{micros:06}] init: {level}: {msg}")
    }
}

fn now() -> (i64, i64) {
    clock_gettime(ClockId::CLOCK_BOOTTIME).map_or((0, 0), |t| (t.tv_sec(), t.tv_nsec()))
}

/// Writes one line to stderr (the console once [`attach`] ran). Logging never fails boot.
pub fn log(level: &str, msg: &str) {
    let (s, n) = now();
    let mut line = format_line(s, n, level, msg);
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Makes /dev/console the standard input, output and error of init (and so of the
/// application it starts). Called right after /dev is mounted.
pub fn attach() -> crate::error::Result {
    let console = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
        .map_err(crate::error::io("opening", "/dev/console"))?;
    let err = crate::error::sys("making /dev/console stdin, stdout and stderr");
    nix::unistd::dup2_stdin(&console)
        .and_then(|()| nix::unistd::dup2_stdout(&console))
        .and_then(|()| nix::unistd::dup2_stderr(&console))
        .map_err(err)
}

/// `info!`-style helpers.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::console::log("", &format!($($arg)*)) };
}

/// Warnings: something is off but boot goes on.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::console::log("warning", &format!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_zero_padded_like_the_kernel() {
        assert_eq!(
            format_line(0, 934_512_345, "", "hi"),
            "[    0.934512] init: hi"
        );
        assert_eq!(
            format_line(12, 5_000, "error", "x"),
            "[   12.000005] init: error: x"
        );
    }
}
