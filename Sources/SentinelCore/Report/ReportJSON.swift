/// Every JSON document the tool prints, serves or stores: the report, one target, the history of
/// alerts, a small free-form document. `.pretty` is byte for byte what `JSONEncoder` with
/// `[.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]` prints on Linux (two-space indent, `" : "`,
/// keys in UTF-8 order, empty containers as `[\n\n<indent>]`); `.compact` what it prints without
/// `.prettyPrinted`, so the API and the state files keep their bytes. Written straight into one byte
/// buffer: the Encodable path costs more than the whole audit on a big bundle.
/// `ReportJSONTests` compares the two on every shape the documents can take.
public enum ReportJSON {
    public enum Style: Sendable { case pretty, compact }

    public static func encode(_ report: Report, style: Style = .pretty) -> [UInt8] {
        var w = Writer(pretty: style == .pretty)
        w.bytes.reserveCapacity(4096)
        w.report(report)
        return w.bytes
    }

    public static func encode(_ target: TargetReport, style: Style = .pretty) -> [UInt8] {
        var w = Writer(pretty: style == .pretty)
        w.target(target)
        return w.bytes
    }

    public static func encode(_ alerts: [Alert], style: Style = .pretty) -> [UInt8] {
        var w = Writer(pretty: style == .pretty)
        w.array(alerts) { $0.alert($1) }
        return w.bytes
    }

    public static func encode(_ value: JSONValue, style: Style = .pretty) -> [UInt8] {
        var w = Writer(pretty: style == .pretty)
        w.value(value)
        return w.bytes
    }

    struct Writer {
        let pretty: Bool
        var bytes: [UInt8] = []
        var indent = 0

        mutating func raw(_ s: StaticString) {
            s.withUTF8Buffer { bytes.append(contentsOf: $0) }
        }

        mutating func newline() {
            guard pretty else { return }
            bytes.append(0x0a)
            let spaces = 2 * indent
            if spaces <= Self.spaces.count {
                bytes.append(contentsOf: Self.spaces[0..<spaces])
            } else {
                bytes.append(contentsOf: repeatElement(0x20, count: spaces))
            }
        }

        static let spaces = [UInt8](repeating: 0x20, count: 64)

        /// Whether any of the 8 bytes of `w` needs an escape: below 0x20, `"` or `\` (SWAR: a byte is
        /// zero in `x ^ c` exactly where it equals c, and `(x - 0x01…) & ~x & 0x80…` flags zero bytes).
        @inline(__always)
        static func needsEscape(_ w: UInt64) -> Bool {
            let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
            let quote = w ^ (ones &* 0x22), backslash = w ^ (ones &* 0x5c)
            let low = (w &- ones &* 0x20) & ~w            // high bit set where the byte is below 0x20
            let zeroQ = (quote &- ones) & ~quote, zeroB = (backslash &- ones) & ~backslash
            return (low | zeroQ | zeroB) & highs != 0
        }

        mutating func string(_ s: String) {
            bytes.append(0x22)
            var s = s
            s.withUTF8 { utf8 in
                // Most strings (paths) need no escape at all: checked 8 bytes at a time, copied whole.
                var clean = 0
                let view = UnsafeRawBufferPointer(utf8)
                while clean + 8 <= utf8.count, !Self.needsEscape(view.loadUnaligned(fromByteOffset: clean, as: UInt64.self)) {
                    clean += 8
                }
                var mark = 0
                for i in clean..<utf8.count {
                    let b = utf8[i]
                    guard b < 0x20 || b == 0x22 || b == 0x5c else { continue }
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[mark..<i]))
                    mark = i + 1
                    switch b {
                    case 0x22: raw("\\\"")
                    case 0x5c: raw("\\\\")
                    case 0x08: raw("\\b")
                    case 0x0c: raw("\\f")
                    case 0x0a: raw("\\n")
                    case 0x0d: raw("\\r")
                    case 0x09: raw("\\t")
                    default:
                        raw("\\u00")
                        bytes.append(hexDigit(b >> 4))
                        bytes.append(hexDigit(b & 0xf))
                    }
                }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[mark...]))
            }
            bytes.append(0x22)
        }

        func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }

        mutating func int<I: BinaryInteger>(_ v: I) {
            bytes.append(contentsOf: String(v).utf8)
        }

        /// `{`, the members in the given (already sorted) order, `}`.
        mutating func object(_ count: Int, _ members: (inout Writer) -> Void) {
            bytes.append(0x7b)
            indent += 1
            if count == 0 && pretty { bytes.append(0x0a) }
            members(&self)
            indent -= 1
            newline()
            bytes.append(0x7d)
        }

        /// One member: the separator from the previous one, the key and " : ".
        mutating func key(_ k: String, first: Bool) {
            if !first { bytes.append(0x2c) }
            newline()
            string(k)
            separator()
        }

        mutating func key(_ k: StaticString, first: Bool) {
            if !first { bytes.append(0x2c) }
            newline()
            bytes.append(0x22)
            raw(k)
            bytes.append(0x22)
            separator()
        }

        mutating func separator() {
            if pretty { raw(" : ") } else { bytes.append(0x3a) }
        }

        mutating func array<C: Collection>(_ items: C, _ element: (inout Writer, C.Element) -> Void) {
            bytes.append(0x5b)
            indent += 1
            if items.isEmpty && pretty { bytes.append(0x0a) }
            var first = true
            for item in items {
                if !first { bytes.append(0x2c) }
                first = false
                newline()
                element(&self, item)
            }
            indent -= 1
            newline()
            bytes.append(0x5d)
        }

        static func sortedKeys<V>(_ d: [String: V]) -> [String] {
            d.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        }

        mutating func dictionary<V>(_ d: [String: V], _ value: (inout Writer, V) -> Void) {
            let keys = Self.sortedKeys(d)
            object(keys.count) { w in
                for (i, k) in keys.enumerated() {
                    w.key(k, first: i == 0)
                    value(&w, d[k]!)
                }
            }
        }

        mutating func value(_ v: JSONValue) {
            switch v {
            case .string(let s): string(s)
            case .int(let i): int(i)
            case .bool(let b): b ? raw("true") : raw("false")
            case .null: raw("null")
            case .array(let a): array(a) { $0.value($1) }
            case .object(let o): dictionary(o) { $0.value($1) }
            }
        }

        mutating func report(_ r: Report) {
            object(8) { w in
                w.key("command", first: true); w.string(r.command)
                w.key("counts", first: false); w.dictionary(r.counts) { $0.int($1) }
                w.key("generated_at", first: false); w.string(r.generatedAt)
                if let host = r.host { w.key("host", first: false); w.value(host) }
                w.key("schema_version", first: false); w.int(r.schemaVersion)
                w.key("state", first: false); w.string(r.state.rawValue)
                w.key("targets", first: false); w.array(r.targets) { $0.target($1) }
                w.key("tool", first: false); w.string(r.tool)
                w.key("tool_version", first: false); w.string(r.toolVersion)
                if let expired = r.waiversExpired { w.key("waivers_expired", first: false); w.array(expired) { $0.waiver($1) } }
                if let unused = r.waiversUnused { w.key("waivers_unused", first: false); w.array(unused) { $0.waiver($1) } }
            }
        }

        mutating func waiver(_ v: Waiver) {
            object(6) { w in
                w.key("code", first: true); w.string(v.code.rawValue)
                w.key("expires", first: false); w.string(v.expires)
                if let path = v.path { w.key("path", first: false); w.string(path) }
                w.key("reason", first: false); w.string(v.reason)
                w.key("source", first: false); w.string(v.source)
                w.key("target", first: false); w.string(v.target)
            }
        }

        mutating func target(_ t: TargetReport) {
            object(10) { w in
                if let bundle = t.bundle { w.key("bundle", first: true); w.value(bundle) }
                w.key("environment", first: t.bundle == nil); w.dictionary(t.environment) { $0.string($1) }
                w.key("findings", first: false); w.array(t.findings) { $0.finding($1) }
                w.key("kind", first: false); w.string(t.kind)
                w.key("name", first: false); w.string(t.name)
                if let post = t.post { w.key("post", first: false); w.value(post) }
                if let root = t.root { w.key("root", first: false); w.string(root) }
                w.key("state", first: false); w.string(t.state.rawValue)
                w.key("stats", first: false); w.dictionary(t.stats) { $0.int($1) }
                w.key("warnings", first: false); w.array(t.warnings) { $0.string($1) }
            }
        }

        mutating func finding(_ f: Finding) {
            object(7) { w in
                w.key("code", first: true); w.string(f.code.rawValue)
                w.key("evidence", first: false); w.value(f.evidence)
                w.key("fix", first: false); w.array(f.fix) { $0.string($1) }
                w.key("severity", first: false); w.string(f.severity.rawValue)
                if let subject = f.subject { w.key("subject", first: false); w.string(subject) }
                w.key("summary", first: false); w.string(f.summary)
                w.key("target", first: false); w.string(f.target)
                if let waived = f.waived {
                    w.key("waived", first: false)
                    w.object(2) { w in
                        w.key("expires", first: true); w.string(waived.expires)
                        w.key("reason", first: false); w.string(waived.reason)
                    }
                }
            }
        }

        mutating func alert(_ a: Alert) {
            object(8) { w in
                w.key("at", first: true); w.string(a.at)
                if let code = a.code { w.key("code", first: false); w.string(code.rawValue) }
                w.key("evidence", first: false); w.dictionary(a.evidence) { $0.string($1) }
                w.key("kind", first: false); w.string(a.kind.rawValue)
                w.key("message", first: false); w.string(a.message)
                w.key("severity", first: false); w.string(a.severity.rawValue)
                w.key("state", first: false); w.string(a.state)
                w.key("target", first: false); w.string(a.target)
            }
        }
    }
}
