import Glibc

/// Why a tree copy stopped: the path it is about (source or copy, escaped as by `EscapedBytes`) and a
/// one-line reason. The partial copy is already removed when this is thrown (or the reason says where
/// it was left).
public struct TreeCopyError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    /// `path: strerror(code)`.
    init(_ path: String, errno code: Int32) {
        self.init(path, String(cString: strerror(code)))
    }

    public var description: String { "\(path): \(reason)" }
}
