/// Why a dynamic string cannot be rewritten in place; `reason` is one line.
public struct RewriteRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        // Reasons end up in one-line messages; names from a file may hold a newline.
        self.reason = String(reason.map { $0.isNewline ? " " : $0 })
    }

    public var description: String { reason }
}
