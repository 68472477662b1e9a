/// `status --check`: one line and an exit status in the monitoring-plugin convention (Nagios, Icinga,
/// Sensu, Zabbix's agent checks): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, performance data after `|`.
public enum MonitoringCheck {
    public static let prefix = "CRYPTO-SENTINEL"

    /// CRITICAL when a target failed, WARNING when one is degraded, else OK; each bad target named
    /// with its worst finding.
    public static func line(_ report: Report) -> (text: String, status: Int32) {
        let failed = report.targets.filter { $0.state == .failed }
        let degraded = report.targets.filter { $0.state == .degraded }
        let perf = "targets=\(report.targets.count) failed=\(failed.count) degraded=\(degraded.count)"
        func named(_ targets: [TargetReport]) -> String {
            targets.map { t in
                t.worstFinding.map { "\($0.code.rawValue) on \(t.name)" } ?? t.name
            }.joined(separator: ", ")
        }
        let (word, status): (String, Int32) = !failed.isEmpty ? ("CRITICAL", 2) : !degraded.isEmpty ? ("WARNING", 1) : ("OK", 0)
        var parts: [String] = []
        if !failed.isEmpty { parts.append("\(failed.count) failed (\(named(failed)))") }
        if !degraded.isEmpty { parts.append("\(degraded.count) degraded (\(named(degraded)))") }
        if parts.isEmpty { parts.append("\(report.targets.count) target\(report.targets.count == 1 ? "" : "s") healthy") }
        return ("\(prefix) \(word) - \(parts.joined(separator: ", ")) | \(perf)", status)
    }

    /// No answer to judge: no daemon, or no report yet.
    public static func unknown(_ reason: String) -> (text: String, status: Int32) {
        ("\(prefix) UNKNOWN - \(reason)", 3)
    }
}
