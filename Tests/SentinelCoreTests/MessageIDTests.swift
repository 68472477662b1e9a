import Testing
import SentinelCore

@Suite("journal MESSAGE_IDs")
struct MessageIDTests {
    @Test("every finding code and daemon event has its own 128-bit lowercase hex id")
    func distinctAndWellFormed() {
        let ids = FindingCode.allCases.map(\.messageID) + DaemonMessageID.all.map(\.id)
        #expect(ids.count == FindingCode.allCases.count + 6)
        #expect(Set(ids).count == ids.count, "duplicate ids")
        for id in ids {
            #expect(id.utf8.count == 32 && id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }, "\(id)")
        }
        #expect(Set(DaemonMessageID.all.map(\.name)).count == DaemonMessageID.all.count)
    }

    @Test("ids are fixed forever: a few pinned values")
    func pinned() {
        #expect(FindingCode.splitLibcrypto.messageID == "b59c70130b7d47788a8acb459dba45cf")
        #expect(FindingCode.postCommandFailed.messageID == "c743d03d9f59497c985776ca2a1e8027")
        #expect(DaemonMessageID.targetState == "dc5181a1772748fd9127c3d44175cbfc")
    }

    @Test("the catalog has one entry per id, with subject, Defined-By and a fix per finding code")
    func catalogEntries() {
        let text = JournalCatalog.render()
        let entries = text.components(separatedBy: "\n-- ").dropFirst()
        let ids = entries.map { String($0.prefix(32)) }
        #expect(ids == FindingCode.allCases.map(\.messageID) + DaemonMessageID.all.map(\.id))
        for entry in entries {
            let lines = entry.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines[1].hasPrefix("Subject: "))
            #expect(lines[2] == "Defined-By: crypto-sentinel")
            #expect(lines[3].hasPrefix("Documentation: "))
            #expect(lines[4].isEmpty, "header ends with an empty line")
            // Only the entry marker may start with "-- " (journalctl would start a new entry).
            #expect(!lines.dropFirst().contains { $0.hasPrefix("-- ") })
        }
        for code in FindingCode.allCases {
            #expect(!JournalCatalog.fix(code).isEmpty)
            let entry = entries.first { $0.hasPrefix(code.messageID) } ?? ""
            #expect(entry.contains(code.rawValue))
            #expect(entry.contains(String(code.why.dropFirst().prefix(40))), "cause of \(code.rawValue)")
        }
    }
}
