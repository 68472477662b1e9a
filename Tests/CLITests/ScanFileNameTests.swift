import Foundation
import SentinelCore
import Testing

/// File names are bytes: a name that is not UTF-8, or that carries terminal control sequences, is
/// scanned like any other and shown escaped (README, "Names in the output").
@Suite struct ScanFileNameTests {
    /// A second libcrypto copy in `lib\xff/` (not valid UTF-8) is part of the verdict, shown as `lib\xff`.
    @Test func folderNamedWithInvalidUTF8IsScanned() throws {
        let root = try Fixtures.copy(try Fixtures.elf("canonical"))
        defer { try? FileManager.default.removeItem(atPath: root) }
        let made = try Sentinel.shell(["bash", "-c", "d=\"$1/$(printf 'lib\\377')\" && mkdir \"$d\" && cp \"$1/lib/libcrypto.so.3\" \"$d/\"",
                                       "-", root])
        try #require(made.status == 0, "\(made.stderr)")
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        let dup = try #require(r.findings(.duplicateOpenSSLCopy).first, "\(r.codes()) \(r.report?.targets.first?.warnings ?? [])")
        let paths = (dup.evidence["copies"]?.arrayValue ?? []).compactMap { $0["path"]?.stringValue }.sorted()
        #expect(paths == ["lib/libcrypto.so.3", "lib\\xff/libcrypto.so.3"])
        #expect(dup.evidence["byte_identical"] == .bool(true))  // compared by its real bytes, not the shown name
    }

    /// A copy named with an escape sequence and a newline: the text report carries neither raw.
    @Test func controlCharactersInNamesAreEscapedInText() throws {
        let root = try Fixtures.copy(try Fixtures.elf("canonical"))
        defer { try? FileManager.default.removeItem(atPath: root) }
        let name = "libcrypto.so.3\u{1b}[31m\nFORGED: all clear"
        try FileManager.default.copyItem(atPath: root + "/lib/libcrypto.so.3", toPath: root + "/lib/" + name)
        let r = try Sentinel.run(["scan", root])
        #expect(r.stdout.contains("libcrypto.so.3\\u{1b}[31m\\u{a}FORGED: all clear"), "\(r.stdout)")
        #expect(!r.stdout.contains("\u{1b}"))
        #expect(!r.stdout.split(separator: "\n").contains { $0.hasPrefix("FORGED") })
        // JSON keeps the name exact (its own escaping).
        let json = try Sentinel.run(["scan", root, "--format", "json"])
        let paths = json.findings(.duplicateOpenSSLCopy).flatMap { $0.evidence["copies"]?.arrayValue ?? [] }
            .compactMap { $0["path"]?.stringValue }
        #expect(paths.contains("lib/" + name), "\(paths)")
    }
}
