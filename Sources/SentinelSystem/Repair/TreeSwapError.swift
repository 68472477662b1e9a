/// Why a swap of trees did not happen, or happened only in part: one line that names the paths and,
/// after a partial swap, where each tree is now.
public struct TreeSwapError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
