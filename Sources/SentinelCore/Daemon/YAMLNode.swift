import CYAML

/// One YAML document as the config parser walks it: every node keeps its 1-based line and column.
/// Composed from libyaml's events (YAML 1.1, the schema Debian's tools and systemd users write).
indirect enum YAMLNode {
    struct Mark: Equatable { var line: Int, column: Int }
    /// The resolved tag of a scalar: plain scalars by YAML 1.1's rules, quoted ones are text.
    enum Tag: Equatable { case null, bool, int, float, str }
    struct Scalar { var string: String, tag: Tag, mark: Mark }

    case scalar(Scalar)
    case mapping([(key: YAMLNode, value: YAMLNode)], Mark)
    case sequence([YAMLNode], Mark)

    var mark: Mark {
        switch self {
        case .scalar(let s): return s.mark
        case .mapping(_, let m), .sequence(_, let m): return m
        }
    }
    var tag: Tag? { if case .scalar(let s) = self { return s.tag } else { return nil } }

    /// What libyaml (or composing its events) refused, with where and, when it says so, in what.
    struct SyntaxError: Error {
        enum Kind { case syntax, reader, duplicateKey(String) }
        var kind: Kind
        var problem: String
        var mark: Mark
        var context: (text: String, mark: Mark)?
    }

    /// The single document of `text`, nil when it holds none (empty, or comments only).
    static func compose(_ text: String) throws(SyntaxError) -> YAMLNode? {
        var composer = Composer(bytes: Array(text.utf8))
        return try composer.document()
    }

    /// YAML 1.1's resolution of a plain scalar (what libyaml-based tools, Yams among them, apply).
    static func resolve(plain s: String) -> Tag {
        switch s {
        case "", "~", "null", "Null", "NULL": return .null
        case "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
             "on", "On", "ON", "off", "Off", "OFF": return .bool
        default: break
        }
        // Numbers start with a sign, a digit or a dot; most scalars (words, paths) are done here.
        guard let first = s.utf8.first, "+-.0123456789".utf8.contains(first) else { return .str }
        if s.wholeMatch(of: #/[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+/#) != nil {
            return .int
        }
        if s.wholeMatch(of: #/[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)/#) != nil {
            return .float
        }
        return .str
    }

    /// A YAML 1.1 bool's value (nil for any other text).
    static func bool(_ s: String) -> Bool? {
        switch s.lowercased() {
        case "yes", "true", "on": return true
        case "no", "false", "off": return false
        default: return nil
        }
    }

    private struct Composer {
        var parser = yaml_parser_t()
        let bytes: [UInt8]
        var anchors: [String: YAMLNode] = [:]

        init(bytes: [UInt8]) { self.bytes = bytes }

        static func mark(_ m: yaml_mark_t) -> Mark { Mark(line: Int(m.line) + 1, column: Int(m.column) + 1) }

        mutating func document() throws(SyntaxError) -> YAMLNode? {
            guard yaml_parser_initialize(&parser) == 1 else {
                throw SyntaxError(kind: .syntax, problem: "cannot start the YAML parser", mark: Mark(line: 1, column: 1))
            }
            defer { yaml_parser_delete(&parser) }
            return try bytes.withUnsafeBufferPointer { (buffer) throws(SyntaxError) -> YAMLNode? in
                yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
                var root: YAMLNode?
                var first: Mark?
                while true {
                    var event = yaml_event_t()
                    try next(&event)
                    defer { yaml_event_delete(&event) }
                    switch event.type {
                    case YAML_STREAM_END_EVENT:
                        return root
                    case YAML_DOCUMENT_START_EVENT:
                        let at = Self.mark(event.start_mark)
                        if let first {
                            throw SyntaxError(kind: .syntax, problem: "but found another document", mark: at,
                                              context: ("expected a single document in the stream", first))
                        }
                        first = at
                    case YAML_DOCUMENT_END_EVENT, YAML_STREAM_START_EVENT:
                        break
                    default:
                        root = try node(&event)
                    }
                }
            }
        }

        mutating func next(_ event: inout yaml_event_t) throws(SyntaxError) {
            guard yaml_parser_parse(&parser, &event) == 1 else { throw error() }
        }

        func error() -> SyntaxError {
            let problem = parser.problem.map { String(cString: $0) } ?? "unknown error"
            if parser.error == YAML_READER_ERROR {
                // The reader gives a byte offset, not a mark.
                var line = 1, column = 1
                for b in bytes.prefix(Int(parser.problem_offset)) {
                    if b == UInt8(ascii: "\n") { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 }
                }
                return SyntaxError(kind: .reader, problem: problem, mark: Mark(line: line, column: column))
            }
            let context = parser.context.map { (String(cString: $0), Self.mark(parser.context_mark)) }
            return SyntaxError(kind: .syntax, problem: problem, mark: Self.mark(parser.problem_mark), context: context)
        }

        /// The node that `event` starts (its children read from the parser).
        mutating func node(_ event: inout yaml_event_t) throws(SyntaxError) -> YAMLNode {
            let at = Self.mark(event.start_mark)
            let built: YAMLNode
            let anchor: UnsafeMutablePointer<yaml_char_t>?
            switch event.type {
            case YAML_ALIAS_EVENT:
                let name = String(cString: event.data.alias.anchor)
                guard let target = anchors[name] else {
                    throw SyntaxError(kind: .syntax, problem: "found undefined alias", mark: at)
                }
                return target
            case YAML_SCALAR_EVENT:
                let s = event.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: s.value, count: Int(s.length)), as: UTF8.self)
                let tag: Tag
                if let explicit = s.tag.map({ String(cString: $0) }) {
                    switch explicit {
                    case "tag:yaml.org,2002:null": tag = .null
                    case "tag:yaml.org,2002:bool": tag = .bool
                    case "tag:yaml.org,2002:int": tag = .int
                    case "tag:yaml.org,2002:float": tag = .float
                    default: tag = .str
                    }
                } else {
                    tag = s.style == YAML_PLAIN_SCALAR_STYLE ? YAMLNode.resolve(plain: text) : .str
                }
                anchor = s.anchor
                built = .scalar(Scalar(string: text, tag: tag, mark: at))
            case YAML_SEQUENCE_START_EVENT:
                anchor = event.data.sequence_start.anchor
                var items: [YAMLNode] = []
                while true {
                    var child = yaml_event_t()
                    try next(&child)
                    defer { yaml_event_delete(&child) }
                    if child.type == YAML_SEQUENCE_END_EVENT { break }
                    items.append(try node(&child))
                }
                built = .sequence(items, at)
            case YAML_MAPPING_START_EVENT:
                anchor = event.data.mapping_start.anchor
                var pairs: [(key: YAMLNode, value: YAMLNode)] = []
                var seen = Set<String>()
                while true {
                    var keyEvent = yaml_event_t()
                    try next(&keyEvent)
                    defer { yaml_event_delete(&keyEvent) }
                    if keyEvent.type == YAML_MAPPING_END_EVENT { break }
                    let key = try node(&keyEvent)
                    var valueEvent = yaml_event_t()
                    try next(&valueEvent)
                    defer { yaml_event_delete(&valueEvent) }
                    let value = try node(&valueEvent)
                    // A key written twice the same way (same tag and text) is YAML's own error.
                    if case .scalar(let k) = key, !seen.insert("\(k.tag)\0\(k.string)").inserted {
                        throw SyntaxError(kind: .duplicateKey(k.string), problem: "given more than once in the same mapping (this is the first)",
                                          mark: at)
                    }
                    pairs.append((key, value))
                }
                built = .mapping(pairs, at)
            default:
                throw SyntaxError(kind: .syntax, problem: "unexpected YAML event", mark: at)
            }
            if let anchor { anchors[String(cString: anchor)] = built }
            return built
        }
    }
}
