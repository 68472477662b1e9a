/// OpenSSL library names: canonical (`libcrypto.so.3`) and auditwheel-mangled (`libcrypto-1a2b3c4d.so.3`).
public enum OpenSSLNames {
    public static func isLibcryptoName(_ name: String) -> Bool { family(of: name) == "libcrypto" }
    public static func isLibsslName(_ name: String) -> Bool { family(of: name) == "libssl" }
    public static func isOpenSSLName(_ name: String) -> Bool { family(of: name) != nil }

    /// "libcrypto" or "libssl" for `libcrypto.so`, `libcrypto.so.3`, `libcrypto-27e744a7.so.3`, else nil.
    public static func family(of name: String) -> String? {
        withBaseName(name) { family(base: $0) }
    }

    /// `body` on the UTF-8 bytes after the last `/` of `name`, in place. Both callers are asked of
    /// every edge or DT_NEEDED entry of an audit: no allocation, and no walk of the UTF-8 view (its
    /// backward search and generic starts(with:) cost ~500-600 instructions a name).
    private static func withBaseName<Result>(_ name: String, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        var name = name
        return name.withUTF8 { bytes in
            let start = bytes.lastIndex(of: UInt8(ascii: "/")).map { $0 + 1 } ?? 0
            return body(UnsafeBufferPointer(rebasing: bytes[start...]))
        }
    }

    /// `family(of:)` for the bytes after the last `/`.
    private static func family(base: UnsafeBufferPointer<UInt8>) -> String? {
        for (family, bytes) in families where base.starts(with: bytes) {
            let rest = base.dropFirst(bytes.count)
            if rest.starts(with: dotSo) { return family }
            if rest.first == UInt8(ascii: "-") {
                let afterDash = rest.dropFirst()
                let hex = afterDash.prefix { isHex($0) }
                if hex.count >= 6, afterDash.dropFirst(hex.count).starts(with: dotSo) { return family }
            }
        }
        return nil
    }

    private static let families: [(String, [UInt8])] = [("libcrypto", Array("libcrypto".utf8)), ("libssl", Array("libssl".utf8))]
    private static let dotSo = Array(".so".utf8)
    private static let mangledPrefixes = [Array("libcrypto-".utf8), Array("libssl-".utf8)]
    private static func isHex(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 97 && b <= 102) || (b >= 65 && b <= 70)
    }

    /// The canonical name a mangled one stands for (`libcrypto-27e744a7.so.3` → `libcrypto.so.3`), or nil
    /// when the name is not mangled.
    public static func canonical(forMangled name: String) -> String? {
        // Asked of every DT_NEEDED entry of a tree: reject names that are no OpenSSL family on bytes,
        // before any String work (a trailing slash takes the general path below).
        if name.utf8.last != UInt8(ascii: "/") {
            guard withBaseName(name, { $0.starts(with: mangledPrefixes[0]) || $0.starts(with: mangledPrefixes[1]) }) else { return nil }
        }
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
