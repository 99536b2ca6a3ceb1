//! Civil (proleptic Gregorian, UTC) dates from Unix time and back, the HTTP date, and RFC 3339
//! timestamps (written in UTC, read with any offset).
//!
//! Howard Hinnant's `days_from_civil` / `civil_from_days`: exact for every day in `i64`
//! range that does not overflow the arithmetic below (far beyond any certificate or log).

const SECS_PER_DAY: i64 = 86_400;

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Civil {
    /// The year (proleptic Gregorian; may be before 1970).
    pub year: i64,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
    /// 0 to 59.
    pub second: u8,
}

/// Days since 1970-01-01 of a date (month 1–12, day 1–31; not validated here).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, small(month), small(day))
}

fn small(v: i64) -> u8 {
    u8::try_from(v).unwrap_or(0)
}

/// Whether `year` has a 29 February.
pub fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in a month of a year (0 for a month outside 1–12).
pub fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Civil {
    /// The date and time of a Unix time (seconds; negative is before 1970).
    pub fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(SECS_PER_DAY);
        let tod = secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: small(tod / 3600),
            minute: small(tod % 3600 / 60),
            second: small(tod % 60),
        }
    }

    /// The Unix time of this date and time; `None` if a field is out of its range.
    pub fn to_unix(&self) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
        {
            return None;
        }
        let days = days_from_civil(self.year, i64::from(self.month), i64::from(self.day));
        days.checked_mul(SECS_PER_DAY)?.checked_add(
            i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second),
        )
    }

    /// The day of the week, 0 = Sunday.
    pub fn weekday(&self) -> u8 {
        let days = days_from_civil(self.year, i64::from(self.month), i64::from(self.day));
        // 1970-01-01 was a Thursday (4).
        small((days + 4).rem_euclid(7))
    }
}

/// The IMF-fixdate of RFC 9110 §5.6.7 (`Sun, 06 Nov 1994 08:49:37 GMT`) of a Unix time.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = Civil::from_unix(i64::try_from(secs).unwrap_or(i64::MAX));
    let wd = DAYS.get(usize::from(c.weekday())).unwrap_or(&"Thu");
    let mon = MONTHS
        .get(usize::from(c.month.saturating_sub(1)))
        .unwrap_or(&"Jan");
    format!(
        "{wd}, {:02} {mon} {} {:02}:{:02}:{:02} GMT",
        c.day, c.year, c.hour, c.minute, c.second
    )
}

/// `2026-12-02T04:33:00Z`: the RFC 3339 form of a Unix time, in UTC to the second.
pub fn rfc3339(secs: i64) -> String {
    let c = Civil::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

fn days_in_month_i64(year: i64, month: i64) -> i64 {
    u8::try_from(month).map_or(0, |m| i64::from(days_in_month(year, m)))
}

/// An RFC 3339 timestamp (`2024-05-01T12:00:00Z`, `…+02:00`, an optional fraction of up to nine
/// digits) as seconds since the Unix epoch (negative before 1970) and nanoseconds; the error
/// says what is wrong, without the text.
pub fn parse_rfc3339(text: &str) -> Result<(i64, u32), String> {
    let bad = |detail: &str| detail.to_owned();
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>, name: &str| -> Result<i64, String> {
        let digits = b
            .get(range)
            .ok_or_else(|| bad(&format!("{name} is missing")))?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad(&format!("{name} is not a number")));
        }
        Ok(digits
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, allowed: &[u8], name: &str| -> Result<(), String> {
        match b.get(at) {
            Some(c) if allowed.contains(c) => Ok(()),
            _ => Err(bad(&format!("expected {name} at position {}", at + 1))),
        }
    };
    let year = num(0..4, "year")?;
    sep(4, b"-", "'-'")?;
    let month = num(5..7, "month")?;
    sep(7, b"-", "'-'")?;
    let day = num(8..10, "day")?;
    sep(10, b"Tt ", "'T'")?;
    let hour = num(11..13, "hour")?;
    sep(13, b":", "':'")?;
    let minute = num(14..16, "minute")?;
    sep(16, b":", "':'")?;
    let second = num(17..19, "second")?;
    if !(1..=12).contains(&month) {
        return Err(bad("month out of range"));
    }
    if day < 1 || day > days_in_month_i64(year, month) {
        return Err(bad("day out of range"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad("time of day out of range"));
    }
    let mut pos = 19;
    let mut nanos: u32 = 0;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        let digits = b.get(start..pos).unwrap_or(&[]);
        if digits.is_empty() || digits.len() > 9 {
            return Err(bad("the fraction of a second must have 1 to 9 digits"));
        }
        let mut value: u32 = 0;
        for i in 0..9 {
            let d = digits.get(i).map_or(0, |d| u32::from(d - b'0'));
            value = value * 10 + d;
        }
        nanos = value;
    }
    let offset_secs = match b.get(pos) {
        Some(b'Z' | b'z') if b.len() == pos + 1 => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == pos + 6 => {
            let oh = num(pos + 1..pos + 3, "offset hours")?;
            sep(pos + 3, b":", "':'")?;
            let om = num(pos + 4..pos + 6, "offset minutes")?;
            if oh > 23 || om > 59 {
                return Err(bad("offset out of range"));
            }
            let off = oh * 3600 + om * 60;
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return Err(bad("expected 'Z' or an offset like +00:00 at the end")),
    };
    let local =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
    Ok((local - offset_secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn civil_round_trip_over_many_days() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
        let c = Civil::from_unix(-1);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.second),
            (1969, 12, 31, 23, 59)
        );
        assert_eq!(c.to_unix(), Some(-1));
        let feb29 = Civil {
            year: 2023,
            month: 2,
            day: 29,
            hour: 0,
            minute: 0,
            second: 0,
        };
        assert_eq!(feb29.to_unix(), None);
        assert_eq!(
            Civil {
                year: 2024,
                ..feb29
            }
            .to_unix(),
            Some(1_709_164_800)
        );
    }

    #[test]
    fn rfc3339_both_ways() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20Z"),
            Ok((1_700_000_000, 0))
        );
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20.25+02:00"),
            Ok((1_700_000_000, 250_000_000))
        );
        assert_eq!(
            parse_rfc3339("2023-02-29T00:00:00Z"),
            Err("day out of range".into())
        );
        assert_eq!(
            parse_rfc3339("2023-11-14 22:13:20"),
            Err("expected 'Z' or an offset like +00:00 at the end".into())
        );
        assert_eq!(
            parse_rfc3339("20231114"),
            Err("expected '-' at position 5".into())
        );
    }
}
