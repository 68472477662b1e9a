import Testing
import SentinelCore

@Suite struct ChangeTrackerTests {
    func report(_ targets: [TargetReport]) -> Report {
        Report(command: "daemon", toolVersion: "t", generatedAt: "2026-11-23T00:00:00Z", targets: targets)
    }
    let split = Finding(code: .splitLibcrypto, target: "api", summary: "two libcrypto", evidence: ["paths": ["/a", "/b"]])
    let orphan = Finding(code: .orphanOpenSSLCopy, target: "api", summary: "orphan /c")

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

    @Test func evidenceIsFlattenedAndBounded() {
        let deep: JSONValue = ["copies": .array([["path": "/x", "inode": 7], ["path": "/y", "inode": 8]]), "big": .string(String(repeating: "z", count: 5000))]
        let flat = ChangeTracker.flatten(deep)
        #expect(flat["copies_0_path"] == "/x" && flat["copies_1_inode"] == "8")
        #expect(flat["big"]?.count == 2048)
    }
}
