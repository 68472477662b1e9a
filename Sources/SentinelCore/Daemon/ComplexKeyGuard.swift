/// Finds a mapping key that is not a plain word (an explicit `? KEY`, an alias, a list or a mapping)
/// before the text is composed, and says which, at its line and column: libyaml's events no longer
/// tell an explicit key from a plain one, and our keys are always words. Linear in the text.
///
/// A lexer only as deep as that needs: comments, quoted and block scalars and the continuation lines
/// of plain scalars are skipped, so their text is never taken for YAML syntax.
enum ComplexKeyGuard {
    struct Hit: Equatable { var line: Int; var column: Int; var message: String }

    static func firstComplexKey(in text: String) -> Hit? {
        var lexer = Lexer(Array(text.utf8))
        return lexer.run()
    }

    private struct Lexer {
        let c: [UInt8]
        var i = 0, line = 1, lineStart = 0
        /// Where a node may begin: at the start of a line, after `- `, `? `, `: `, and in flow
        /// collections after `[`, `{`, `,`. Only there do ' " * & ! | > ? act as indicators.
        var nodeStart = true
        /// A plain scalar in block context started on this line: deeper lines continue it.
        var plainOpen = false
        /// Where this line's content starts, after its indentation and any `- ` entries.
        var contentIndent = 0
        /// Open flow collections, innermost last: `[` or `{`.
        var flow: [UInt8] = []
        /// Inside `{…}`: the next node is a key (after `{` or `,`, until a `:`).
        var flowKey = false

        init(_ c: [UInt8]) { self.c = c }

        static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), lf = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")

        func byte(_ j: Int) -> UInt8? { j < c.count ? c[j] : nil }
        func isBlank(_ b: UInt8?) -> Bool { b == nil || b == Self.space || b == Self.tab || b == Self.lf || b == Self.cr }
        func isFlowEnd(_ b: UInt8?) -> Bool { b == UInt8(ascii: ",") || b == UInt8(ascii: "]") || b == UInt8(ascii: "}") }
        /// libyaml's anchor and alias name characters.
        func isNameByte(_ b: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }
        func indent(from start: Int) -> Int { var j = start; while byte(j) == Self.space { j += 1 }; return j - start }

        func hit(_ at: Int, _ message: String) -> Hit {
            // Columns count Unicode scalars, as libyaml's marks do (continuation bytes start none).
            let column = c[lineStart..<at].reduce(1) { $1 & 0xC0 == 0x80 ? $0 : $0 + 1 }
            return Hit(line: line, column: column, message: message)
        }

        /// Whether the next non-blank byte on this line is a `:` that makes what precedes it a key.
        func keyFollows(_ from: Int) -> Bool {
            var j = from
            while let b = byte(j), b == Self.space || b == Self.tab { j += 1 }
            guard byte(j) == UInt8(ascii: ":") else { return false }
            return isBlank(byte(j + 1)) || (!flow.isEmpty && isFlowEnd(byte(j + 1)))
        }

        /// `i` is at a line feed.
        mutating func newLine() {
            let continues = plainOpen && flow.isEmpty && indent(from: i + 1) > contentIndent
            line += 1; lineStart = i + 1; i += 1
            // Line breaks inside a flow collection are only white space.
            guard flow.isEmpty else { return }
            if continues { nodeStart = false } else { nodeStart = true; plainOpen = false }
            contentIndent = indent(from: lineStart)
        }

        mutating func run() -> Hit? {
            while let b = byte(i) {
                if b == Self.lf { newLine(); continue }
                if b == Self.space || b == Self.tab || b == Self.cr { i += 1; continue }
                if b == UInt8(ascii: "#"), i == lineStart || isBlank(c[i - 1]) {
                    while let x = byte(i), x != Self.lf { i += 1 }
                    continue
                }
                if nodeStart {
                    switch b {
                    case UInt8(ascii: "?") where isBlank(byte(i + 1)):
                        return hit(i, "explicit keys (`? KEY`) are not supported; keys are plain words")
                    case UInt8(ascii: "*"):
                        var j = i + 1
                        while let x = byte(j), isNameByte(x) { j += 1 }
                        if (flow.last == UInt8(ascii: "{") && flowKey) || keyFollows(j) {
                            return hit(i, "an alias cannot be a key; keys are plain words")
                        }
                        i = j; nodeStart = false
                        continue
                    case UInt8(ascii: "&"), UInt8(ascii: "!"):
                        // A node property: the node itself follows, so this is still a node start.
                        i += 1
                        while let x = byte(i), !isBlank(x), flow.isEmpty || !isFlowEnd(x) { i += 1 }
                        continue
                    case UInt8(ascii: "'"), UInt8(ascii: "\""):
                        skipQuoted(b)
                        continue
                    case _ where (b == UInt8(ascii: "|") || b == UInt8(ascii: ">")) && flow.isEmpty:
                        skipBlockScalar()
                        continue
                    case UInt8(ascii: "["), UInt8(ascii: "{"):
                        if flow.last == UInt8(ascii: "{") && flowKey {
                            return hit(i, "a list or mapping cannot be a key; keys are plain words")
                        }
                        flow.append(b); flowKey = b == UInt8(ascii: "{")
                        i += 1
                        continue
                    case UInt8(ascii: "-") where isBlank(byte(i + 1)) && flow.isEmpty:
                        // A block sequence entry: its content starts after "- ".
                        i += 1
                        while byte(i) == Self.space { i += 1 }
                        contentIndent = c[lineStart..<i].count
                        continue
                    default:
                        break
                    }
                }
                switch b {
                case _ where (b == UInt8(ascii: "[") || b == UInt8(ascii: "{")) && !flow.isEmpty:
                    // Only reachable mid-scalar inside a flow collection; libyaml rejects it.
                    nodeStart = false
                case _ where (b == UInt8(ascii: "]") || b == UInt8(ascii: "}")) && !flow.isEmpty:
                    flow.removeLast()
                    if keyFollows(i + 1) { return hit(i, "a list or mapping cannot be a key; keys are plain words") }
                    nodeStart = false
                case UInt8(ascii: ",") where !flow.isEmpty:
                    nodeStart = true; flowKey = flow.last == UInt8(ascii: "{")
                case UInt8(ascii: ":") where isBlank(byte(i + 1)) || (!flow.isEmpty && isFlowEnd(byte(i + 1))):
                    nodeStart = true; plainOpen = false
                    if flow.last == UInt8(ascii: "{") { flowKey = false }
                default:
                    if nodeStart && flow.isEmpty { plainOpen = true }
                    nodeStart = false
                }
                i += 1
            }
            return nil
        }

        /// From an opening quote to just past its closing quote (or the end of the text).
        mutating func skipQuoted(_ quote: UInt8) {
            i += 1
            while let x = byte(i) {
                if x == Self.lf { line += 1; lineStart = i + 1; i += 1; continue }
                if quote == UInt8(ascii: "\""), x == UInt8(ascii: "\\") { i += 2; continue }
                if x == quote {
                    // '' is a quote inside single quotes.
                    if quote == UInt8(ascii: "'"), byte(i + 1) == quote { i += 2; continue }
                    break
                }
                i += 1
            }
            i += 1; nodeStart = false; plainOpen = false
        }

        /// A block scalar's text: up to the first non-blank line indented no deeper than the line that
        /// opened it. Leaves `i` at the line feed before that line.
        mutating func skipBlockScalar() {
            let parentIndent = indent(from: lineStart)
            while let x = byte(i), x != Self.lf { i += 1 }
            while i < c.count {
                var end = i + 1
                while let x = byte(end), x != Self.lf { end += 1 }
                let blank = c[(i + 1)..<end].allSatisfy { $0 == Self.space || $0 == Self.tab || $0 == Self.cr }
                guard blank || indent(from: i + 1) > parentIndent else { break }
                line += 1; lineStart = i + 1; i = end
            }
            nodeStart = false; plainOpen = false
        }
    }
}
