/// One journal entry: a change between two cycles (a finding appears or resolves, a target's state
/// changes). Produced by ChangeTracker, sent by the journal adapter; never one per cycle.
public struct Alert: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case findingNew = "finding-new", findingResolved = "finding-resolved", targetState = "target-state"
        /// A finding still there that a waiver now covers, or no longer covers (it expired or was removed).
        case findingWaiver = "finding-waiver"
    }
    public var kind: Kind
    /// The finding's code; nil for a target state change.
    public var code: FindingCode?
    public var target: String
    /// SENTINEL_STATE: "new", "resolved", "waived", "waiver-expired" or "unwaived" for a finding, the
    /// target's new state for a state change.
    public var state: String
    public var severity: Severity
    /// MESSAGE: one line a person can act on.
    public var message: String
    /// Evidence as flat strings; the journal adapter upper-cases the keys (SENTINEL_EV_PATH, …).
    public var evidence: [String: String]
    /// ISO 8601 UTC time of the cycle that saw the change.
    public var at: String

    public init(kind: Kind, code: FindingCode?, target: String, state: String, severity: Severity,
                message: String, evidence: [String: String] = [:], at: String) {
        self.kind = kind; self.code = code; self.target = target; self.state = state
        self.severity = severity; self.message = message; self.evidence = evidence; self.at = at
    }
}
