/// `repair`'s output, as JSON (`{"schema_version":1,"root":…,"plan":[…],"refused":[…],"verification":{…},"result":…}`)
/// and as text, from the same pieces.
public struct RepairDocument: Sendable {
    public static let schemaVersion = 1
    public var plan: RepairPlan
    public var verifications: [RepairVerification]
    public var status: String
    public var path: String?
    public var keptAs: String?
    public var rolledBackFrom: String?

    public init(plan: RepairPlan, verifications: [RepairVerification], status: String, path: String? = nil, keptAs: String? = nil,
                rolledBackFrom: String? = nil) {
        self.plan = plan; self.verifications = verifications; self.status = status; self.path = path; self.keptAs = keptAs
        self.rolledBackFrom = rolledBackFrom
    }

    /// "DT_NEEDED", or "DT_NEEDED (also .gnu.version_r file)" when one string serves both.
    static func what(_ kinds: [DynamicStrings.ReferenceKind]) -> String {
        guard let first = kinds.first else { return "string" }
        return kinds.count == 1 ? first.rawValue : "\(first.rawValue) (also \(kinds.dropFirst().map(\.rawValue).joined(separator: ", ")))"
    }

    public var json: JSONValue {
        var steps: [JSONValue] = plan.edits.map { e in
            ["action": "rewrite", "file": .string(e.file), "what": JSONValue(e.patch.kinds.map(\.rawValue)),
             "old": .string(e.patch.old), "new": .string(e.patch.new),
             "dynstr_offset": .int(Int64(e.patch.tableOffset)), "file_offset": .int(Int64(e.patch.fileOffset))]
        }
        steps += plan.renames.map { ["action": "rename", "from": .string($0.from), "to": .string($0.to)] }
        steps += plan.relinks.map { ["action": "relink", "path": .string($0.path), "target": .string($0.target)] }
        steps += plan.removals.map { ["action": "remove", "path": .string($0.path), "reason": .string($0.reason)] }
        var verification: [String: JSONValue] = [:]
        for v in verifications {
            var entry: [String: JSONValue] = ["tree": .string(v.tree), "passed": .bool(v.passed), "problems": JSONValue(v.problems),
                                              "environment": .object(v.environment.mapValues(JSONValue.string)),
                                              "resolved": .object(v.resolved.mapValues { JSONValue($0) })]
            if let c = v.command {
                entry["command"] = ["argv": JSONValue(c.argv), "user": .string(c.user), "passed": .bool(c.passed),
                                    "outcome": .string(c.outcome), "output_tail": .string(c.outputTail)]
            }
            verification[v.stage] = .object(entry)
        }
        return [
            "schema_version": .int(Int64(Self.schemaVersion)),
            "root": .string(plan.root),
            "canonical": .array(plan.canonical.map {
                ["library": .string($0.library.rawValue), "from": .string($0.from), "path": .string($0.path), "version": JSONValue($0.version)]
            }),
            "plan": .array(steps),
            "refused": .array(plan.refused.map { ["path": .string($0.path), "reason": .string($0.reason)] }),
            "untouched": .array(plan.untouched.map { ["path": .string($0.path), "reason": .string($0.reason)] }),
            "environment_line": JSONValue(plan.environmentLine),
            "verification": .object(verification),
            "result": ["status": .string(status), "path": JSONValue(path), "kept_as": JSONValue(keptAs),
                       "restored_from": JSONValue(rolledBackFrom)],
        ]
    }

    public var text: String {
        var lines: [String] = []
        if status == "rolled-back" {
            return "rolled back \(plan.root): the tree kept at \(rolledBackFrom ?? "?") is back in place; the repaired one is now \(keptAs ?? "?")\n"
        }
        lines.append("repair \(plan.root)")
        for c in plan.canonical {
            lines.append("  canonical \(c.library.rawValue): \(c.path)" + (c.from != c.path ? " (now \(c.from))" : "") + (c.version.map { ", OpenSSL \($0)" } ?? ""))
        }
        if !plan.changesNothing { lines.append("plan (every rewrite before any removal):") }
        for e in plan.edits {
            lines.append("  \(e.file): \(Self.what(e.patch.kinds)) \"\(e.patch.old)\" -> \"\(e.patch.new)\" (\(DynamicStrings.position(e.patch.tableOffset)))")
        }
        for r in plan.renames { lines.append("  rename \(r.from) -> \(r.to)") }
        for l in plan.relinks { lines.append("  relink \(l.path) -> \(l.target)") }
        for r in plan.removals { lines.append("  remove \(r.path): \(r.reason)") }
        for n in plan.untouched { lines.append("  untouched \(n.path): \(n.reason)") }
        for n in plan.refused { lines.append("  REFUSED \(n.path): \(n.reason)") }
        if let line = plan.environmentLine {
            lines.append("  environment: a consumer reaches the canonical copy only through the search path; the service's unit needs")
            lines.append("      Environment=\(line)")
        }
        for v in verifications {
            let what = v.stage == "plan" ? "verification of the plan (model)" : "verification of the staged copy \(v.tree)"
            lines.append("\(what): \(v.problems.isEmpty ? "pass" : "FAIL")"
                + (v.resolved.isEmpty ? "" : " — " + v.resolved.keys.sorted().map { "\($0): \(v.resolved[$0]!.joined(separator: ", "))" }.joined(separator: "; ")))
            for p in v.problems { lines.append("  - \(p)") }
            if let c = v.command {
                lines.append("  verify command as \(c.user): \(c.argv.joined(separator: " ")): \(c.outcome)\(c.passed ? "" : " (FAIL)")")
                if !c.passed, !c.outputTail.isEmpty { lines += c.outputTail.split(separator: "\n").map { "      " + $0 } }
            }
        }
        switch status {
        case "nothing-to-do": lines.append("result: nothing to do (one libcrypto and one libssl, no hashed names)")
        case "planned": lines.append("result: dry run, nothing changed")
        case "plan-failed": lines.append("result: the plan failed, nothing changed")
        case "verification-failed": lines.append("result: verification failed, nothing swapped; the staged copy is kept for inspection at \(path ?? "?")")
        default:
            lines.append("result: repaired \(path ?? plan.root)" + (keptAs.map { "; the original tree is kept as \($0) (crypto-sentinel repair --rollback \(plan.root) puts it back)" } ?? ""))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
