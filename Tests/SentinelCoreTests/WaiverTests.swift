import Testing
import SentinelCore

/// Waivers on reports built from findings shaped like BundleAudit's and ProcessAudit's, with "today"
/// given: what matches, what counts, when a waiver lapses, and what the journal hears about it.
@Suite struct WaiverTests {
    let mangled = Finding(code: .mangledOpenSSLName, target: "product", subject: "libcrypto-27e744a7.so.3", summary: "hashed name",
                          evidence: ["name": "libcrypto-27e744a7.so.3", "files": ["lib/libcrypto-27e744a7.so.3"], "needed_by": ["lib/_ssl.so"]])
    let split = Finding(code: .splitLibcrypto, target: "product", subject: "libcrypto 254:1 ino 10, 254:1 ino 11", summary: "two libcrypto",
                        evidence: ["library": "libcrypto", "copies": .array([
                            ["path": "lib/libcrypto-27e744a7.so.3", "device_inode": "254:1 ino 10"],
                            ["path": "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "device_inode": "254:1 ino 11"]])])
    let orphan = Finding(code: .orphanOpenSSLCopy, target: "product", subject: "vendor/libssl.so.3", summary: "orphan",
                         evidence: ["path": "vendor/libssl.so.3", "device_inode": "254:1 ino 12"])

    func report(_ findings: [Finding], name: String = "product") -> Report {
        Report(command: "scan", toolVersion: "t", generatedAt: "2026-11-23T10:00:00Z",
               targets: [TargetReport(name: name, kind: "bundle", root: "/opt/product", findings: findings)])
    }

    func waiver(_ code: FindingCode, target: String = "*", path: String? = nil, expires: String = "2027-01-31") -> Waiver {
        Waiver(code: code, target: target, path: path, reason: "vendor fix due in 4.2", expires: expires, source: "w.yaml:1")
    }

    @Test func aWaivedFindingStaysButCountsTowardNoStateCountOrExitStatus() {
        var r = report([mangled, orphan])
        #expect(r.state == .failed && r.exitStatus(failOn: .error) == 1)
        r.apply([waiver(.mangledOpenSSLName, target: "product")], today: "2026-11-23")
        let t = r.targets[0]
        #expect(t.findings.count == 2)
        #expect(t.findings.last?.code == .mangledOpenSSLName, "waived findings are listed after those that count")
        #expect(t.findings.last?.waived == Waiver.Mark(reason: "vendor fix due in 4.2", expires: "2027-01-31"))
        #expect(t.state == .healthy && r.state == .healthy)
        #expect(r.counts["error"] == 0 && r.counts["info"] == 1)
        #expect(r.exitStatus(failOn: .error) == 0)
        #expect(r.exitStatus(failOn: .info) == 1, "the orphan still counts")
        #expect(t.worstFinding?.code == .orphanOpenSSLCopy)
        #expect(r.waiversUnused == [] && r.waiversExpired == [])
    }

    @Test func theLastDayStillHoldsTheNextDayItCountsAgain() {
        let w = waiver(.mangledOpenSSLName, expires: "2027-01-31")
        var onTheDay = report([mangled])
        onTheDay.apply([w], today: "2027-01-31")
        #expect(onTheDay.state == .healthy && onTheDay.waiversExpired == [])
        var after = report([mangled])
        after.apply([w], today: "2027-02-01")
        #expect(after.targets[0].findings[0].waived == nil)
        #expect(after.state == .failed && after.exitStatus(failOn: .error) == 1)
        #expect(after.waiversExpired == [w] && after.waiversUnused == [], "an expired waiver is listed as expired, not unused")
    }

    @Test("path: the file a finding is about, as the report shows it, absolute under the root, or MAJOR:MINOR:INODE",
          arguments: [("lib/libcrypto-27e744a7.so.3", true), ("/opt/product/lib/libcrypto-27e744a7.so.3", true),
                      ("./lib/libcrypto-27e744a7.so.3", true), ("254:1:10", true), ("254:1 ino 10", true),
                      ("254:1:11", true), ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3", true),
                      ("lib/libcrypto.so.3", false), ("254:1:12", false), ("libcrypto-27e744a7.so", false)])
    func pathMatching(_ path: String, _ matches: Bool) {
        var r = report([split, orphan])
        r.apply([waiver(.splitLibcrypto, path: path)], today: "2026-11-23")
        #expect((r.targets[0].findings.first { $0.code == .splitLibcrypto }?.waived != nil) == matches)
        #expect(r.waiversUnused?.count == (matches ? 0 : 1))
    }

    @Test func theSubjectAndEvidencePathsOfEachKindOfFindingMatch() {
        var r = report([mangled, orphan])
        r.apply([waiver(.mangledOpenSSLName, path: "lib/_ssl.so"), waiver(.orphanOpenSSLCopy, path: "254:1:12")], today: "2026-11-23")
        #expect(r.targets[0].findings.allSatisfy { $0.waived != nil })
        #expect(r.waiversUnused == [])
    }

    @Test func codeAndTargetMustBothMatchAndUnmatchedWaiversAreListed() {
        var r = report([mangled])
        let otherTarget = waiver(.mangledOpenSSLName, target: "worker"), otherCode = waiver(.splitLibcrypto)
        r.apply([otherTarget, otherCode], today: "2026-11-23")
        #expect(r.targets[0].findings[0].waived == nil && r.state == .failed)
        #expect(r.waiversUnused == [otherTarget, otherCode])
    }

    @Test func theFirstMatchingWaiverInListOrderMarksTheFinding() {
        var r = report([mangled])
        let first = Waiver(code: .mangledOpenSSLName, reason: "first", expires: "2027-01-01", source: "w.yaml:1")
        let second = Waiver(code: .mangledOpenSSLName, reason: "second", expires: "2028-01-01", source: "w.yaml:6")
        r.apply([first, second], today: "2026-11-23")
        #expect(r.targets[0].findings[0].waived?.reason == "first")
        #expect(r.waiversUnused == [second])
    }

    @Test func theJournalHearsWhenAWaiverCoversAFindingAndWhenItExpires() {
        let w = waiver(.mangledOpenSSLName, expires: "2027-01-31")
        var before = report([mangled])
        before.apply([w], today: "2027-01-31")
        // A finding that appears already waived: one info alert, and the target stays healthy (no state alert).
        let first = ChangeTracker.changes(from: nil, to: before, at: "2027-01-31T23:59:00Z")
        #expect(first.map(\.state) == ["waived"])
        #expect(first[0].kind == .findingWaiver && first[0].severity == .info)
        #expect(first[0].message == "waived until 2027-01-31 (vendor fix due in 4.2): hashed name")
        // The same picture the next cycle of that day: nothing.
        #expect(ChangeTracker.changes(from: before, to: before, at: "t").isEmpty)
        // The next day: the finding counts again, at its own severity, and the target fails.
        var after = report([mangled])
        after.apply([w], today: "2027-02-01")
        let lapsed = ChangeTracker.changes(from: before, to: after, at: "2027-02-01T00:04:00Z")
        #expect(lapsed.map(\.state) == ["waiver-expired", "failed"])
        #expect(lapsed[0].kind == .findingWaiver && lapsed[0].code == .mangledOpenSSLName && lapsed[0].severity == .error)
        #expect(lapsed[0].message == "waiver expired on 2027-01-31 (vendor fix due in 4.2), counts again: hashed name")
        #expect(lapsed[1].message == "product is failed (was healthy): mangled-openssl-name")
        // A waiver taken out of the configuration says so instead.
        let removed = ChangeTracker.changes(from: before, to: report([mangled]), at: "t")
        #expect(removed.map(\.state) == ["unwaived", "failed"])
        // And a waiver added for a finding that was failing.
        let added = ChangeTracker.changes(from: report([mangled]), to: before, at: "t")
        #expect(added.map(\.state) == ["waived", "healthy"])
    }
}
