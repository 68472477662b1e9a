/// OpenSSL library names: canonical (`libcrypto.so.3`) and auditwheel-mangled (`libcrypto-1a2b3c4d.so.3`).
public enum OpenSSLNames {
    public static func isLibcryptoName(_ name: String) -> Bool { family(of: name) == "libcrypto" }
    public static func isLibsslName(_ name: String) -> Bool { family(of: name) == "libssl" }
    public static func isOpenSSLName(_ name: String) -> Bool { family(of: name) != nil }

    /// "libcrypto" or "libssl" for `libcrypto.so`, `libcrypto.so.3`, `libcrypto-27e744a7.so.3`, else nil.
    public static func family(of name: String) -> String? {
        let base = name.split(separator: "/").last.map(String.init) ?? name
        for family in ["libcrypto", "libssl"] where base.hasPrefix(family) {
            let rest = base.dropFirst(family.count)
            if rest.hasPrefix(".so") { return family }
            if rest.hasPrefix("-"), mangledSuffix(rest.dropFirst()) != nil { return family }
        }
        return nil
    }

    /// The canonical name a mangled one stands for (`libcrypto-27e744a7.so.3` → `libcrypto.so.3`), or nil
    /// when the name is not mangled.
    public static func canonical(forMangled name: String) -> String? {
        let base = name.split(separator: "/").last.map(String.init) ?? name
        for family in ["libcrypto", "libssl"] where base.hasPrefix(family + "-") {
            if let tail = mangledSuffix(base.dropFirst(family.count + 1)) { return family + tail }
        }
        return nil
    }

    public static func isMangled(_ name: String) -> Bool { canonical(forMangled: name) != nil }

    /// For "27e744a7.so.3" returns ".so.3": at least 6 hex digits, then ".so" and an optional version.
    private static func mangledSuffix(_ s: Substring) -> String? {
        let hex = s.prefix { $0.isHexDigit }
        guard hex.count >= 6 else { return nil }
        let tail = s.dropFirst(hex.count)
        guard tail.hasPrefix(".so") else { return nil }
        return String(tail)
    }
}
