import Glibc
@testable import SentinelSystem
import Testing

/// The report's generated_at, computed without gmtime_r or strftime: the same text they give, on
/// dates where hand-written calendar arithmetic would slip (padding, month and year ends, leap days
/// of 2000 and 2024, 2100 (no leap day), far years, before the epoch).
@Suite struct UTCTimestampTests {
    @Test(arguments: [0, 1, 59, 86_399, 86_400, 951_782_400, 951_868_799, 1_709_164_799, 1_709_251_199,
                      1_735_689_599, 1_796_232_043, 4_107_542_399, 4_107_542_400, 253_402_300_799, -1, -86_401] as [Int])
    func sameTextAsStrftime(_ seconds: Int) {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        var buf = [CChar](repeating: 0, count: 32)
        let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        #expect(utcTimestamp(seconds: Int64(seconds)) == String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    @Test func tenThousandRandomSecondsAgreeWithStrftime() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            var t = time_t(Int.random(in: -2_208_988_800...253_402_300_799, using: &generator))
            var parts = tm()
            gmtime_r(&t, &parts)
            var buf = [CChar](repeating: 0, count: 32)
            let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
            let expected = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if utcTimestamp(seconds: Int64(t)) != expected {
                Issue.record("\(t): \(utcTimestamp(seconds: Int64(t))) != \(expected)")
                return
            }
        }
        #expect(utcTimestamp().utf8.count == 20)
    }
}
