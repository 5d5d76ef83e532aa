//! When runs may start: weekly windows (weekdays and hours, local time) and blackout days.

use chrono::{Datelike, Duration as TimeDelta, NaiveDate, NaiveDateTime, Timelike};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const MINUTES_PER_DAY: u32 = 24 * 60;
const MINUTES_PER_WEEK: u32 = 7 * MINUTES_PER_DAY;

/// One weekly window: on these days (Monday = 0), from `start` to `end` minutes of the day.
/// An `end` at or before `start` runs past midnight; the days are the days it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub days: [bool; 7],
    pub start: u32,
    pub end: u32,
}

impl Window {
    pub const ALWAYS: Window = Window {
        days: [true; 7],
        start: 0,
        end: MINUTES_PER_DAY,
    };

    /// Whether a run may start at this local wall-clock time.
    pub fn contains(&self, local: NaiveDateTime) -> bool {
        let day = local.weekday().num_days_from_monday() as usize;
        let minute = local.hour() * 60 + local.minute();
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&minute)
        } else {
            // Past midnight: the evening belongs to today, the early hours to yesterday.
            (self.days[day] && minute >= self.start)
                || (self.days[(day + 6) % 7] && minute < self.end)
        }
    }
}

/// Windows of a schedule; none means any time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows(pub Vec<Window>);

impl Windows {
    pub fn contains(&self, local: NaiveDateTime) -> bool {
        self.0.is_empty() || self.0.iter().any(|w| w.contains(local))
    }

    /// The share of a week's minutes inside the windows (1.0 without windows).
    pub fn open_fraction(&self) -> f64 {
        if self.0.is_empty() {
            return 1.0;
        }
        // A reference week on the wall clock, Monday 00:00 onwards (DST plays no part).
        let monday = NaiveDate::from_ymd_opt(2024, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("a valid date");
        let open = (0..MINUTES_PER_WEEK)
            .filter(|m| self.contains(monday + TimeDelta::minutes(i64::from(*m))))
            .count();
        open as f64 / f64::from(MINUTES_PER_WEEK)
    }
}

/// Parses `[mon, tue]`, ranges (`mon-fri`, `fri-mon`), full names; case-insensitive.
pub fn parse_days<S: AsRef<str>>(items: &[S]) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for item in items {
        let item = item.as_ref().trim().to_ascii_lowercase();
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day_index(&item)?] = true,
        }
    }
    Ok(days)
}

fn day_index(s: &str) -> Result<usize, String> {
    let s = s.trim();
    DAYS.iter()
        .position(|d| *d == s)
        .or_else(|| FULL_DAYS.iter().position(|d| *d == s))
        .ok_or_else(|| format!("unknown day `{s}`"))
}

/// Parses `HH:MM-HH:MM` (end may be `24:00`) into minutes of the day.
pub fn parse_hours(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("invalid hours `{s}`: expected HH:MM-HH:MM"))?;
    let minute = |t: &str, end: bool| -> Result<u32, String> {
        let (h, m) = t
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("invalid time `{}`: expected HH:MM", t.trim()))?;
        let (h, m): (u32, u32) = match (h.parse(), m.parse()) {
            (Ok(hh), Ok(mm)) if mm < 60 && m.len() == 2 && (1..=2).contains(&h.len()) => (hh, mm),
            _ => return Err(format!("invalid time `{}`: expected HH:MM", t.trim())),
        };
        match h * 60 + m {
            v if v < MINUTES_PER_DAY || (end && v == MINUTES_PER_DAY) => Ok(v),
            _ => Err(format!(
                "invalid time `{}`: hours go up to 23:59 (or 24:00 as an end)",
                t.trim()
            )),
        }
    };
    let (start, end) = (minute(a, false)?, minute(b, true)?);
    if start == end {
        return Err(format!("`{s}` is an empty window"));
    }
    Ok((start, end))
}

/// Blackout days: whole local days (inclusive ranges) on which no run starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blackout(pub Vec<(NaiveDate, NaiveDate)>);

impl Blackout {
    /// Whether `date` is a blackout day.
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&date))
    }
}

/// Parses `2026-12-24` or an inclusive range `2026-12-24..2026-12-31`.
pub fn parse_blackout(s: &str) -> Result<(NaiveDate, NaiveDate), String> {
    let date = |t: &str| {
        NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
            .map_err(|_| format!("invalid date `{}`: expected YYYY-MM-DD", t.trim()))
    };
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (date(a)?, date(b)?);
            if b < a {
                return Err(format!("`{s}` ends before it starts"));
            }
            Ok((a, b))
        }
        None => date(s).map(|d| (d, d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    #[test]
    fn a_window_opens_on_its_days_and_hours_only() {
        let (start, end) = parse_hours("10:00-16:00").unwrap();
        let w = Window {
            days: parse_days(&["mon", "tue", "wed", "thu"]).unwrap(),
            start,
            end,
        };
        // 2026-11-23 is a Monday.
        assert!(w.contains(at(2026, 11, 23, 10, 0)));
        assert!(w.contains(at(2026, 11, 23, 15, 59)));
        assert!(!w.contains(at(2026, 11, 23, 16, 0)));
        assert!(!w.contains(at(2026, 11, 23, 9, 59)));
        assert!(w.contains(at(2026, 11, 26, 12, 0)), "thursday");
        assert!(!w.contains(at(2026, 11, 27, 12, 0)), "friday");
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens() {
        let (start, end) = parse_hours("22:00-02:00").unwrap();
        let w = Window {
            days: parse_days(&["fri"]).unwrap(),
            start,
            end,
        };
        assert!(w.contains(at(2026, 11, 27, 23, 0)), "friday night");
        assert!(w.contains(at(2026, 11, 28, 1, 30)), "early saturday");
        assert!(!w.contains(at(2026, 11, 28, 23, 0)), "saturday night");
        assert!(!w.contains(at(2026, 11, 27, 1, 30)), "early friday");
    }

    #[test]
    fn days_take_ranges_that_wrap_and_full_names() {
        assert_eq!(
            parse_days(&["mon-fri"]).unwrap(),
            [true, true, true, true, true, false, false]
        );
        assert_eq!(
            parse_days(&["Sat-Mon"]).unwrap(),
            [true, false, false, false, false, true, true]
        );
        assert!(parse_days(&["sunday"]).unwrap()[6]);
        assert!(parse_days(&["mun"])
            .unwrap_err()
            .contains("unknown day `mun`"));
    }

    #[test]
    fn hours_are_checked() {
        assert_eq!(parse_hours("00:00-24:00").unwrap(), (0, 1440));
        assert!(parse_hours("10-16").is_err());
        assert!(parse_hours("10:00-25:00").is_err());
        assert!(parse_hours("10:00-10:00").is_err());
        assert!(parse_hours("10:75-11:00").is_err());
    }

    #[test]
    fn the_open_share_of_a_week_counts_minutes() {
        let (start, end) = parse_hours("10:00-16:00").unwrap();
        let w = Windows(vec![Window {
            days: parse_days(&["mon-thu"]).unwrap(),
            start,
            end,
        }]);
        let f = w.open_fraction();
        assert!((f - 24.0 / 168.0).abs() < 1e-9, "{f}");
        assert_eq!(Windows::default().open_fraction(), 1.0);
    }

    #[test]
    fn blackout_days_and_ranges() {
        let b = Blackout(vec![
            parse_blackout("2026-12-24").unwrap(),
            parse_blackout("2026-12-30..2027-01-01").unwrap(),
        ]);
        let d = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        assert!(b.covers(d(12, 24)));
        assert!(!b.covers(d(12, 25)));
        assert!(b.covers(d(12, 31)));
        assert!(b.covers(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()));
        assert!(parse_blackout("2026-13-01").is_err());
        assert!(parse_blackout("2026-12-31..2026-12-01").is_err());
    }
}
