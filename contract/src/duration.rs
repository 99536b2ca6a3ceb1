//! Durations as written on command lines and in environment variables: a whole number and a
//! unit, `ms`, `s`, `m` or `h`; a bare number is seconds. `0` is allowed (callers give it a
//! meaning, such as "never", or refuse it). A value too large for [`Duration`] is an error,
//! never silently capped.

use std::fmt;
use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// No digits at the start (`""`, `s`, `-1`, `1.5s` is caught as a unit).
    NoNumber(String),
    /// A unit other than `ms`, `s`, `m` or `h`.
    Unit(String),
    /// Too large.
    Overflow(String),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::NoNumber(s) => {
                write!(f, "invalid duration {s:?}: expected a whole number and ms, s, m or h (e.g. 500ms, 10s, 2m)")
            }
            DurationError::Unit(s) => {
                write!(f, "invalid duration {s:?}: the unit must be ms, s, m or h")
            }
            DurationError::Overflow(s) => write!(f, "invalid duration {s:?}: too large"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses `500ms`, `10s`, `2m`, `1h` or `10` (seconds).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    if digits.is_empty() {
        return Err(DurationError::NoNumber(text.to_owned()));
    }
    let overflow = || DurationError::Overflow(text.to_owned());
    let n: u64 = digits.parse().map_err(|_| overflow())?;
    let secs = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(overflow)
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        _ => Err(DurationError::Unit(text.to_owned())),
    }
}

/// The shortest exact spelling [`parse`] reads back (`1500ms`, `10s`, `2m`, `1h`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) || d.is_zero() {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        for d in ["1500ms", "10s", "2m", "1h", "0ms", "90s"] {
            assert_eq!(format(parse(d).unwrap()), d);
        }
    }

    #[test]
    fn errors_name_the_text_and_never_saturate() {
        for bad in ["", "s", "-1", " 1s", "1 s"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse("1.5s"), Err(DurationError::Unit("1.5s".into())));
        assert_eq!(parse("5d"), Err(DurationError::Unit("5d".into())));
        assert_eq!(
            parse("99999999999999999999"),
            Err(DurationError::Overflow("99999999999999999999".into()))
        );
        assert_eq!(
            parse("9999999999999999999h"),
            Err(DurationError::Overflow("9999999999999999999h".into()))
        );
        assert_eq!(
            parse("soon").unwrap_err().to_string(),
            "invalid duration \"soon\": expected a whole number and ms, s, m or h (e.g. 500ms, 10s, 2m)"
        );
        assert_eq!(
            parse("5d").unwrap_err().to_string(),
            "invalid duration \"5d\": the unit must be ms, s, m or h"
        );
    }
}
