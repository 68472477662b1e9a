/// The variables of a target's environment that decide which OpenSSL it loads and how it behaves.
/// Everything else (secrets, tokens, PYTHONPATH…) is dropped on the way in and never stored or logged.
public struct TargetEnvironment: Sendable, Hashable, Codable {
    public static let keptKeys: [String] = [
        "OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH", "LD_PRELOAD", "SSL_CERT_FILE", "SSL_CERT_DIR",
    ]
    public private(set) var values: [String: String]
    /// AT_SECURE (setuid/setgid/capabilities): glibc then ignores LD_LIBRARY_PATH.
    public var secureExecution: Bool

    public init(_ pairs: [String: String] = [:], secureExecution: Bool = false) {
        self.values = pairs.filter { Self.keptKeys.contains($0.key) }
        self.secureExecution = secureExecution
    }

    public subscript(key: String) -> String? { values[key] }

    /// LD_LIBRARY_PATH split as glibc does (':' and ';'); an empty element means the current directory.
    public var libraryPath: [String] {
        guard !secureExecution, let raw = values["LD_LIBRARY_PATH"], !raw.isEmpty else { return [] }
        return raw.split(separator: ":", omittingEmptySubsequences: false)
            .flatMap { $0.split(separator: ";", omittingEmptySubsequences: false) }
            .map { $0.isEmpty ? "." : String($0) }
    }

    /// LD_PRELOAD entries (space or colon separated).
    public var preload: [String] {
        guard let raw = values["LD_PRELOAD"] else { return [] }
        return raw.split(whereSeparator: { $0 == " " || $0 == ":" }).map(String.init)
    }
}

/// Facts about the host's dynamic loader that the pure resolver takes as input.
public struct LoaderHost: Sendable {
    /// Expansion of `$LIB` (Debian amd64: "lib/x86_64-linux-gnu").
    public var libToken: String
    /// Expansion of `$PLATFORM` (AT_PLATFORM, "x86_64").
    public var platform: String
    /// Supported `glibc-hwcaps/` subfolders, best first, e.g. ["x86-64-v3", "x86-64-v2"].
    public var hwcapsSubdirs: [String]
    /// The compiled-in system search path, in order.
    public var defaultDirs: [String]
    /// The parsed /etc/ld.so.cache, if present.
    public var cache: LdSoCache?
    /// Legacy hwcap subfolders glibc before 2.37 still tries after `glibc-hwcaps/…` and before the
    /// folder itself, in its order and with its repeats (x86-64, glibc 2.36: "tls/x86_64/x86_64",
    /// "tls/x86_64", "tls/x86_64", "tls", "x86_64/x86_64", "x86_64", "x86_64"). Empty from 2.37 on.
    public var legacyHwcapsSubdirs: [String]
    /// The dynamic loader's own path (glibc's RTLD, "/lib64/ld-linux-x86-64.so.2"): mapped into every
    /// process, so a DT_NEEDED on its SONAME reuses it. A main program's PT_INTERP takes precedence.
    public var rtldPath: String?

    public init(libToken: String, platform: String, hwcapsSubdirs: [String], defaultDirs: [String], cache: LdSoCache?,
                legacyHwcapsSubdirs: [String] = [], rtldPath: String? = nil) {
        self.libToken = libToken; self.platform = platform; self.hwcapsSubdirs = hwcapsSubdirs
        self.defaultDirs = defaultDirs; self.cache = cache; self.legacyHwcapsSubdirs = legacyHwcapsSubdirs
        self.rtldPath = rtldPath
    }
}

/// A file the loader could map: its path as the loader built it, its identity and its ELF model.
public struct LoadedFile: Sendable, Hashable {
    public var path: String
    public var identity: FileIdentity
    /// The model is shared, not copied: a resolution copies LoadedFile values tens of thousands of times.
    public var object: ELFObject { box.object }
    private let box: Box

    private final class Box: Sendable {
        let object: ELFObject
        init(_ object: ELFObject) { self.object = object }
    }

    public init(path: String, identity: FileIdentity, object: ELFObject) {
        self.path = path; self.identity = identity; self.box = Box(object)
    }

    // Within one scan a (device, inode) names one file, so path and identity decide equality.
    public static func == (a: LoadedFile, b: LoadedFile) -> Bool { a.path == b.path && a.identity == b.identity }
    public func hash(into h: inout Hasher) { h.combine(path); h.combine(identity) }
}

/// What is at a path, as far as the loader is concerned.
public enum LoaderProbe: Sendable {
    case missing
    /// Exists but cannot be loaded (not ELF, corrupt, unreadable); glibc moves on to the next directory.
    case unusable(reason: String)
    case object(LoadedFile)
}

/// The resolver's only window on the filesystem, so the resolution logic stays pure and testable.
public protocol LoaderFileSystem {
    func probe(_ path: String) -> LoaderProbe
    /// `path` with every symlink resolved (realpath(3)), or nil; the main program's $ORIGIN is the
    /// folder of its real path, as the kernel reports it in /proc/self/exe.
    func realPath(_ path: String) -> String?
    /// The names in folder `path` (an empty set when it does not exist), or nil when it cannot be
    /// listed; lets the resolver skip probing candidates that cannot exist.
    func directoryEntries(_ path: String) -> Set<String>?
}

extension LoaderFileSystem {
    public func realPath(_ path: String) -> String? { nil }
    public func directoryEntries(_ path: String) -> Set<String>? { nil }
}

/// How a DT_NEEDED entry was found; mirrors libtree's tags, plus what libtree does not model.
public enum SearchSource: String, Sendable, Codable {
    case path                       // the name contains a slash
    case rpath                      // DT_RPATH of the loader or inherited up its loader chain
    case ldLibraryPath = "LD_LIBRARY_PATH"
    case runpath                    // DT_RUNPATH of the loader itself
    case ldCache = "ld.so.cache"
    case defaultPath = "default"
    case preload = "LD_PRELOAD"
    case alreadyLoaded = "already-loaded"  // same name or SONAME already in the process
}

/// The outcome of looking up one DT_NEEDED entry.
public enum EdgeResult: Sendable, Hashable {
    /// `rpathOwner` names the object whose RPATH/RUNPATH supplied the directory, when that applies.
    case found(LoadedFile, via: SearchSource, rpathOwner: String?)
    /// Every path considered, in order.
    case missing(tried: [String])
}

/// One dependency edge: `consumer` needs `name`.
public struct LoaderEdge: Sendable, Hashable {
    public var consumer: String
    public var name: String
    public var result: EdgeResult
    /// Candidates that existed but were passed over, as "path (reason)": wrong ELF class or machine,
    /// not loadable. Also listed in a missing edge's `tried`.
    public var skipped: [String]
    public init(consumer: String, name: String, result: EdgeResult, skipped: [String] = []) {
        self.consumer = consumer; self.name = name; self.result = result; self.skipped = skipped
    }
}

extension TargetEnvironment {
    /// Parses /proc/<pid>/environ (NUL-separated KEY=VALUE): hostile input. Only the kept keys survive;
    /// other names and all their values are dropped here, before anything can log them.
    public init(environ bytes: [UInt8], secureExecution: Bool = false) {
        self.init(Self.parse(environ: bytes, keeping: Self.keptKeys.contains), secureExecution: secureExecution)
    }

    /// The one environ parser: the keys `keeping` accepts, each value decoded only then (bytes that
    /// are not UTF-8 escaped as \xHH, so EscapedBytes gives the exact bytes back). getenv() returns the
    /// first definition, so a later duplicate does not win here either.
    public static func parse(environ bytes: [UInt8], keeping: (String) -> Bool = { _ in true }) -> [String: String] {
        var out: [String: String] = [:]
        for entry in bytes.split(separator: 0, omittingEmptySubsequences: true) {
            guard let eq = entry.firstIndex(of: UInt8(ascii: "=")), eq != entry.startIndex else { continue }
            let key = String(decoding: entry[entry.startIndex..<eq], as: UTF8.self)
            guard keeping(key), out[key] == nil else { continue }
            out[key] = EscapedBytes.string(entry[(eq + 1)...])
        }
        return out
    }
}
