/// Renders a report for a person: each finding like a compiler diagnostic (what, where, evidence,
/// why it matters, how to fix it). Every string from outside (paths, process names, environment,
/// probe output) goes through `shown`, so none can move the cursor, recolour or forge a line.
public enum TextRenderer {
    public static func render(_ report: Report) -> String {
        var out = ""
        for t in report.targets {
            var counts = Severity.allCases.reversed().compactMap { s -> String? in
                let n = t.findings.filter { $0.severity == s && $0.waived == nil }.count
                return n > 0 ? "\(n) \(s.rawValue)" : nil
            }
            let waived = t.findings.filter { $0.waived != nil }.count
            if waived > 0 { counts.append("\(waived) waived") }
            out += "\(t.kind) '\(shown(t.name))'" + (t.root.map { " at \(shown($0))" } ?? "") + ": \(t.state.rawValue.uppercased())"
            out += counts.isEmpty ? " (no findings)\n" : " (\(counts.joined(separator: ", ")))\n"
            if !t.stats.isEmpty {
                out += "  " + t.stats.sorted { $0.key < $1.key }.map { "\(shown($0.key.replacing("_", with: " "))): \($0.value)" }
                    .joined(separator: ", ") + "\n"
            }
            out += "  environment: " + (t.environment.isEmpty ? "(no OpenSSL or loader variables)" : variables(t.environment)) + "\n"
            if let bundle = t.bundle { out += bundleLine(bundle, root: t.root) }
            if let post = t.post { out += postLines(post) }
            for f in t.findings {
                out += "\n" + (f.waived == nil ? "" : "WAIVED ") + "\(f.severity.rawValue)[\(f.code.rawValue)]: \(shown(f.summary))\n"
                out += "  --> \(shown(t.root ?? t.name))\n"
                if let w = f.waived { out += "   = waived until \(w.expires): \(shown(w.reason))\n" }
                out += evidenceLines(f.evidence, indent: "   = ").joined(separator: "\n") + "\n"
                if !f.code.why.isEmpty { out += "   = why: \(f.code.why)\n" }
                if !f.fix.isEmpty {
                    out += "   = fix:\n" + f.fix.map { "       \(shown($0))" }.joined(separator: "\n") + "\n"
                }
            }
            if !t.warnings.isEmpty {
                out += "\n\(t.warnings.count) file(s) could not be read (listed, never skipped silently):\n"
                out += t.warnings.map { "  warning: \(shown($0))" }.joined(separator: "\n") + "\n"
            }
            out += "\n"
        }
        out += waiverLines("expired (their findings count again)", report.waiversExpired ?? [])
        out += waiverLines("unused (no finding matched them)", report.waiversUnused ?? [])
        return out
    }

    static func waiverLines(_ what: String, _ waivers: [Waiver]) -> String {
        guard !waivers.isEmpty else { return "" }
        return "waivers \(what):\n" + waivers.map { w in
            "  \(shown(w.source)): \(w.code.rawValue) on \(shown(w.target))" + (w.path.map { " about \(shown($0))" } ?? "")
                + ", expires \(w.expires): \(shown(w.reason))\n"
        }.joined() + "\n"
    }

    /// `K=V K=V`, sorted, each shown safely.
    public static func variables(_ environment: [String: String]) -> String {
        environment.sorted { $0.key < $1.key }.map { shown("\($0.key)=\($0.value)") }.joined(separator: " ")
    }

    /// "  bundle: PyInstaller onefile, launcher app (sets LD_LIBRARY_PATH=…)": how the scan ran the tree.
    static func bundleLine(_ bundle: JSONValue, root: String?) -> String {
        guard let freezer = bundle["freezer"]?.stringValue.flatMap(Freezer.init(rawValue:)) else {
            return "  bundle: no freezer recognised (cx_Freeze, PyInstaller, Nuitka, venv)\n"
        }
        let relative = { (path: String) -> String in
            guard let root, path.hasPrefix(root + "/") else { return path }
            return String(path.dropFirst(root.count + 1))
        }
        var line = "  bundle: \(freezer.title)"
        if let launcher = bundle["launcher"]?.stringValue { line += ", launcher \(relative(launcher))" }
        let overridden = Set((bundle["overridden_by_env"]?.arrayValue ?? []).compactMap(\.stringValue))
        if case .object(let env)? = bundle["launcher_environment"], !env.isEmpty {
            line += " (sets " + env.sorted { $0.key < $1.key }.map { key, value in
                "\(key)=\(value.stringValue ?? "")" + (overridden.contains(key) ? ", overridden by --env" : "")
            }.joined(separator: "; ") + ")"
        }
        if let outside = bundle["outside"]?.arrayValue, !outside.isEmpty {
            line += "; followed outside the tree: " + outside.compactMap(\.stringValue).joined(separator: ", ")
        }
        return shown(line) + "\n"
    }

    /// The POST's check list: one line per check, OpenSSL error strings indented under it.
    static func postLines(_ post: JSONValue) -> String {
        var out = ""
        if let lib = post["library"], case .object = lib {
            out += "  libcrypto: \(scalar(lib["path"] ?? .null)) (\(scalar(lib["version"] ?? .null)))\n"
        }
        if let user = post["run_as"]?.stringValue { out += "  run as: \(shown(user))\n" }
        if let host = post["host"], case .object = host { out += "  \(shown(HostFIPSState(json: host).summary))\n" }
        let checks = post["checks"]?.arrayValue ?? []
        if !checks.isEmpty { out += "  checks:\n" }
        for c in checks {
            let status = shown(c["status"]?.stringValue ?? "?")
            let name = shown(c["name"]?.stringValue ?? "?")
            let tag: String = "[" + status.uppercased() + "]"
            let tagPad: String = String(repeating: " ", count: max(1, 7 - tag.count))
            let namePad: String = String(repeating: " ", count: max(1, 24 - name.count))
            let summary: String = shown(c["summary"]?.stringValue ?? "")
            out += "    " + tag + tagPad + name + namePad + summary + "\n"
            for e in c["errors"]?.arrayValue ?? [] { out += "               ! \(scalar(e))\n" }
        }
        return out
    }

    /// "key: value" lines; arrays as "- item" lists, nested objects indented under their key.
    static func evidenceLines(_ value: JSONValue, indent: String) -> [String] {
        guard case .object(let fields) = value else { return ["\(indent)\(scalar(value))"] }
        // Identify first (path, name), then the rest alphabetically.
        let leading = ["path", "name", "library"]
        let ordered = fields.sorted { a, b in
            let ia = leading.firstIndex(of: a.key) ?? leading.count, ib = leading.firstIndex(of: b.key) ?? leading.count
            return (ia, a.key) < (ib, b.key)
        }
        let nested = indent.replacing(/[^ ]/, with: " ") + "    "
        var lines: [String] = []
        for (key, v) in ordered {
            let label = shown(key.replacing("_", with: " "))
            switch v {
            case .null: continue
            case .array(let items) where items.isEmpty: continue
            case .array(let items):
                lines.append("\(indent)\(label):")
                for item in items {
                    if case .object = item {
                        let inner = evidenceLines(item, indent: "")
                        lines.append(nested + "- " + (inner.first ?? ""))
                        lines += inner.dropFirst().map { nested + "  " + $0 }
                    } else {
                        lines.append(nested + "- " + scalar(item))
                    }
                }
            case .object:
                lines.append("\(indent)\(label):")
                lines += evidenceLines(v, indent: nested)
            default:
                lines.append("\(indent)\(label): \(scalar(v))")
            }
        }
        return lines
    }

    static func scalar(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): return shown(s)
        case .int(let i): return String(i)
        case .bool(let b): return b ? "yes" : "no"
        case .null: return "-"
        case .array(let a): return a.map(scalar).joined(separator: ", ")
        case .object: return "{…}"
        }
    }

    /// `s` with each control character (C0, DEL, C1) and each bidirectional formatting character
    /// written as `\u{hex}`: it reaches a terminal as text, on its own line.
    public static func shown(_ s: String) -> String {
        func escaped(_ u: Unicode.Scalar) -> Bool {
            u.value < 0x20 || (0x7f...0x9f).contains(u.value) || (0x200e...0x200f).contains(u.value)
                || (0x202a...0x202e).contains(u.value) || (0x2066...0x2069).contains(u.value)
        }
        guard s.unicodeScalars.contains(where: escaped) else { return s }
        var out = ""
        for u in s.unicodeScalars {
            if escaped(u) { out += "\\u{" + String(u.value, radix: 16) + "}" } else { out.unicodeScalars.append(u) }
        }
        return out
    }
}
