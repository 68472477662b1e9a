import Foundation
import Testing
import SentinelCore
@testable import SentinelDaemon

@Suite struct StateBoardTests {
    @Test func publishedReportIsServedWhole() throws {
        let board = StateBoard()
        #expect(board.current().ready == false)
        let f = Finding(code: .splitLibcrypto, target: "product-api", subject: "libcrypto 8:1 ino 2, 8:1 ino 3", summary: "two libcrypto", evidence: [:])
        let report = Report(command: "daemon", toolVersion: "t", generatedAt: "2026-11-23T00:00:00Z",
                            targets: [TargetReport(name: "product-api", kind: "service", findings: [f]),
                                      TargetReport(name: "other", kind: "service", findings: [])])
        board.publish(report, source: "cycle", cycleSeconds: 0.5)
        let now = board.current()
        #expect(now.ready && now.cycles == 1)
        #expect(now.statusLine == "2 targets: 1 healthy, 1 failed (split-libcrypto on product-api)")
        #expect(String(decoding: now.targetJSON["product-api"]!, as: UTF8.self).contains("split-libcrypto"))
        #expect(String(decoding: now.healthJSON, as: UTF8.self).contains(#""state":"failed""#))
    }

    @Test func aRefusedReloadStaysVisibleUntilAGoodOne() throws {
        let board = StateBoard()
        let report = Report(command: "daemon", toolVersion: "t", generatedAt: "2026-11-23T00:00:00Z",
                            targets: [TargetReport(name: "api", kind: "service", findings: [])])
        board.publish(report, source: "cycle", cycleSeconds: 0.5)
        board.setReloadError("/etc/c.yaml:1:11: interval: not a duration")
        // A later cycle keeps it, in the summary (STATUS=) and in its own health field.
        board.publish(report, source: "cycle", cycleSeconds: 0.5)
        let now = board.current()
        #expect(now.statusLine == "config rejected (/etc/c.yaml:1:11: interval: not a duration); running previous config. 1 target: 1 healthy")
        let health = try #require(try JSONSerialization.jsonObject(with: Data(now.healthJSON)) as? [String: Any])
        #expect(health["reload_error"] as? String == "/etc/c.yaml:1:11: interval: not a duration")
        #expect(health["summary"] as? String == now.statusLine)

        board.setReloadError(nil)
        #expect(board.current().statusLine == "1 target: 1 healthy")
        #expect(!String(decoding: board.current().healthJSON, as: UTF8.self).contains("reload_error"))
    }
}
