import SentinelCore
import Testing

@Suite struct MonitoringCheckTests {
    static func target(_ name: String, _ codes: [FindingCode]) -> TargetReport {
        TargetReport(name: name, kind: "service", findings: codes.map { Finding(code: $0, target: name, subject: name, summary: "s") })
    }

    @Test func theWorstStateDecidesAndEachBadTargetIsNamed() {
        let report = Report(command: "daemon", toolVersion: "t", generatedAt: "2026-12-07T00:00:00Z", targets: [
            Self.target("product-api", [.mixedPythonABI, .processSplitLibcrypto]),
            Self.target("worker", [.trustStoreMissing]),
            Self.target("db", []),
        ])
        let (text, status) = MonitoringCheck.line(report)
        #expect(status == 2)
        #expect(text == "CRYPTO-SENTINEL CRITICAL - 1 failed (process-split-libcrypto on product-api), 1 degraded (trust-store-missing on worker) | targets=3 failed=1 degraded=1")
        let degraded = Report(command: "daemon", toolVersion: "t", generatedAt: "x", targets: [Self.target("worker", [.trustStoreMissing])])
        #expect(MonitoringCheck.line(degraded).status == 1)
        let empty = Report(command: "daemon", toolVersion: "t", generatedAt: "x", targets: [])
        #expect(MonitoringCheck.line(empty) == ("CRYPTO-SENTINEL OK - 0 targets healthy | targets=0 failed=0 degraded=0", 0))
        #expect(MonitoringCheck.unknown("no daemon").status == 3)
    }
}
