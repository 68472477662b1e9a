import Glibc
@testable import SentinelSystem
import Testing

/// The report's generated_at, written without strftime: the same text strftime gives, on dates
/// where a hand-written formatter would slip (padding, month and year ends, a leap day, far years).
@Suite struct UTCTimestampTests {
    @Test(arguments: [0, 1, 951_782_400, 1_709_164_799, 1_735_689_599, 1_796_232_043, 4_102_444_800, 253_402_300_799] as [Int])
    func sameTextAsStrftime(_ seconds: Int) {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        var buf = [CChar](repeating: 0, count: 32)
        let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        #expect(utcTimestamp(parts) == String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    @Test func nowIsTwentyCharacters() {
        #expect(utcTimestamp().utf8.count == 20)
    }
}
