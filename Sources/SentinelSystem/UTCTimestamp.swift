import Glibc

/// Now, as ISO 8601 UTC ("2026-11-23T15:01:39Z"), by arithmetic alone: ISO8601DateFormatter loads ICU
/// and time zone data, and glibc's gmtime_r (strftime too) reads /etc/localtime at its first call
/// (tzset, for leap seconds), a file open on the path of every `post` between the probe's answer
/// and the output.
public func utcTimestamp() -> String { utcTimestamp(seconds: Int64(time(nil))) }

/// Today as UTC `YYYY-MM-DD` (waiver expiry, CMVP sunset dates).
public func utcDate() -> String { String(utcTimestamp().prefix(10)) }

/// Seconds since the epoch as UTC text: days to a civil date (Howard Hinnant's days_from_civil,
/// inverted), which POSIX time (no leap seconds) maps exactly.
func utcTimestamp(seconds: Int64) -> String {
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let secondOfDay = seconds - days * 86_400
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    func digits(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return "\(digits(year, 4))-\(digits(month, 2))-\(digits(day, 2))T\(digits(secondOfDay / 3_600, 2)):"
        + "\(digits(secondOfDay % 3_600 / 60, 2)):\(digits(secondOfDay % 60, 2))Z"
}
