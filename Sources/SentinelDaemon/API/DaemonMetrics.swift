import Prometheus
import SentinelCore

/// The daemon's Prometheus series, in a registry owned by this instance (never the global
/// MetricsSystem: tests create several daemons in one process).
public final class DaemonMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let cycles: Counter
    private let failures: Counter
    private let duration: ValueHistogram
    private let lastSuccess: Gauge
    private let interval: Gauge

    private struct Series: Sendable {
        /// target name -> one gauge per state.
        var targetStates: [String: [TargetState: Gauge]] = [:]
        /// (code, severity) -> gauge; kept at 0 once seen so a resolved finding reads as 0, not as absent.
        var findings: [FindingKey: Gauge] = [:]
        /// (target, code, severity) -> gauge at 1 while the finding is in the report; removed when it is
        /// resolved (an alert on it resolves), so fleet alerting can name the target.
        var perTarget: [TargetFindingKey: Gauge] = [:]
    }
    private struct FindingKey: Hashable, Sendable { var code: String; var severity: String }
    private struct TargetFindingKey: Hashable, Sendable { var target: String; var code: String; var severity: String }
    /// At most this many per-target finding series, the most severe kept: one per (target, code), and
    /// codes are a fixed list, so only the number of targets (discovered processes) can grow it.
    public static let maxFindingSeries = 1000
    private let series = Locked(Series())

    public init(version: String = "unknown") {
        registry.makeGauge(descriptor: Self.name("up", "", "1 while the daemon runs and writes these metrics (a stale textfile says it stopped)."))
            .set(1.0)
        registry.makeGauge(descriptor: Self.name("build_info", "", "The daemon's version, as a label; always 1."), labels: [("version", version)])
            .set(1.0)
        cycles = registry.makeCounter(descriptor: Self.name("cycles", "total", "Audit cycles completed since the daemon started."))
        failures = registry.makeCounter(descriptor: Self.name("cycle_failures", "total", "Audit cycles that failed as a whole (no report published)."))
        duration = registry.makeValueHistogram(descriptor: Self.name("cycle_duration", "seconds", "Wall time of each completed audit cycle."),
                                               buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120])
        lastSuccess = registry.makeGauge(descriptor: Self.name("last_successful_cycle_timestamp", "seconds", "Unix time at which the last successful cycle finished."))
        interval = registry.makeGauge(descriptor: Self.name("cycle_interval", "seconds", "The configured time between cycles (alert rules count missed cycles in it)."))
    }

    public func record(report: Report, cycleSeconds: Double, finishedAt: Double, intervalSeconds: Double? = nil) {
        if let intervalSeconds { interval.set(intervalSeconds) }
        cycles.increment()
        duration.record(cycleSeconds)
        lastSuccess.set(finishedAt)
        series.withLock { s in
            let names = Set(report.targets.map(\.name))
            // A target that is no longer audited drops out instead of reporting a stale state.
            for (name, gauges) in s.targetStates where !names.contains(name) {
                for g in gauges.values { registry.unregisterGauge(g) }
                s.targetStates[name] = nil
            }
            for t in report.targets {
                var gauges = s.targetStates[t.name] ?? [:]
                for state in [TargetState.healthy, .degraded, .failed] {
                    let g = gauges[state] ?? registry.makeGauge(
                        descriptor: Self.targetState, labels: [("target", t.name), ("state", state.rawValue)])
                    g.set(t.state == state ? 1.0 : 0.0)
                    gauges[state] = g
                }
                s.targetStates[t.name] = gauges
            }
            var counts: [FindingKey: Int] = [:]
            // A waived finding counts nowhere here, so no fleet alert fires on it until it expires.
            for f in report.targets.flatMap(\.findings) where f.waived == nil {
                counts[FindingKey(code: f.code.rawValue, severity: f.severity.rawValue), default: 0] += 1
            }
            for key in Set(counts.keys).union(s.findings.keys) {
                let g = s.findings[key] ?? registry.makeGauge(descriptor: Self.findingsName, labels: [("code", key.code), ("severity", key.severity)])
                g.set(Double(counts[key] ?? 0))
                s.findings[key] = g
            }
            let present = report.targets.flatMap { t in t.findings.filter { $0.waived == nil }.map { (key: TargetFindingKey(target: t.name, code: $0.code.rawValue, severity: $0.severity.rawValue), severity: $0.severity) } }
                .sorted { $0.severity > $1.severity }
            var kept = Set<TargetFindingKey>()
            for p in present where kept.count < Self.maxFindingSeries { kept.insert(p.key) }
            for (key, g) in s.perTarget where !kept.contains(key) {
                registry.unregisterGauge(g)
                s.perTarget[key] = nil
            }
            for key in kept where s.perTarget[key] == nil {
                let g = registry.makeGauge(descriptor: Self.findingName,
                                           labels: [("target", key.target), ("code", key.code), ("severity", key.severity)])
                g.set(1.0)
                s.perTarget[key] = g
            }
        }
    }

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "crypto_sentinel", metricName: metric, unitName: unit, helpText: help)
    }
    private static var targetState: MetricNameDescriptor {
        name("target_state", "", "1 for the target's current state, 0 for the others.")
    }
    private static var findingName: MetricNameDescriptor {
        name("finding", "", "1 for each (target, code) finding in the current report; absent once resolved (at most \(maxFindingSeries) series, the most severe).")
    }
    private static var findingsName: MetricNameDescriptor {
        name("findings", "", "Findings in the current report, by code and severity.")
    }

    public func recordCycleFailure() {
        failures.increment()
    }

    /// Prometheus text exposition format 0.0.4.
    public func render() -> [UInt8] {
        registry.emitToBuffer()
    }
}
