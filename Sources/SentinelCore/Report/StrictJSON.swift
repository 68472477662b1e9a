/// A small strict JSON reader: the probe's one-line document and the FIPS validation data (pure; no
/// Foundation: on a POST that takes a few milliseconds, JSONDecoder's throw-per-type-guess decoding of
/// JSONValue is visible). Numbers that are not 64-bit integers are kept as their literal text. Fails
/// on any syntax error, trailing garbage, or nesting deeper than 64.
public enum StrictJSON {
    public static func parse(_ bytes: [UInt8]) -> JSONValue? {
        try? parseLocating(bytes).get()
    }

    /// Where a document stopped being JSON: 1-based line and column of the byte the reader stopped at.
    public struct Failure: Error, Sendable, Hashable {
        public var line: Int
        public var column: Int
    }

    public static func parseLocating(_ bytes: [UInt8]) -> Result<JSONValue, Failure> {
        var p = Parser(b: bytes)
        if let v = p.value(depth: 0) {
            p.ws()
            if p.i == bytes.count { return .success(v) }
        }
        let stop = min(p.i, bytes.count)
        let before = bytes[..<stop]
        let line = before.reduce(1) { $1 == 0x0a ? $0 + 1 : $0 }
        let column = stop - (before.lastIndex(of: 0x0a).map { $0 + 1 } ?? 0) + 1
        return .failure(Failure(line: line, column: column))
    }

    struct Parser {
        let b: [UInt8]
        var i = 0

        mutating func ws() { while i < b.count, b[i] == 0x20 || b[i] == 0x0a || b[i] == 0x0d || b[i] == 0x09 { i += 1 } }

        mutating func literal(_ s: String, _ v: JSONValue) -> JSONValue? {
            let u = Array(s.utf8)
            guard i + u.count <= b.count, Array(b[i..<(i + u.count)]) == u else { return nil }
            i += u.count
            return v
        }

        mutating func value(depth: Int) -> JSONValue? {
            ws()
            guard i < b.count, depth < 64 else { return nil }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                var o: [String: JSONValue] = [:]
                ws()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                while true {
                    ws()
                    guard let k = string() else { return nil }
                    ws()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                    i += 1
                    guard let v = value(depth: depth + 1) else { return nil }
                    o[k] = v
                    ws()
                    guard i < b.count else { return nil }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                    return nil
                }
            case UInt8(ascii: "["):
                i += 1
                var a: [JSONValue] = []
                ws()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                while true {
                    guard let v = value(depth: depth + 1) else { return nil }
                    a.append(v)
                    ws()
                    guard i < b.count else { return nil }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                    return nil
                }
            case UInt8(ascii: "\""): return string().map(JSONValue.string)
            case UInt8(ascii: "t"): return literal("true", .bool(true))
            case UInt8(ascii: "f"): return literal("false", .bool(false))
            case UInt8(ascii: "n"): return literal("null", .null)
            default: return number()
            }
        }

        mutating func number() -> JSONValue? {
            let start = i
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            let digits = i
            while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
            guard i > digits else { return nil }
            var integral = true
            if i < b.count, b[i] == UInt8(ascii: ".") {
                integral = false; i += 1
                let f = i
                while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
                guard i > f else { return nil }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                integral = false; i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                let e = i
                while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
                guard i > e else { return nil }
            }
            let text = String(decoding: b[start..<i], as: UTF8.self)
            if integral, let n = Int64(text) { return .int(n) }
            return .string(text)
        }

        mutating func hex4() -> UInt32? {
            guard i + 4 <= b.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]; i += 1
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                default: return nil
                }
                v = v << 4 | d
            }
            return v
        }

        mutating func string() -> String? {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            var out: [UInt8] = []
            while i < b.count {
                let c = b[i]; i += 1
                if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
                if c < 0x20 { return nil }
                guard c == UInt8(ascii: "\\") else { out.append(c); continue }
                guard i < b.count else { return nil }
                let e = b[i]; i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "u"):
                    guard var u = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(u), i + 6 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        guard let lo = hex4(), (0xDC00..<0xE000).contains(lo) else { return nil }
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    let scalar = Unicode.Scalar(u) ?? "\u{FFFD}"
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: return nil
                }
            }
            return nil
        }
    }
}
