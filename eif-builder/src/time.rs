//! Build timestamps: RFC 3339 parsing and the exact text chrono's `to_rfc3339()` gives in UTC.
//!
//! The EIF metadata records a `BuildTime`. nitro-cli writes `Utc::now().to_rfc3339()`; we write
//! a time the caller fixes (SOURCE_DATE_EPOCH, or `--build-time`) in the same format, e.g.
//! `1970-01-01T00:00:00+00:00`, so images are reproducible and look like nitro-cli's.

use crate::error::{Error, Result};
use contract::date;

const SECS_PER_DAY: i64 = 86_400;

/// The date of a day count since 1970-01-01, as (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let (y, m, d) = date::civil_from_days(days);
    (y, i64::from(m), i64::from(d))
}

/// Formats a UTC instant as chrono's `DateTime<Utc>::to_rfc3339()` does: seconds, then 3, 6 or 9
/// fraction digits only when there is a fraction, then `+00:00`.
fn format(secs: i64, nanos: u32) -> Result<String> {
    let days = secs.div_euclid(SECS_PER_DAY);
    let tod = secs.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return Err(Error::unsupported(
            "build time",
            format!("year {year} is outside 0000..=9999"),
        ));
    }
    let fraction = if nanos == 0 {
        String::new()
    } else if nanos.is_multiple_of(1_000_000) {
        format!(".{:03}", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!(".{:06}", nanos / 1_000)
    } else {
        format!(".{nanos:09}")
    };
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}+00:00",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    ))
}

/// Seconds since the Unix epoch by this machine's clock (0 before 1970): the verification time
/// of `attest`, `verify` and `proxy`.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `to_rfc3339()` text of `secs` seconds after the Unix epoch, e.g. 0 →
/// `1970-01-01T00:00:00+00:00`.
pub fn rfc3339_from_unix(secs: u64) -> Result<String> {
    let secs = i64::try_from(secs)
        .map_err(|_| Error::unsupported("build time", format!("{secs} seconds is too far")))?;
    format(secs, 0)
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00Z`, `…+02:00`, optional fraction up to
/// nanoseconds) and returns it converted to UTC in `to_rfc3339()` form.
pub fn normalize_rfc3339(text: &str) -> Result<String> {
    let (secs, nanos) = parse(text, "build time")?;
    format(secs, nanos)
}

/// Parses an RFC 3339 timestamp as [`normalize_rfc3339`] does and returns it as seconds since
/// the Unix epoch (negative before 1970) and nanoseconds; `what` names it in errors.
pub fn parse_rfc3339(text: &str, what: &str) -> Result<(i64, u32)> {
    parse(text, what)
}

fn parse(text: &str, what: &str) -> Result<(i64, u32)> {
    date::parse_rfc3339(text).map_err(|detail| {
        Error::invalid(
            format!("{what} {text:?}"),
            format!("{detail} (expected RFC 3339, e.g. 2024-05-01T12:00:00Z)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_instants() {
        assert_eq!(rfc3339_from_unix(0).unwrap(), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            rfc3339_from_unix(1_700_000_000).unwrap(),
            "2023-11-14T22:13:20+00:00"
        );
        assert_eq!(
            rfc3339_from_unix(951_782_400).unwrap(),
            "2000-02-29T00:00:00+00:00"
        );
        assert!(rfc3339_from_unix(u64::MAX).is_err());
        assert!(rfc3339_from_unix(253_402_300_800).is_err()); // year 10000
    }

    #[test]
    fn normalizes_like_chrono() {
        let cases = [
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00+00:00"),
            ("2023-11-14T22:13:20+00:00", "2023-11-14T22:13:20+00:00"),
            ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00+00:00"),
            ("2024-05-01t01:30:00-01:45", "2024-05-01T03:15:00+00:00"),
            ("2024-12-31T23:59:59-00:01", "2025-01-01T00:00:59+00:00"),
            ("2024-05-01T12:00:00.5Z", "2024-05-01T12:00:00.500+00:00"),
            (
                "2024-05-01T12:00:00.000001Z",
                "2024-05-01T12:00:00.000001+00:00",
            ),
            (
                "2024-05-01T12:00:00.123456789Z",
                "2024-05-01T12:00:00.123456789+00:00",
            ),
            ("2024-05-01T12:00:00.000Z", "2024-05-01T12:00:00+00:00"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_rfc3339(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T23:59:60Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00.1234567890Z",
            "2024-05-01T12:00:00+2:00",
            "2024-05-01T12:00:00Zjunk",
            "２０２４-05-01T12:00:00Z",
        ] {
            assert!(normalize_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
