import Foundation
import Testing
import SentinelCore
import SentinelSystem
import SentinelTestSupport
@testable import SentinelDaemon

/// Waivers in the daemon: cycles of the real CycleRunner on the Debian cx_Freeze bundle (a real split),
/// published through the Scheduler to a real journald, with the day moved from the last day a waiver
/// holds to the next.
@Suite("waivers in daemon cycles", .serialized)
struct WaiverCycleTests {
    @Test func aWaivedSplitDoesNotFailTheTargetUntilItsWaiverExpiresAndTheJournalSaysSo() throws {
        try FixtureScripts.build("cxfreeze-bundles.sh", out: FixtureScripts.root + "/cxfreeze")
        let lease = try JournaldLease()
        defer { lease.release() }
        let target = "waived-\(UUID().uuidString.prefix(8).lowercased())"
        let config = try DaemonConfig.parse("""
            bundles:
              - name: \(target)
                root: \(FixtureScripts.root)/cxfreeze/debian
            waivers:
              - code: split-libcrypto
                target: \(target)
                reason: one libcrypto lands with the 4.2 rebuild
                expires: 2027-01-31
              - code: mangled-openssl-name
                target: "*"
                reason: auditwheel names until 4.2
                expires: 2027-01-31
            """, file: "test.yaml")
        let day = Locked("2027-01-31")
        let runner = CycleRunner(toolVersion: "test", today: { day.withLock { $0 } })
        let alerts = Locked<[Alert]>([])
        let writer = JournalWriter(identifier: "crypto-sentinel-test")
        var hooks = Scheduler.Hooks()
        hooks.alert = { alert in
            alerts.withLock { $0.append(alert) }
            _ = writer.send(alert)
        }
        let board = StateBoard()
        let scheduler = Scheduler(config: config, board: board, store: nil, runner: runner, probe: nil, hooks: hooks)
        let metrics = DaemonMetrics()

        // The last day the waivers hold: every error is there, waived; the target is degraded by the
        // (unwaived) modules-dir-missing warning only, and nothing in STATUS= or the metrics fails.
        let first = try #require(runner.run(config, probe: nil))
        scheduler.publish(first, seconds: 0, historyLimit: 100)
        let t = try #require(first.targets.first)
        #expect(t.findings.filter { $0.waived != nil }.map(\.code.rawValue).sorted()
                == ["mangled-openssl-name", "mangled-openssl-name", "split-libcrypto", "split-libcrypto"])
        #expect(t.state == .degraded)
        #expect(board.current().statusLine == "1 target: 1 degraded (modules-dir-missing on \(target))")
        metrics.record(report: first, cycleSeconds: 0, finishedAt: 0)
        let exposition = String(decoding: metrics.render(), as: UTF8.self)
        let failed = exposition.split(separator: "\n").first { $0.hasPrefix(#"crypto_sentinel_target_state{target="\#(target)",state="failed"} "#) }
        #expect(failed.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } == 0)
        #expect(!exposition.contains(#"code="split-libcrypto""#), "a waived finding is no metric series")
        let announced = alerts.withLock { $0 }
        #expect(announced.filter { $0.state == "waived" }.count == 4)
        #expect(announced.filter { $0.state == "waived" }.allSatisfy { $0.severity == .info && $0.kind == .findingWaiver })
        #expect(announced.contains { $0.kind == .targetState && $0.state == "degraded" })

        // The same day again: nothing new.
        alerts.withLock { $0 = [] }
        scheduler.publish(try #require(runner.run(config, probe: nil)), seconds: 0, historyLimit: 100)
        #expect(alerts.withLock { $0 }.isEmpty)

        // The next day the findings count again by themselves: the target fails, and each finding's
        // return is one journal entry that names the waiver's date and reason.
        day.withLock { $0 = "2027-02-01" }
        let second = try #require(runner.run(config, probe: nil))
        scheduler.publish(second, seconds: 0, historyLimit: 100)
        #expect(second.targets.first?.state == .failed)
        #expect(second.targets.first?.findings.allSatisfy { $0.waived == nil } == true)
        #expect(second.waiversExpired?.count == 2)
        #expect(board.current().statusLine == "1 target: 1 failed (split-libcrypto on \(target))")
        let back = alerts.withLock { $0 }
        #expect(back.filter { $0.state == "waiver-expired" }.map(\.code?.rawValue).compactMap { $0 }.sorted()
                == ["mangled-openssl-name", "mangled-openssl-name", "split-libcrypto", "split-libcrypto"])
        #expect(back.contains { $0.kind == .targetState && $0.state == "failed" })

        let entries = try JournaldLease.entries(matching: ["SENTINEL_TARGET=\(target)", "SENTINEL_STATE=waiver-expired"], count: 4)
        #expect(entries.count == 4)
        let split = try #require(entries.first { $0["SENTINEL_CODE"] as? String == "split-libcrypto" })
        #expect(split["PRIORITY"] as? String == "2")
        #expect(split["MESSAGE_ID"] as? String == FindingCode.splitLibcrypto.messageID)
        #expect((split["MESSAGE"] as? String)?.hasPrefix("waiver expired on 2027-01-31 (one libcrypto lands with the 4.2 rebuild), counts again: ") == true)
    }
}
