import Foundation
import SentinelCore
import SentinelTestSupport
import Testing

@Suite struct ScanHostileFileTests {
    /// A file of a few KiB on disk declaring 2 GiB of read-only data with the build-string key at its start: the
    /// scan's memory must not follow the declared size, and the file gets a warning naming it (its
    /// read-only data is beyond what the search covers) instead of a static-copy verdict.
    @Test func hugeDeclaredReadOnlyDataIsBoundedAndWarned() throws {
        let dir = try Fixtures.copy(try Fixtures.elf("canonical"))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SparseELF.write(dir + "/lib/huge.so", declared: 2 << 30,
                            strings: [(0, "OpenSSL 3.5.9 29 Sep 2026"), (26, "OPENSSLDIR: \"/crafted\"")])
        let rss = dir + ".maxrss"
        defer { try? FileManager.default.removeItem(atPath: rss) }
        // ru_maxrss of the child (KiB), through GNU time.
        let r = try Sentinel.shell(["/usr/bin/time", "-o", rss, "-f", "%M", Sentinel.binary, "scan", dir, "--format", "json"])
        let peakKiB = Int(try String(contentsOfFile: rss, encoding: .utf8).split(separator: "\n").last ?? "") ?? .max
        #expect(peakKiB < 128 << 10, "peak RSS \(peakKiB) KiB")
        let warnings = r.report?.targets.first?.warnings ?? []
        #expect(warnings.contains { $0.hasPrefix("lib/huge.so: ") && $0.contains("static-copy search") }, "\(warnings) \(r.stderr)")
        #expect(r.findings(.staticOpenSSLCopy).isEmpty, "\(r.codes())")
    }
}
