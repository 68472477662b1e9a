/// A target's overall state: failed if any error/critical finding, degraded if any warning; waived
/// findings do not count.
public enum TargetState: String, Sendable, Codable, Comparable {
    case healthy, degraded, failed
    public init(findings: [Finding]) {
        let worst = findings.filter { $0.waived == nil }.map(\.severity).max()
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
    /// `scan` targets: the freezer that made the bundle and what its launcher sets (BundleLayout.json).
    public var bundle: JSONValue?

    public init(name: String, kind: String, root: String? = nil, environment: [String: String] = [:],
                stats: [String: Int] = [:], findings: [Finding], warnings: [String] = [], post: JSONValue? = nil) {
        self.name = name; self.kind = kind; self.root = root; self.environment = environment
        self.stats = stats; self.warnings = warnings; self.post = post
        self.findings = []; self.state = .healthy
        setFindings(findings)
    }

    /// Replaces the findings, kept worst first with the waived ones last, and the state they give.
    public mutating func setFindings(_ list: [Finding]) {
        findings = list.sorted { a, b in
            if (a.waived == nil) != (b.waived == nil) { return a.waived == nil }
            return (a.severity, b.code.rawValue) > (b.severity, a.code.rawValue)
        }
        state = TargetState(findings: list)
    }

    /// The most severe finding that counts, which status lines name.
    public var worstFinding: Finding? { findings.first.flatMap { $0.waived == nil ? $0 : nil } }
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
    /// With waivers given: those that matched no finding, and those past their date (nil without waivers).
    public var waiversUnused: [Waiver]?
    public var waiversExpired: [Waiver]?

    public init(command: String, toolVersion: String, generatedAt: String, targets: [TargetReport]) {
        self.command = command; self.toolVersion = toolVersion; self.generatedAt = generatedAt
        self.targets = targets
        self.state = .healthy; self.counts = [:]
        recount()
    }

    /// The state and the counts by severity, from the targets' findings that are not waived.
    mutating func recount() {
        state = targets.map(\.state).max() ?? .healthy
        counts = Dictionary(uniqueKeysWithValues: Severity.allCases.map { ($0.rawValue, 0) })
        for f in targets.flatMap(\.findings) where f.waived == nil { counts[f.severity.rawValue, default: 0] += 1 }
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", tool, toolVersion = "tool_version", command
        case generatedAt = "generated_at", state, counts, targets, host
        case waiversUnused = "waivers_unused", waiversExpired = "waivers_expired"
    }

    /// The documented exit status: 1 when any finding that is not waived is at or above `failOn`, else 0.
    public func exitStatus(failOn: Severity) -> Int32 {
        targets.flatMap(\.findings).contains { $0.waived == nil && $0.severity >= failOn } ? 1 : 0
    }
}
