import SentinelCore

/// What the API serves, swapped whole after each cycle: queries read memory and never wait for a cycle.
public struct Published: Sendable {
    /// The last complete report (nil before the first cycle when nothing was restored from disk).
    public var report: Report?
    /// Pre-encoded bodies: GET /v1/report and GET /v1/targets/NAME.
    public var reportJSON: [UInt8]
    public var targetJSON: [String: [UInt8]]
    /// The report's one-line summary (StatusLine), or what the daemon is doing before there is one.
    public var summary: String
    /// Why the last SIGHUP reload was refused (file:line:col: …); nil again once one succeeds.
    public var reloadError: String?
    /// Completed cycles since start; 0 while the restored report is served.
    public var cycles: Int
    /// "cycle" once a cycle of this run completed, "restored" when the last report came from disk.
    public var source: String
    public var lastCycleAt: String?
    public var lastCycleSeconds: Double?
    public var ready: Bool

    /// sd_notify's STATUS= and /v1/health's summary: a refused reload stays in front of the summary
    /// until a good one, so neither a later cycle nor a glance at the summary hides it. (The API's
    /// health cache is keyed on this line, so a new reload error also renews the cached body.)
    public var statusLine: String {
        reloadError.map { "config rejected (\($0)); running previous config. " + summary } ?? summary
    }

    public static let empty = Published(report: nil, reportJSON: Array(#"{"error":"no report yet: the first cycle is running"}"#.utf8),
                                        targetJSON: [:], summary: "starting: first cycle running", reloadError: nil, cycles: 0,
                                        source: "none", lastCycleAt: nil, lastCycleSeconds: nil, ready: false)

    /// GET /v1/health: small, always available.
    public var healthJSON: [UInt8] {
        var fields: [String: JSONValue] = [
            "status": "ok", "ready": .bool(ready), "cycles": .int(Int64(cycles)), "report_source": .string(source),
            "summary": .string(statusLine),
        ]
        if let report { fields["state"] = .string(report.state.rawValue) }
        if let lastCycleAt { fields["last_cycle_at"] = .string(lastCycleAt) }
        if let lastCycleSeconds { fields["last_cycle_ms"] = .int(Int64(lastCycleSeconds * 1000)) }
        if let reloadError { fields["reload_error"] = .string(reloadError) }
        return StateBoard.body(ReportJSON.encode(JSONValue.object(fields), style: .compact))
    }
}

/// The daemon's published state behind one lock; the cycle publishes, the API reads.
public final class StateBoard: Sendable {
    private let published = Locked(Published.empty)

    public init() {}

    public func current() -> Published { published.withLock { $0 } }

    /// Encodes once here, so every query is a memcpy of ready bytes.
    public func publish(_ report: Report, source: String, cycleSeconds: Double?) {
        var next = Published.empty
        next.report = report
        next.reportJSON = Self.body(ReportJSON.encode(report, style: .compact))
        for t in report.targets { next.targetJSON[t.name] = Self.body(ReportJSON.encode(t, style: .compact)) }
        next.summary = StatusLine.summary(report)
        next.source = source
        next.lastCycleAt = report.generatedAt
        next.lastCycleSeconds = cycleSeconds
        published.withLock { old in
            next.cycles = old.cycles + (source == "cycle" ? 1 : 0)
            next.ready = old.ready || source == "cycle"
            next.reloadError = old.reloadError
            old = next
        }
    }

    /// A response body: the document and a newline, so `curl` output ends its line.
    static func body(_ json: [UInt8]) -> [UInt8] { json + [0x0a] }

    /// A SIGHUP reload refused (why) or accepted (nil).
    public func setReloadError(_ reason: String?) {
        published.withLock { $0.reloadError = reason }
    }
}
