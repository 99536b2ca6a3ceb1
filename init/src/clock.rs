//! The enclave's wall clock, said once at boot: certificate checks inside the enclave (an HTTPS
//! client of an outside service, AWS KMS) judge validity by it, so a wrong clock must be
//! visible in the console rather than show up later as a mysterious certificate error. The
//! line gives the time (UTC, RFC 3339) and the kernel's clock source.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the kernel names its current clock source.
pub const CLOCKSOURCE: &str = "sys/devices/system/clocksource/clocksource0/current_clocksource";

/// The longest clock source name shown.
const MAX_NAME: usize = 32;

/// `2026-12-02T04:33:00Z`, or a note when the clock is before 1970.
pub fn rfc3339(now: SystemTime) -> String {
    match now.duration_since(UNIX_EPOCH) {
        Ok(d) => contract::date::rfc3339(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        Err(_) => "before 1970 (the clock is not set)".to_owned(),
    }
}

/// The clock source's name from the file's text: one printable word, else `unknown`.
pub fn source_name(text: Option<&str>) -> String {
    match text.map(str::trim) {
        Some(s)
            if !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            s.to_owned()
        }
        _ => "unknown".to_owned(),
    }
}

/// The console line: the time now and the clock source under `root`'s sysfs.
pub fn describe(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join(CLOCKSOURCE)).ok();
    format!(
        "clock: {} (CLOCK_REALTIME; clock source {}); certificates are checked against it",
        rfc3339(SystemTime::now()),
        source_name(text.as_deref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_time_in_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "before 1970 (the clock is not set)"
        );
    }

    #[test]
    fn the_clock_source_name_is_one_printable_word() {
        assert_eq!(source_name(Some("kvm-clock\n")), "kvm-clock");
        assert_eq!(source_name(Some("tsc")), "tsc");
        assert_eq!(source_name(None), "unknown");
        assert_eq!(source_name(Some("")), "unknown");
        assert_eq!(source_name(Some("a b")), "unknown");
        assert_eq!(source_name(Some(&"x".repeat(40))), "unknown");
    }
}
