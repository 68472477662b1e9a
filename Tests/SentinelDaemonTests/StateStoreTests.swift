import Foundation
import Glibc
import Testing
import SentinelCore
@testable import SentinelDaemon

@Suite struct StateStoreTests {
    func tempDir() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-state-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
    let report = Report(command: "daemon", toolVersion: "t", generatedAt: "2026-11-23T00:00:00Z",
                        targets: [TargetReport(name: "api", kind: "service",
                                               findings: [Finding(code: .splitLibcrypto, target: "api", subject: "libcrypto 8:1 ino 2, 8:1 ino 3", summary: "s", evidence: ["a": 1])])])

    @Test func reportAndBoundedHistoryRoundTrip() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = StateStore(directory: dir, historyLimit: 3)
        try store.save(report: report)
        let alerts = (0..<5).map { Alert(kind: .findingNew, code: .splitLibcrypto, target: "t\($0)", state: "new", severity: .critical, message: "m", at: "t") }
        try store.save(history: alerts)
        let (r, h, warnings) = store.load()
        #expect(warnings.isEmpty)
        #expect(r?.targets.first?.findings.first?.code == .splitLibcrypto)
        // A restart keeps each finding's identity.
        #expect(r?.targets.first?.findings.first?.subject == "libcrypto 8:1 ino 2, 8:1 ino 3")
        #expect(h.map(\.target) == ["t2", "t3", "t4"])
        // Nothing but the two files: the temp file was renamed.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["history.json", "report.json"])
    }

    @Test func aCorruptFileIsSetAsideWithAWarning() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("{\"schema_version\": 1, trunc".utf8).write(to: URL(fileURLWithPath: dir + "/report.json"))
        let (r, _, warnings) = StateStore(directory: dir, historyLimit: 10).load()
        #expect(r == nil)
        #expect(warnings.count == 1 && warnings[0].contains("report.json: not a valid state file") && warnings[0].contains("set aside as"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.hasPrefix("report.json.corrupt-") })
    }

    @Test func aReadOnlyFolderIsAOneLineError() throws {
        let dir = tempDir(); defer { chmod(dir, 0o755); try? FileManager.default.removeItem(atPath: dir) }
        chmod(dir, 0o555)
        // root ignores mode bits; drop to nobody for this check only when we are root.
        let store = StateStore(directory: dir, historyLimit: 10)
        if geteuid() == 0 {
            // A file in the way of the temp file's rename target directory: make the target a directory.
            chmod(dir, 0o755)
            try FileManager.default.createDirectory(atPath: dir + "/report.json", withIntermediateDirectories: false)
            try FileManager.default.createDirectory(atPath: dir + "/report.json/x", withIntermediateDirectories: false)
        }
        #expect(throws: StateStore.Failure.self) { try store.save(report: report) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).allSatisfy { !$0.contains(".tmp-") })
    }

    /// A link planted at the temp file's name (by anyone who could write the folder) is never
    /// followed: root used to truncate and overwrite the file it pointed at.
    @Test func aLinkAtTheTempNameIsNeverFollowed() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let victimDir = tempDir(); defer { try? FileManager.default.removeItem(atPath: victimDir) }
        let victim = victimDir + "/shadow"
        try "root-only\n".write(toFile: victim, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/" + StateStore.tempName("report.json"), withDestinationPath: victim)
        let store = StateStore(directory: dir, historyLimit: 3)
        try store.save(report: report)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "root-only\n")
        #expect(store.load().report?.targets.first?.name == "api")
        var st = stat()
        #expect(lstat(dir + "/report.json", &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG)
    }

    /// A state folder another user can write, or owns, is refused with the reason.
    @Test func aFolderOthersCanChangeIsRefused() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = StateStore(directory: dir, historyLimit: 3)
        try store.checkFolder()
        chmod(dir, 0o777)
        #expect { try store.checkFolder() } throws: { "\($0)".contains("writable by group or others (mode 777)") }
        #expect(throws: StateStore.Failure.self) { try store.save(report: report) }
        chmod(dir, 0o750)
        if geteuid() == 0 {
            chown(dir, 65534, 65534)
            #expect { try store.checkFolder() } throws: { "\($0)".contains("owned by uid 65534") }
        }
        let link = dir + "-link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dir)
        defer { unlink(link) }
        #expect { try StateStore(directory: link, historyLimit: 3).checkFolder() } throws: { "\($0)".contains("not a directory") }
    }
}
