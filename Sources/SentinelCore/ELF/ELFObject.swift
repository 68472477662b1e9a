/// What the scanner knows about one ELF file, read from the file itself (never by loading it).
public struct ELFObject: Sendable, Hashable, Codable {
    public enum ELFClass: String, Sendable, Codable { case elf32, elf64 }
    public enum ObjectType: String, Sendable, Codable { case relocatable, executable, sharedObject = "shared-object", core, other }

    public var elfClass: ELFClass
    /// e_machine (EM_X86_64 = 62, EM_AARCH64 = 183, …).
    public var machine: UInt16
    public var type: ObjectType
    /// e_entry: where the kernel starts a program; 0 in most shared libraries. nil when not read.
    public var entry: UInt64?
    /// PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2.
    public var interpreter: String?
    public var soname: String?
    /// DT_NEEDED entries in file order.
    public var needed: [String]
    /// Raw DT_RPATH / DT_RUNPATH strings (colon separated, tokens unexpanded).
    public var rpath: String?
    public var runpath: String?
    /// DF_1_NODEFLIB in DT_FLAGS_1: skip ld.so.cache and the default directories.
    public var noDefaultLib: Bool
    /// The file names listed in `.gnu.version_r` (patchelf --replace-needed must rewrite these too).
    public var versionNeedFiles: [String]
    /// Version nodes needed per file of `.gnu.version_r` (e.g. "libcrypto.so.3": ["OPENSSL_3.0.0", "OPENSSL_3.5.0"]).
    public var neededVersions: [String: [String]] = [:]
    /// Version nodes this object defines in `.gnu.version_d` (the base entry left out).
    public var definedVersions: [String] = []
    /// OpenSSL entry points this object defines in its dynamic symbol table.
    public var exports: OpenSSLExports
    /// OpenSSL build strings found in the read-only data (version text, OPENSSLDIR, MODULESDIR…).
    public var embeddedOpenSSL: EmbeddedOpenSSL?
    /// A TLS library that is not OpenSSL (BoringSSL, AWS-LC, LibreSSL, GnuTLS, Nettle), shared or static.
    public var foreignCrypto: ForeignCrypto?
    /// The read-only data the file declares, when that is more than the build-string search reads
    /// per file: then it was not searched, and `embeddedOpenSSL` says nothing about a static copy.
    public var unsearchedReadOnlyData: UInt64?
    /// Where PyInstaller's archive (CArchive) sits in the file: its `pydata` section.
    public var pyinstallerArchive: FileRange?
    /// CPython is linked into this file (a `.PyRuntime` section): an interpreter, or a program that
    /// carries one (Nuitka).
    public var embedsPython = false

    public init(elfClass: ELFClass, machine: UInt16, type: ObjectType, interpreter: String? = nil,
                soname: String? = nil, needed: [String] = [], rpath: String? = nil, runpath: String? = nil,
                noDefaultLib: Bool = false, versionNeedFiles: [String] = [], exports: OpenSSLExports = [],
                embeddedOpenSSL: EmbeddedOpenSSL? = nil) {
        self.elfClass = elfClass; self.machine = machine; self.type = type; self.interpreter = interpreter
        self.soname = soname; self.needed = needed; self.rpath = rpath; self.runpath = runpath
        self.noDefaultLib = noDefaultLib; self.versionNeedFiles = versionNeedFiles; self.exports = exports
        self.embeddedOpenSSL = embeddedOpenSSL
    }

    /// The one-line warning for a file that was not searched for a static OpenSSL copy (nil when it was).
    public var searchWarning: String? {
        unsearchedReadOnlyData.map { "declares \($0 >> 20) MiB of read-only data, more than the static-copy search reads per file: not checked for a static OpenSSL copy" }
    }

    /// The RPATH glibc honours: ignored entirely when the object also has a RUNPATH.
    public var effectiveRPath: String? { runpath == nil ? rpath : nil }

    /// The newest OpenSSL release line this object's symbol versions name ("3.5" for OPENSSL_3.5.0, "1.1"
    /// for OPENSSL_1_1_1): libssl carries no version text, but its version nodes tell its release line.
    public var opensslVersionNodeLine: String? { newestVersionNodeLine(prefix: "OPENSSL_") }

    /// The OpenSSL version to show: the build's own version text, else the release line of its version
    /// nodes ("3.5.x").
    public var opensslVersion: String? { embeddedOpenSSL?.version ?? opensslVersionNodeLine.map { $0 + ".x" } }

    /// "major.minor" of the newest version node named `prefix` and numbers ("3.7" for GNUTLS_3_7_7; the
    /// numbers may be separated by `.` or `_`, and words such as PRIVATE or FIPS140 between them are skipped).
    public func newestVersionNodeLine(prefix: String) -> String? {
        let lines = definedVersions.compactMap { node -> [Int]? in
            guard node.hasPrefix(prefix) else { return nil }
            let parts = node.dropFirst(prefix.count).split(whereSeparator: { $0 == "." || $0 == "_" }).compactMap { Int($0.prefix { $0.isNumber }) }
            return parts.count >= 2 ? Array(parts.prefix(2)) : nil
        }
        guard let newest = lines.max(by: { $0.lexicographicallyPrecedes($1) }) else { return nil }
        return "\(newest[0]).\(newest[1])"
    }

    /// A program the kernel starts (has an interpreter and is not itself a library).
    public var isMainProgram: Bool { interpreter != nil && soname == nil }

    /// What the file is, whatever it exports: ET_EXEC, or a position-independent program (ET_DYN with
    /// an interpreter and an entry point, and no SONAME, which a library that also runs has).
    public var isProgram: Bool {
        type == .executable || (type == .sharedObject && interpreter != nil && (entry ?? 0) != 0 && soname == nil)
    }

    /// Which OpenSSL role this object plays, recognised by content (exports, SONAME, version text),
    /// never by file name alone.
    public var openSSLRole: OpenSSLRole? {
        // LibreSSL and BoringSSL export OpenSSL's entry points and may be named libcrypto.so: not OpenSSL.
        if foreignCrypto != nil { return nil }
        // A program that carries OpenSSL and exports its API (node, linked -rdynamic) serves the modules it
        // loads, but it is no library anything else can load: a static copy.
        if isProgram, !exports.isDisjoint(with: [.libcrypto, .libssl]) { return .staticCopy }
        if exports.contains(.libssl) { return .libssl }
        if exports.contains(.libcrypto) { return .libcrypto }
        if exports.contains(.provider), embeddedOpenSSL != nil || (soname ?? "").isEmpty { return .provider }
        if let soname, OpenSSLNames.isLibcryptoName(soname) { return .libcrypto }
        if let soname, OpenSSLNames.isLibsslName(soname) { return .libssl }
        // The version text alone is not enough: consumers compiled against OpenSSL's headers carry
        // OPENSSL_VERSION_TEXT too (Debian's _openssl.abi3.so). The OPENSSLDIR/MODULESDIR build strings
        // only come with libcrypto's own code.
        if let e = embeddedOpenSSL, e.versionText != nil, e.openSSLDir != nil || e.modulesDir != nil { return .staticCopy }
        return nil
    }
}

/// The OpenSSL roles an ELF file can play in a process.
public enum OpenSSLRole: String, Sendable, Codable {
    case libcrypto, libssl
    /// A provider module (fips.so, legacy.so): exports OSSL_provider_init.
    case provider
    /// Not a libcrypto, yet carries a statically linked OpenSSL (e.g. cryptography's _rust.abi3.so).
    case staticCopy = "static-copy"
}

public struct OpenSSLExports: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Defines OPENSSL_init_crypto (or ERR_get_error + CRYPTO_malloc on 1.0).
    public static let libcrypto = OpenSSLExports(rawValue: 1)
    /// Defines OPENSSL_init_ssl or SSL_CTX_new.
    public static let libssl = OpenSSLExports(rawValue: 2)
    /// Defines OSSL_provider_init.
    public static let provider = OpenSSLExports(rawValue: 4)
    /// Defines gnutls_global_init (GnuTLS).
    public static let gnutls = OpenSSLExports(rawValue: 8)
    /// Defines nettle_sha256_init (Nettle, GnuTLS's crypto library).
    public static let nettle = OpenSSLExports(rawValue: 16)
}

/// A crypto library other than OpenSSL, recognised by its own markers: a second TLS stack where it
/// sits next to OpenSSL in one process, and outside any OpenSSL FIPS provider's boundary.
public struct ForeignCrypto: Sendable, Hashable, Codable {
    public enum Library: String, Sendable, Hashable, Codable {
        /// The text "BoringSSL" (what its OpenSSL_version returns) beside "OPENSSLDIR: n/a".
        case boringSSL = "BoringSSL"
        /// "AWS-LC 1.2.3" (awslc_version_string) beside "OPENSSLDIR: n/a".
        case awsLC = "AWS-LC"
        /// "LibreSSL 3.8.2", its OPENSSL_VERSION_TEXT.
        case libreSSL = "LibreSSL"
        /// Exports gnutls_global_init.
        case gnuTLS = "GnuTLS"
        /// Exports nettle_sha256_init.
        case nettle = "Nettle"
    }
    public var library: Library
    /// "5.12.0" (AWS-LC), "3.8.2" (LibreSSL), "3.7.9" (GnuTLS); nil where the file does not say (BoringSSL
    /// has no releases).
    public var version: String?

    public init(library: Library, version: String? = nil) { self.library = library; self.version = version }

    /// GnuTLS with Nettle is one stack.
    public var stack: String { library == .nettle ? Library.gnuTLS.rawValue : library.rawValue }

    /// The TLS stacks of one process or tree, when there is more than one (else nil: one is no second).
    public static func stacks(_ libraries: [ForeignCrypto], besideOpenSSL openSSL: Bool) -> Set<String>? {
        let stacks = Set(libraries.map(\.stack) + (openSSL ? ["OpenSSL"] : []))
        return stacks.count > 1 ? stacks : nil
    }

    /// "AWS-LC 5.12.0", "BoringSSL".
    public var description: String { library.rawValue + (version.map { " " + $0 } ?? "") }

    /// How a finding names it among `stacks`: "AWS-LC 5.12.0 (statically linked), a second TLS stack beside
    /// BoringSSL, OpenSSL", with ": outside the FIPS boundary" when FIPS is expected; and the other stacks.
    public func secondStack(among stacks: Set<String>, linkage: String?, expectFIPS: Bool) -> (phrase: String, others: [String]) {
        let others = stacks.subtracting([stack]).sorted()
        return (description + (linkage.map { " (\($0))" } ?? "") + ", a second TLS stack beside " + others.joined(separator: ", ")
                    + (expectFIPS ? ": outside the FIPS boundary" : ""), others)
    }
}

/// OpenSSL build strings as they sit in a file's read-only data.
public struct EmbeddedOpenSSL: Sendable, Hashable, Codable {
    /// e.g. "OpenSSL 3.5.9 29 Sep 2026" (OPENSSL_VERSION_TEXT).
    public var versionText: String?
    /// Compiled-in OPENSSLDIR, MODULESDIR, ENGINESDIR (nil when absent or "N/A").
    public var openSSLDir: String?
    public var modulesDir: String?
    public var enginesDir: String?
    /// Compiled-in default CA file/dir (X509_get_default_cert_file/dir), when the strings are present.
    public var certFile: String?
    public var certDir: String?

    public init(versionText: String? = nil, openSSLDir: String? = nil, modulesDir: String? = nil,
                enginesDir: String? = nil, certFile: String? = nil, certDir: String? = nil) {
        self.versionText = versionText; self.openSSLDir = openSSLDir; self.modulesDir = modulesDir
        self.enginesDir = enginesDir; self.certFile = certFile; self.certDir = certDir
    }

    /// "3.5.9" from "OpenSSL 3.5.9 29 Sep 2026".
    public var version: String? {
        guard let text = versionText else { return nil }
        let parts = text.split(separator: " ")
        return parts.count >= 2 ? String(parts[1]) : nil
    }

    /// "3.5" — what must agree between libssl, libcrypto and the FIPS provider.
    public var majorMinor: String? {
        guard let v = version else { return nil }
        let parts = v.split(separator: ".")
        return parts.count >= 2 ? "\(parts[0]).\(parts[1])" : nil
    }
}

/// Where a file is, as the kernel sees it: the identity two paths share when they are one file.
public struct FileIdentity: Sendable, Hashable, Codable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64
    /// An archive member (PyInstaller onefile): its index in the table of contents of the file
    /// (device, inode) names; nil for a file of its own.
    public var member: Int?
    public init(device: UInt64, inode: UInt64, member: Int? = nil) { self.device = device; self.inode = inode; self.member = member }
    /// "254:1 ino 1234" with the device as major:minor, like /proc/<pid>/maps ("… member 7" inside an archive).
    public var description: String {
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff))
        let minor = (device & 0xff) | ((device >> 12) & ~UInt64(0xff))
        return "\(major):\(minor) ino \(inode)" + (member.map { " member \($0)" } ?? "")
    }
}

/// A byte range of a file.
public struct FileRange: Sendable, Hashable, Codable {
    public var offset: UInt64
    public var size: UInt64
    public init(offset: UInt64, size: UInt64) { self.offset = offset; self.size = size }
}
