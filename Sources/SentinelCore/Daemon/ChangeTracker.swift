/// The journal's unit of work: what changed between two reports. One alert per finding that appears or
/// resolves and per target whose state changes; an unchanged picture yields nothing, however many
/// cycles run (journald rate-limits a chatty service and drops messages).
public enum ChangeTracker {
    /// A finding's identity across cycles: target, code and subject (what it is about), never its
    /// wording, so a summary reworded by an upgrade neither resolves nor reappears.
    public struct Key: Hashable, Sendable {
        public var target: String, code: FindingCode, subject: String
        public init(target: String, code: FindingCode, subject: String) { self.target = target; self.code = code; self.subject = subject }
    }

    /// `bySummary` for a target whose last report was restored from a state file written before findings
    /// had a subject: both sides are then compared by summary, as that file's writer did, so the first
    /// cycle after the upgrade alerts what changed (or was reworded in that same upgrade), not everything.
    public static func key(_ f: Finding, in target: String, bySummary: Bool = false) -> Key {
        Key(target: target, code: f.code, subject: bySummary ? f.summary : f.subject ?? f.summary)
    }

    public static func changes(from old: Report?, to new: Report, at time: String) -> [Alert] {
        var alerts: [Alert] = []
        let before = Dictionary((old?.targets ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(new.targets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

        for t in new.targets {
            let previous = before[t.name]
            let bySummary = (previous?.findings ?? []).contains { $0.subject == nil } || t.findings.contains { $0.subject == nil }
            func identity(_ f: Finding) -> Key { key(f, in: t.name, bySummary: bySummary) }
            // One alert per identity, however many findings share it.
            var was: [Key: Finding] = [:]
            for f in previous?.findings ?? [] where was[identity(f)] == nil { was[identity(f)] = f }
            var seen = Set<Key>()
            for f in t.findings where seen.insert(identity(f)).inserted {
                if let before = was[identity(f)] {
                    if let change = waiverChange(from: before, to: f, target: t.name, expired: new.waiversExpired ?? [], at: time) {
                        alerts.append(change)
                    }
                } else if let mark = f.waived {
                    alerts.append(waived(f, mark, target: t.name, at: time))
                } else {
                    alerts.append(Alert(kind: .findingNew, code: f.code, target: t.name, state: "new", severity: f.severity,
                                        message: f.summary, evidence: flatten(f.evidence), at: time))
                }
            }
            if let previous {
                var now = Set(t.findings.map(identity))
                for f in previous.findings where now.insert(identity(f)).inserted {
                    alerts.append(resolved(f, target: t.name, at: time, why: "no longer found"))
                }
            }
            let wasState = previous?.state
            if wasState != t.state && !(wasState == nil && t.state == .healthy) {
                alerts.append(Alert(kind: .targetState, code: nil, target: t.name, state: t.state.rawValue,
                                    severity: severity(of: t.state),
                                    message: "\(t.name) is \(t.state.rawValue)" + (wasState.map { " (was \($0.rawValue))" } ?? "")
                                        + (t.worstFinding.map { ": \($0.code.rawValue)" } ?? ""),
                                    evidence: ["previous_state": wasState?.rawValue ?? "unknown", "kind": t.kind], at: time))
            }
        }
        // A target that is gone (a discovered process exited, a service removed from the config): its
        // findings resolve with it, and the target itself is reported gone once.
        for t in old?.targets ?? [] where after[t.name] == nil {
            var gone = Set<Key>()
            for f in t.findings where gone.insert(key(f, in: t.name)).inserted {
                alerts.append(resolved(f, target: t.name, at: time, why: "target gone"))
            }
            alerts.append(Alert(kind: .targetState, code: nil, target: t.name, state: "gone", severity: .info,
                                message: "\(t.name) is no longer audited (was \(t.state.rawValue))",
                                evidence: ["previous_state": t.state.rawValue, "kind": t.kind], at: time))
        }
        return alerts
    }

    /// A finding that stays but whose waiver came or went: info when it stops counting; at its own
    /// severity when it counts again, saying whether the waiver expired (it is in the new report's
    /// `waivers_expired`) or was taken out of the configuration.
    static func waiverChange(from before: Finding, to f: Finding, target: String, expired: [Waiver], at time: String) -> Alert? {
        switch (before.waived, f.waived) {
        case (nil, let mark?):
            return waived(f, mark, target: target, at: time)
        case (let mark?, nil):
            let lapsed = expired.contains { $0.code == f.code && $0.expires == mark.expires && $0.reason == mark.reason }
            return Alert(kind: .findingWaiver, code: f.code, target: target, state: lapsed ? "waiver-expired" : "unwaived", severity: f.severity,
                         message: (lapsed ? "waiver expired on \(mark.expires) (\(mark.reason)), counts again: "
                                          : "no longer waived (the waiver was removed or changed), counts again: ") + f.summary,
                         evidence: flatten(f.evidence), at: time)
        default:
            return nil
        }
    }

    static func waived(_ f: Finding, _ mark: Waiver.Mark, target: String, at time: String) -> Alert {
        Alert(kind: .findingWaiver, code: f.code, target: target, state: "waived", severity: .info,
              message: "waived until \(mark.expires) (\(mark.reason)): \(f.summary)", evidence: flatten(f.evidence), at: time)
    }

    static func resolved(_ f: Finding, target: String, at time: String, why: String) -> Alert {
        Alert(kind: .findingResolved, code: f.code, target: target, state: "resolved", severity: f.severity,
              message: "resolved (\(why)): \(f.summary)", evidence: flatten(f.evidence), at: time)
    }

    static func severity(of state: TargetState) -> Severity {
        switch state { case .healthy: return .info; case .degraded: return .warning; case .failed: return .error }
    }

    /// Evidence as flat key → string (nested keys joined with "_"), at most 32 fields of 2 KiB each.
    public static func flatten(_ value: JSONValue) -> [String: String] {
        var out: [String: String] = [:]
        func walk(_ v: JSONValue, _ prefix: String) {
            guard out.count < 32 else { return }
            switch v {
            case .object(let o): for (k, x) in o.sorted(by: { $0.key < $1.key }) { walk(x, prefix.isEmpty ? k : "\(prefix)_\(k)") }
            case .array(let a) where a.allSatisfy({ if case .object = $0 { return false } else { return true } }):
                out[prefix] = String(a.map(scalar).joined(separator: "\n").prefix(2048))
            case .array(let a): for (i, x) in a.enumerated() { walk(x, "\(prefix)_\(i)") }
            default: out[prefix] = String(scalar(v).prefix(2048))
            }
        }
        walk(value, "")
        return out
    }

    static func scalar(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return String(b)
        case .null: return ""
        case .array, .object: return "…"
        }
    }
}
