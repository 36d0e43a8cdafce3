//! Calendar dates from the system clock, for the timestamps outputs carry (report.json, DICOM
//! ContentDate/Time). Written by hand: the civil-from-days conversion is a dozen lines, and a date
//! crate would be the only reason for the dependency.

/// Gregorian (proleptic) date `(year, month, day)` of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A UTC time split into calendar fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl UtcTime {
    /// The UTC time `secs` seconds after the Unix epoch.
    pub fn from_unix_seconds(secs: i64) -> Self {
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        let rem = rem as u32;
        UtcTime { year, month, day, hour: rem / 3600, minute: rem / 60 % 60, second: rem % 60 }
    }

    /// The current UTC time from the system clock (the epoch should the clock be before it).
    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self::from_unix_seconds(secs)
    }

    /// RFC 3339 with seconds, e.g. `2026-11-18T11:06:40Z`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// DICOM DA and TM values, e.g. (`20261118`, `110640`).
    pub fn dicom_date_time(&self) -> (String, String) {
        (
            format!("{:04}{:02}{:02}", self.year, self.month, self.day),
            format!("{:02}{:02}{:02}", self.hour, self.minute, self.second),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_gnu_date() {
        // Reference values from `date -u -d @SECS +%FT%TZ`.
        assert_eq!(UtcTime::from_unix_seconds(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(UtcTime::from_unix_seconds(1_795_000_000).rfc3339(), "2026-11-18T11:06:40Z");
        assert_eq!(UtcTime::from_unix_seconds(951_782_400).rfc3339(), "2000-02-29T00:00:00Z");
        let (da, tm) = UtcTime::from_unix_seconds(1_795_000_000).dicom_date_time();
        assert_eq!((da.as_str(), tm.as_str()), ("20261118", "110640"));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
