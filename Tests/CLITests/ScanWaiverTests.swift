import Foundation
import SentinelCore
import Testing

/// `scan --waivers FILE` on the real Debian cx_Freeze bundle (scripts/fixtures/cxfreeze-bundles.sh):
/// every finding stays in the report, the waived ones count toward neither state nor exit status,
/// unused and expired waivers are listed.
@Suite struct ScanWaiverTests {
    func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("waivers-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// "254:1 ino 1234" → "254:1:1234", the form a waiver file takes.
    func deviceInode(_ identity: String) -> String { identity.replacingOccurrences(of: " ino ", with: ":") }

    @Test func waivedFindingsStayMarkedAndStopCounting() throws {
        let root = try Fixtures.cxfreeze("debian")
        let plain = try Sentinel.run(["scan", root, "--format", "json"])
        #expect(plain.status == 1)
        let splits = plain.findings(.splitLibcrypto)
        let crypto = try #require(splits.first { $0.evidence["library"]?.stringValue == "libcrypto" })
        let ssl = try #require(splits.first { $0.evidence["library"]?.stringValue == "libssl" })
        func bundled(_ f: Finding) -> JSONValue? { f.evidence["copies"]?.arrayValue?.first { $0["in_bundle"] == .bool(true) } }
        let cryptoID = try #require(bundled(crypto)?["device_inode"]?.stringValue)
        let sslPath = try #require(bundled(ssl)?["path"]?.stringValue)
        let hashedCrypto = try #require(plain.findings(.mangledOpenSSLName).compactMap { $0.evidence["files"]?.arrayValue?.first?.stringValue }
            .first { $0.contains("libcrypto-") })

        let file = try write("""
            # the in-bundle libcrypto by device:inode, the in-bundle libssl by absolute path
            - code: split-libcrypto
              target: debian
              path: \(deviceInode(cryptoID))
              reason: one libcrypto lands with the 4.2 rebuild
              expires: 2099-12-31
            - code: split-libcrypto
              target: "*"
              path: \(root)/\(sslPath)
              reason: same rebuild
              expires: 2099-12-31
            - code: mangled-openssl-name
              target: "*"
              path: \(hashedCrypto)
              reason: auditwheel names until 4.2
              expires: 2099-12-31
            - code: mangled-openssl-name
              target: debian
              reason: the libssl one too
              expires: 2099-12-31
            - code: modules-dir-missing
              target: "*"
              reason: was accepted for 2019
              expires: 2020-01-01
            - code: static-openssl-copy
              target: elsewhere
              reason: another bundle's
              expires: 2099-12-31
            """)
        defer { try? FileManager.default.removeItem(atPath: file) }

        let r = try Sentinel.run(["scan", root, "--waivers", file, "--format", "json"])
        #expect(r.stderr == "", "\(r.stderr)")
        // Every finding is still reported.
        #expect(r.codes() == plain.codes())
        let waived = r.findings.filter { $0.waived != nil }
        #expect(waived.map(\.code.rawValue).sorted() == ["mangled-openssl-name", "mangled-openssl-name", "split-libcrypto", "split-libcrypto"])
        #expect(r.findings(.splitLibcrypto).allSatisfy { $0.waived?.expires == "2099-12-31" })
        #expect(r.findings(.mangledOpenSSLName).first { $0.evidence["name"]?.stringValue?.hasPrefix("libcrypto-") == true }?.waived?.reason
                == "auditwheel names until 4.2")
        // The expired waiver marks nothing: modules-dir-missing (a warning) still counts.
        #expect(r.findings(.modulesDirMissing).allSatisfy { $0.waived == nil })
        let report = try #require(r.report)
        #expect(report.state == .degraded && report.targets[0].state == .degraded)
        #expect(report.counts["critical"] == 0 && report.counts["error"] == 0 && report.counts["warning"] == 1)
        #expect(r.status == 0, "no unwaived finding at or above error")
        #expect(report.waiversExpired?.map(\.code) == [.modulesDirMissing])
        #expect(report.waiversExpired?.first?.source == "\(file):21")
        #expect(report.waiversUnused?.map(\.target) == ["elsewhere"])
        #expect(try Sentinel.run(["scan", root, "--waivers", file, "--format", "json", "--fail-on", "warning"]).status == 1)

        // Text: marked, with the reason and the date, and the two lists at the end.
        let text = try Sentinel.run(["scan", root, "--waivers", file])
        #expect(text.stdout.contains("DEGRADED (1 warning, 4 waived)"), "\(text.stdout)")
        #expect(text.stdout.contains("WAIVED critical[split-libcrypto]: "))
        #expect(text.stdout.contains("   = waived until 2099-12-31: one libcrypto lands with the 4.2 rebuild\n"))
        #expect(text.stdout.contains("waivers expired (their findings count again):\n  \(file):21: modules-dir-missing on *, expires 2020-01-01: was accepted for 2019\n"))
        #expect(text.stdout.contains("waivers unused (no finding matched them):\n  \(file):25: static-openssl-copy on elsewhere"))
        #expect(text.status == 0)
    }

    @Test func aBadWaiversFileIsAUsageErrorWithItsLineAndKey() throws {
        let file = try write("- code: split-libcrypto\n  target: \"*\"\n  reason: soon\n  expires: 2027-13-01\n")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try Sentinel.run(["scan", try Fixtures.elf("canonical"), "--waivers", file])
        #expect(r.status == 2)
        #expect(r.stdout == "")
        #expect(r.stderr == "crypto-sentinel: \(file):4:12: [0].expires: expected a date YYYY-MM-DD (the last day the waiver holds), got \"2027-13-01\"\n")
        let missing = try Sentinel.run(["scan", try Fixtures.elf("canonical"), "--waivers", file + ".absent"])
        #expect(missing.status == 2 && missing.stderr.contains("cannot read: No such file or directory"))
    }
}
