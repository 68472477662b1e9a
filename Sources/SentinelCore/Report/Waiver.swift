/// An accepted finding (`waivers:` in the daemon config, `scan --waivers FILE`): the finding stays in
/// the report, marked, but counts toward no state or exit status until the day after `expires`.
public struct Waiver: Sendable, Codable, Hashable {
    public var code: FindingCode
    /// A target name, or "*" for every target.
    public var target: String
    /// The finding must be about this file: a path (relative to the target's root, or absolute) or a
    /// device:inode as `MAJOR:MINOR:INODE` (or FileIdentity's `MAJOR:MINOR ino INODE`).
    public var path: String?
    public var reason: String
    /// The last day (UTC, `YYYY-MM-DD`) the waiver holds.
    public var expires: String
    /// Where it was written, `FILE:LINE`, so a report's unused or expired waiver can be found.
    public var source: String

    public init(code: FindingCode, target: String = "*", path: String? = nil, reason: String, expires: String, source: String = "") {
        self.code = code; self.target = target; self.path = path; self.reason = reason; self.expires = expires; self.source = source
    }

    /// What a waived finding carries in the report.
    public struct Mark: Sendable, Codable, Hashable {
        public var reason: String
        public var expires: String
        public init(reason: String, expires: String) { self.reason = reason; self.expires = expires }
    }

    /// `today` is a UTC date, `YYYY-MM-DD`: fixed width, so the text order is the calendar order.
    public func isExpired(today: String) -> Bool { today > expires }

    public func matches(_ f: Finding, target: String, root: String?) -> Bool {
        guard f.code == code, self.target == "*" || self.target == target else { return false }
        guard let path else { return true }
        let wanted = Self.normalised(path, root: root)
        return Self.paths(of: f).contains(wanted)
    }

    /// The evidence keys that name the file(s) a finding is about (BundleAudit, ProcessAudit).
    static let pathKeys: Set<String> = ["path", "paths", "files", "needed_by", "device_inode", "mapped_device_inode", "maps_pathname"]

    /// The subject and every string under a path key, at any depth (`copies[].path`, `copies[].device_inode`).
    static func paths(of f: Finding) -> Set<String> {
        var out = Set(f.subject.map { [$0] } ?? [])
        func walk(_ v: JSONValue, under key: String?) {
            switch v {
            case .string(let s) where key.map(pathKeys.contains) == true: out.insert(s)
            case .array(let a): for x in a { walk(x, under: key) }
            case .object(let o): for (k, x) in o { walk(x, under: k) }
            default: break
            }
        }
        walk(f.evidence, under: nil)
        return out
    }

    /// A device:inode in FileIdentity's form; a path inside `root` relative to it, as findings show them.
    static func normalised(_ path: String, root: String?) -> String {
        let parts = path.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }) {
            return "\(parts[0]):\(parts[1]) ino \(parts[2])"
        }
        if let root, path.hasPrefix(root + "/") { return String(path.dropFirst(root.count + 1)) }
        return path.hasPrefix("./") ? String(path.dropFirst(2)) : path
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

extension Report {
    /// Marks every finding an unexpired waiver matches (the first one in list order), recomputes
    /// states and counts without them, and lists the waivers that matched nothing and those past
    /// their date. An expired waiver marks nothing: its findings count again.
    public mutating func apply(_ waivers: [Waiver], today: String) {
        let active = waivers.filter { !$0.isExpired(today: today) }
        var used = Set<Int>()
        for t in targets.indices {
            var findings = targets[t].findings
            for i in findings.indices {
                guard let w = active.indices.first(where: { active[$0].matches(findings[i], target: targets[t].name, root: targets[t].root) })
                else { findings[i].waived = nil; continue }
                used.insert(w)
                findings[i].waived = Waiver.Mark(reason: active[w].reason, expires: active[w].expires)
            }
            targets[t].setFindings(findings)
        }
        waiversUnused = active.indices.filter { !used.contains($0) }.map { active[$0] }
        waiversExpired = waivers.filter { $0.isExpired(today: today) }
        recount()
    }
}
