import Foundation
import Testing
import SentinelCore

@Suite struct ChangeTrackerTests {
    func report(_ targets: [TargetReport]) -> Report {
        Report(command: "daemon", toolVersion: "t", generatedAt: "2026-11-23T00:00:00Z", targets: targets)
    }
    let split = Finding(code: .splitLibcrypto, target: "api", subject: "libcrypto 8:1 ino 2, 8:1 ino 3", summary: "two libcrypto", evidence: ["paths": ["/a", "/b"]])
    let orphan = Finding(code: .orphanOpenSSLCopy, target: "api", subject: "/c", summary: "orphan /c")

    @Test func firstCycleAlertsEveryFindingAndTheFailedState() {
        let alerts = ChangeTracker.changes(from: nil, to: report([TargetReport(name: "api", kind: "service", findings: [split])]), at: "t")
        #expect(alerts.map(\.kind) == [.findingNew, .targetState])
        #expect(alerts[0].code == .splitLibcrypto && alerts[0].state == "new" && alerts[0].evidence["paths"] == "/a\n/b")
        #expect(alerts[1].state == "failed" && alerts[1].code == nil)
    }

    @Test func anUnchangedPictureYieldsNothing() {
        let r = report([TargetReport(name: "api", kind: "service", findings: [split, orphan])])
        #expect(ChangeTracker.changes(from: r, to: r, at: "t").isEmpty)
        // A healthy target appearing for the first time is not news either.
        #expect(ChangeTracker.changes(from: nil, to: report([TargetReport(name: "x", kind: "process", findings: [])]), at: "t").isEmpty)
    }

    @Test func resolvingReportsTheFindingAndTheStateOnce() {
        let before = report([TargetReport(name: "api", kind: "service", findings: [split, orphan])])
        let after = report([TargetReport(name: "api", kind: "service", findings: [orphan])])
        let alerts = ChangeTracker.changes(from: before, to: after, at: "t")
        #expect(alerts.count == 2)
        #expect(alerts[0].kind == .findingResolved && alerts[0].code == .splitLibcrypto && alerts[0].state == "resolved")
        #expect(alerts[1].kind == .targetState && alerts[1].state == "healthy" && alerts[1].evidence["previous_state"] == "failed")
    }

    @Test func aTargetThatGoesAwayResolvesItsFindings() {
        let before = report([TargetReport(name: "api", kind: "process", findings: [split])])
        let alerts = ChangeTracker.changes(from: before, to: report([]), at: "t")
        #expect(alerts.map(\.state) == ["resolved", "gone"])
    }

    /// An upgrade that rewords a summary must not resolve and re-announce the finding.
    @Test func aRewordedSummaryIsTheSameFinding() {
        var reworded = split
        reworded.summary = "OpenSSL consumers resolve to two libcrypto files"
        let before = report([TargetReport(name: "api", kind: "service", findings: [split, orphan])])
        let after = report([TargetReport(name: "api", kind: "service", findings: [reworded, orphan])])
        #expect(ChangeTracker.changes(from: before, to: after, at: "t").isEmpty)
    }

    @Test func differentSubjectsWithOneCodeAreTwoFindings() {
        let other = Finding(code: .orphanOpenSSLCopy, target: "api", subject: "/d", summary: "orphan /c")
        let both = report([TargetReport(name: "api", kind: "bundle", findings: [orphan, other])])
        let alerts = ChangeTracker.changes(from: nil, to: both, at: "t")
        #expect(alerts.filter { $0.kind == .findingNew }.count == 2)
        let one = report([TargetReport(name: "api", kind: "bundle", findings: [orphan])])
        let resolved = ChangeTracker.changes(from: both, to: one, at: "t")
        #expect(resolved.count == 1 && resolved[0].kind == .findingResolved && resolved[0].code == .orphanOpenSSLCopy)
        // The same identity twice in one report is one finding: announced once.
        var twice = orphan
        twice.summary = "orphan /c, again"
        #expect(ChangeTracker.changes(from: nil, to: report([TargetReport(name: "api", kind: "bundle", findings: [orphan, twice])]), at: "t").count == 1)
    }

    /// A report restored from a state file written before findings had a subject: the first diff after
    /// the upgrade compares that target by summary, so unchanged findings stay quiet.
    @Test func aStateFileWithoutSubjectsFallsBackToSummaries() throws {
        let old = Report(command: "daemon", toolVersion: "old", generatedAt: "t",
                         targets: [TargetReport(name: "api", kind: "service", findings: [split, orphan])])
        var json = try JSONSerialization.jsonObject(with: Data(ReportJSON.encode(old))) as! [String: Any]
        var targets = json["targets"] as! [[String: Any]]
        targets[0]["findings"] = (targets[0]["findings"] as! [[String: Any]]).map { f in f.filter { $0.key != "subject" } }
        json["targets"] = targets
        let restored = try JSONDecoder().decode(Report.self, from: JSONSerialization.data(withJSONObject: json))
        #expect(restored.targets[0].findings.allSatisfy { $0.subject == nil })

        let now = report([TargetReport(name: "api", kind: "service", findings: [split, orphan])])
        #expect(ChangeTracker.changes(from: restored, to: now, at: "t").isEmpty)
        // A summary reworded in that same upgrade shows once, as resolved and new; from then on subjects rule.
        var reworded = split
        reworded.summary = "reworded"
        let next = report([TargetReport(name: "api", kind: "service", findings: [reworded, orphan])])
        #expect(ChangeTracker.changes(from: restored, to: next, at: "t").map(\.state) == ["new", "resolved"])
        var again = reworded
        again.summary = "reworded again"
        #expect(ChangeTracker.changes(from: next, to: report([TargetReport(name: "api", kind: "service", findings: [again, orphan])]), at: "t").isEmpty)
    }

    @Test func evidenceIsFlattenedAndBounded() {
        let deep: JSONValue = ["copies": .array([["path": "/x", "inode": 7], ["path": "/y", "inode": 8]]), "big": .string(String(repeating: "z", count: 5000))]
        let flat = ChangeTracker.flatten(deep)
        #expect(flat["copies_0_path"] == "/x" && flat["copies_1_inode"] == "8")
        #expect(flat["big"]?.count == 2048)
    }
}
