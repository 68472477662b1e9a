import Glibc

/// Now, as ISO 8601 UTC ("2026-11-23T15:01:39Z"), with strftime: ISO8601DateFormatter loads ICU and
/// time zone data, a few ms that count in a 10 ms POST and pages that count in the daemon's RSS.
public func utcTimestamp() -> String {
    var t = time(nil)
    var parts = tm()
    gmtime_r(&t, &parts)
    var buf = [CChar](repeating: 0, count: 32)
    let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
