//! Build timestamps: the one time value an image carries, taken from `SOURCE_DATE_EPOCH`
//! (<https://reproducible-builds.org/specs/source-date-epoch/>) or a fixed default, and its
//! conversions to the FAT and tar encodings.
//!
//! Nothing here reads a clock. FAT stores local time without a zone; images store UTC there, so
//! the bytes do not depend on the builder's time zone.

use crate::Error;

/// The timestamp used when the caller gives none: 1980-01-01T00:00:00Z, the earliest instant FAT
/// can record (and so representable in every format the image uses).
pub const DEFAULT_EPOCH: u64 = 315_532_800;

/// The last instant a FAT directory entry can record: 2107-12-31T23:59:58Z. Later timestamps are
/// clamped to it in FAT (tar keeps the exact value).
pub const FAT_MAX_EPOCH: u64 = 4_354_819_198;

/// Seconds in a day.
const SECONDS_PER_DAY: u64 = 86_400;

/// A point in time, in whole seconds since the Unix epoch (UTC), never before 1970.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp(DEFAULT_EPOCH)
    }
}

impl Timestamp {
    /// A timestamp `seconds` after 1970-01-01T00:00:00Z.
    pub const fn from_unix(seconds: u64) -> Self {
        Timestamp(seconds)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix(self) -> u64 {
        self.0
    }

    /// Parses the value of `SOURCE_DATE_EPOCH`: a non-negative decimal integer of seconds.
    ///
    /// ```
    /// use mkimage_core::Timestamp;
    /// assert_eq!(Timestamp::parse_source_date_epoch("1700000000").unwrap().unix(), 1_700_000_000);
    /// assert!(Timestamp::parse_source_date_epoch("yesterday").is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidTimestamp`] unless `value` is a whole number of seconds.
    pub fn parse_source_date_epoch(value: &str) -> Result<Self, Error> {
        let invalid = |reason: &'static str| Error::InvalidTimestamp { value: value.to_owned(), reason };
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("SOURCE_DATE_EPOCH must be a whole number of seconds since 1970"));
        }
        value.parse().map(Timestamp).map_err(|_| invalid("the number is too large"))
    }

    /// The timestamp `SOURCE_DATE_EPOCH` names, the default when it is unset or empty, or an
    /// error when it is set to something else than a number.
    ///
    /// # Errors
    /// [`Error::InvalidTimestamp`] when the variable is set to something else than a number.
    pub fn from_env() -> Result<Self, Error> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(value) if !value.is_empty() => Self::parse_source_date_epoch(&value),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::InvalidTimestamp {
                value: String::from("(not valid UTF-8)"),
                reason: "SOURCE_DATE_EPOCH must be a whole number of seconds since 1970",
            }),
        }
    }

    /// The UTC calendar date and time, clamped to the range FAT can store.
    pub fn fat_date_time(self) -> FatDateTime {
        let secs = self.0.clamp(DEFAULT_EPOCH, FAT_MAX_EPOCH);
        let days = secs / SECONDS_PER_DAY;
        let rem = secs % SECONDS_PER_DAY;
        let (year, month, day) = civil_from_days(days);
        FatDateTime {
            year: year as u16,
            month: month as u16,
            day: day as u16,
            hour: (rem / 3600) as u16,
            minute: (rem / 60 % 60) as u16,
            second: (rem % 60) as u16,
        }
    }
}

/// A calendar date and time as FAT records it (UTC here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FatDateTime {
    /// Year, 1980..=2107.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u16,
    /// Day of the month, 1..=31.
    pub day: u16,
    /// Hour, 0..=23.
    pub hour: u16,
    /// Minute, 0..=59.
    pub minute: u16,
    /// Second, 0..=59 (FAT keeps even seconds in the main field and the rest in a fine field).
    pub second: u16,
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date in the proleptic Gregorian
/// calendar: days are counted in 400-year eras of 146,097 days, with years starting on 1 March
/// so that the leap day falls at the end of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(ts: u64) -> (u16, u16, u16, u16, u16, u16) {
        let d = Timestamp::from_unix(ts).fat_date_time();
        (d.year, d.month, d.day, d.hour, d.minute, d.second)
    }

    #[test]
    fn converts_known_instants() {
        assert_eq!(dt(DEFAULT_EPOCH), (1980, 1, 1, 0, 0, 0));
        assert_eq!(dt(951_782_400), (2000, 2, 29, 0, 0, 0)); // leap day in a /400 year
        assert_eq!(dt(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(dt(4_107_542_399), (2100, 2, 28, 23, 59, 59)); // 2100 is not a leap year
        assert_eq!(dt(4_107_542_400), (2100, 3, 1, 0, 0, 0));
        assert_eq!(dt(FAT_MAX_EPOCH), (2107, 12, 31, 23, 59, 58));
    }

    #[test]
    fn clamps_to_fat_range() {
        assert_eq!(dt(0), (1980, 1, 1, 0, 0, 0));
        assert_eq!(dt(u64::MAX), (2107, 12, 31, 23, 59, 58));
    }

    #[test]
    fn parses_source_date_epoch() {
        assert_eq!(Timestamp::parse_source_date_epoch("0").unwrap().unix(), 0);
        for bad in ["", "-1", "1.5", " 1", "1e9", "99999999999999999999999"] {
            assert!(Timestamp::parse_source_date_epoch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_day_round_trips_through_the_calendar() {
        // Walk 200 years day by day and check the civil date advances by exactly one day.
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for days in 1..73_049 {
            let cur = civil_from_days(days);
            let (y, m, d) = prev;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
            let expected = if d < month_len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!(cur, expected, "day {days}");
            prev = cur;
        }
    }
}
