/// Which FIPS provider versions hold a CMVP certificate (data/fips-validations.json, embedded at build
/// time; an operator's copy read at run time replaces it). Pure: parsing and judging, no I/O.
public struct FIPSValidations: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public enum Status: String, Sendable { case active, historical, inReview = "in-review", revoked }
        public var name: String
        public var versions: [String]
        public var standard: String?
        public var certificate: Int?
        public var status: Status
        /// YYYY-MM-DD; past it, an active certificate counts as historical.
        public var sunset: String?
        public var source: String
    }

    public var checked: String
    public var entries: [Entry]
    /// Where the data came from: "embedded" or a file path.
    public var origin: String

    /// A line of the data that is not what the schema says, or not JSON at all.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var reason: String
        public var description: String { "\(file):\(line): \(reason)" }
    }

    public static func parse(_ bytes: [UInt8], origin: String) throws(ParseError) -> FIPSValidations {
        let doc: JSONValue
        switch StrictJSON.parseLocating(bytes) {
        case .success(let v): doc = v
        case .failure(let f): throw ParseError(file: origin, line: f.line, reason: "not valid JSON (column \(f.column))")
        }
        // Schema errors name the line where the module entry they are about opens.
        func lineOf(module index: Int) -> Int {
            guard let start = firstOffset(of: "\"modules\"", in: bytes) else { return 1 }
            var line = 1 + bytes[..<start].count { $0 == 0x0a }
            var depth = 0, seen = -1, inString = false, escaped = false
            for b in bytes[start...] {
                if b == 0x0a { line += 1 }
                if inString {
                    if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                    continue
                }
                switch b {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "{"):
                    if depth == 1 { seen += 1; if seen == index { return line } }
                    depth += 1
                case UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
                default: break
                }
            }
            return line
        }
        func fail(_ reason: String, module: Int? = nil) -> ParseError {
            ParseError(file: origin, line: module.map(lineOf(module:)) ?? 1, reason: reason)
        }
        guard doc["schema_version"] == .int(1) else { throw fail("schema_version must be 1") }
        guard let checked = doc["checked"]?.stringValue, CalendarDay.isValid(checked) else { throw fail("\"checked\" must be a date (YYYY-MM-DD)") }
        guard let modules = doc["modules"]?.arrayValue else { throw fail("\"modules\" must be a list") }
        var entries: [Entry] = []
        for (i, m) in modules.enumerated() {
            guard let name = m["name"]?.stringValue, !name.isEmpty else { throw fail("module \(i + 1): \"name\" is required", module: i) }
            let versions = (m["versions"]?.arrayValue ?? []).compactMap(\.stringValue)
            guard !versions.isEmpty else { throw fail("module \(i + 1): \"versions\" must list at least one version", module: i) }
            guard let raw = m["status"]?.stringValue, let status = Entry.Status(rawValue: raw) else {
                throw fail("module \(i + 1): \"status\" must be active, historical, in-review or revoked", module: i)
            }
            var certificate: Int?
            switch m["certificate"] {
            case .int(let n)?: certificate = Int(n)
            case .null?, nil: certificate = nil
            default: throw fail("module \(i + 1): \"certificate\" must be a number or null", module: i)
            }
            if status != .inReview && certificate == nil { throw fail("module \(i + 1): an entry with status \(raw) needs its certificate number", module: i) }
            let sunset = m["sunset"]?.stringValue
            if let sunset, !CalendarDay.isValid(sunset) { throw fail("module \(i + 1): \"sunset\" must be a date (YYYY-MM-DD)", module: i) }
            entries.append(Entry(name: name, versions: versions, standard: m["standard"]?.stringValue, certificate: certificate,
                                 status: status, sunset: sunset, source: m["source"]?.stringValue ?? ""))
        }
        return FIPSValidations(checked: checked, entries: entries, origin: origin)
    }

    /// The copy built into the binary (data/fips-validations.json when it was built).
    public static let embedded: FIPSValidations = {
        do { return try parse(Array(embeddedText.utf8), origin: "embedded") } catch { fatalError("embedded fips-validations.json: \(error)") }
    }()

    /// What the data says about one provider on `today` (YYYY-MM-DD).
    public enum Verdict: Sendable, Hashable {
        case validated(Entry)
        /// On the historical list, or past its sunset date.
        case historical(Entry)
        /// No certificate for this version; `pending` when the data lists it as in review.
        case unvalidated(pending: Entry?)
    }

    public func verdict(name: String, version: String, today: String) -> Verdict {
        let matches = entries.filter { $0.name == name && $0.versions.contains(version) }
        if let e = matches.first(where: { $0.status == .active && !($0.sunset.map { $0 < today } ?? false) }) { return .validated(e) }
        if let e = matches.first(where: { $0.status == .active || $0.status == .historical }) { return .historical(e) }
        return .unvalidated(pending: matches.first { $0.status == .inReview })
    }

    static func firstOffset(of needle: String, in text: [UInt8]) -> Int? {
        let n = Array(needle.utf8)
        guard n.count <= text.count else { return nil }
        return (0...(text.count - n.count)).first { text[$0..<($0 + n.count)].elementsEqual(n) }
    }
}

extension FIPSValidations.Entry {
    /// "FIPS 140-3 certificate #4985 (active, sunset 2030-03-10)".
    public var described: String {
        let cert = certificate.map { "certificate #\($0)" } ?? "no certificate"
        return "\(standard.map { "\($0) " } ?? "")\(cert) (\(status.rawValue)\(sunset.map { ", sunset \($0)" } ?? ""))"
    }
}
