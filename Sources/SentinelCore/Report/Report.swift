/// A target's overall state: failed if any error/critical finding, degraded if any warning.
public enum TargetState: String, Sendable, Codable, Comparable {
    case healthy, degraded, failed
    public init(findings: [Finding]) {
        let worst = findings.map(\.severity).max()
        switch worst {
        case .error?, .critical?: self = .failed
        case .warning?: self = .degraded
        default: self = .healthy
        }
    }
    public static func < (a: TargetState, b: TargetState) -> Bool {
        let order: [TargetState] = [.healthy, .degraded, .failed]
        return order.firstIndex(of: a)! < order.firstIndex(of: b)!
    }
}

/// The result for one audited thing (a bundle tree, a process, a service).
public struct TargetReport: Sendable, Codable {
    public var name: String
    public var kind: String
    public var root: String?
    public var state: TargetState
    /// Only the OpenSSL and loader variables (TargetEnvironment.keptKeys) ever appear here.
    public var environment: [String: String]
    public var stats: [String: Int]
    public var findings: [Finding]
    /// Files or processes that could not be read: one line each, never silently skipped.
    public var warnings: [String]
    /// `post` targets only: the library identity and every check with pass/fail and its OpenSSL errors.
    public var post: JSONValue?

    public init(name: String, kind: String, root: String? = nil, environment: [String: String] = [:],
                stats: [String: Int] = [:], findings: [Finding], warnings: [String] = [], post: JSONValue? = nil) {
        self.name = name; self.kind = kind; self.root = root; self.environment = environment
        self.stats = stats; self.warnings = warnings; self.post = post
        self.findings = findings.sorted { ($0.severity, $1.code.rawValue) > ($1.severity, $0.code.rawValue) }
        self.state = TargetState(findings: findings)
    }

    /// The most severe finding (findings are kept worst first), which status lines name.
    public var worstFinding: Finding? { findings.first }
}

/// The document `--format json` prints and the daemon serves.
public struct Report: Sendable, Codable {
    public static let schemaVersion = 1
    public var schemaVersion: Int = Report.schemaVersion
    public var tool: String = "crypto-sentinel"
    public var toolVersion: String
    public var command: String
    public var generatedAt: String
    public var state: TargetState
    public var counts: [String: Int]
    public var targets: [TargetReport]
    /// The host's FIPS state (HostFIPSState.json), for the reports that run a POST.
    public var host: JSONValue?

    public init(command: String, toolVersion: String, generatedAt: String, targets: [TargetReport]) {
        self.command = command; self.toolVersion = toolVersion; self.generatedAt = generatedAt
        self.targets = targets
        self.state = targets.map(\.state).max() ?? .healthy
        var counts = Dictionary(uniqueKeysWithValues: Severity.allCases.map { ($0.rawValue, 0) })
        for f in targets.flatMap(\.findings) { counts[f.severity.rawValue, default: 0] += 1 }
        self.counts = counts
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", tool, toolVersion = "tool_version", command
        case generatedAt = "generated_at", state, counts, targets, host
    }

    /// The documented exit status: 1 when any finding is at or above `failOn`, else 0.
    public func exitStatus(failOn: Severity) -> Int32 {
        targets.flatMap(\.findings).contains { $0.severity >= failOn } ? 1 : 0
    }
}
