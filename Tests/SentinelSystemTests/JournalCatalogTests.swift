import Foundation
import SentinelCore
import SentinelTestSupport
import Testing

/// systemd/crypto-sentinel.catalog is generated from JournalCatalog; journalctl must accept it.
@Suite("journal catalog file")
struct JournalCatalogTests {
    @Test("the shipped file is JournalCatalog.render() (SENTINEL_WRITE_CATALOG=1 rewrites it)")
    func upToDate() throws {
        let rendered = JournalCatalog.render()
        if ProcessInfo.processInfo.environment["SENTINEL_WRITE_CATALOG"] == "1" {
            try rendered.write(toFile: CatalogRoot.shipped, atomically: true, encoding: .utf8)
        }
        let shipped = try String(contentsOfFile: CatalogRoot.shipped, encoding: .utf8)
        #expect(shipped == rendered, "systemd/crypto-sentinel.catalog is stale: SENTINEL_WRITE_CATALOG=1 swift test --filter JournalCatalogTests")
        for code in FindingCode.allCases {
            #expect(shipped.contains("\n-- \(code.messageID)\nSubject: \(code.rawValue) "), "\(code.rawValue)")
        }
    }

    /// --root works with --update-catalog on systemd 252 (checked): the database is built under a
    /// temporary root and the host's /var/lib/systemd/catalog is never touched.
    @Test("journalctl --update-catalog accepts it and --list-catalog lists every id")
    func journalctlListsEveryID() throws {
        let root = try CatalogRoot()
        defer { root.remove() }
        let (status, out) = try JournaldLease.runTool(JournaldLease.journalctl, ["--root=" + root.path, "--list-catalog", "--no-pager"])
        #expect(status == 0, "\(out)")
        let listed = Dictionary(out.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: " ", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }, uniquingKeysWith: { a, _ in a })
        for code in FindingCode.allCases {
            #expect(listed[code.messageID]?.hasPrefix("crypto-sentinel: \(code.rawValue) (\(code.severity.rawValue))") == true,
                    "\(code.rawValue): \(listed[code.messageID] ?? "missing")")
        }
        for event in DaemonMessageID.all {
            #expect(listed[event.id] != nil, "\(event.name) missing")
        }
        #expect(listed.count == FindingCode.allCases.count + DaemonMessageID.all.count)
    }
}
