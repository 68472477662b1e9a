// Placeholder: replaced by the ld.so.cache parser.
public struct LdSoCache: Sendable {}
