import Glibc

/// Now, as ISO 8601 UTC ("2026-11-23T15:01:39Z"), from gmtime_r alone: ISO8601DateFormatter loads ICU
/// and time zone data, and even strftime reads /etc/localtime (tzset) at its first call, a file open
/// on the path of every `post` between the probe's answer and the output.
public func utcTimestamp() -> String {
    var t = time(nil)
    var parts = tm()
    gmtime_r(&t, &parts)
    return utcTimestamp(parts)
}

func utcTimestamp(_ parts: tm) -> String {
    func digits(_ value: Int32, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return "\(digits(parts.tm_year + 1900, 4))-\(digits(parts.tm_mon + 1, 2))-\(digits(parts.tm_mday, 2))T"
        + "\(digits(parts.tm_hour, 2)):\(digits(parts.tm_min, 2)):\(digits(parts.tm_sec, 2))Z"
}
