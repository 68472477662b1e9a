/// What the inspector read about one running process: the input of `ProcessAudit`.
public struct ProcessSnapshot: Sendable {
    public var pid: Int32
    /// /proc/<pid>/stat field 22 (clock ticks after boot); with the pid it names one process, since a
    /// pid is handed out again once its process is gone. nil when it could not be read.
    public var startTime: UInt64?
    /// /proc/<pid>/status Name (the comm, at most 15 bytes).
    public var command: String?
    /// /proc/<pid>/exe's target (may end in " (deleted)").
    public var executable: String?
    /// The systemd unit from /proc/<pid>/cgroup, when there is one.
    public var unit: String?
    public var credentials: ProcessCredentials?
    public var cwd: String?
    /// Only the kept OpenSSL and loader variables; nil when environ could not be read.
    public var environment: TargetEnvironment?
    /// The whole initial environment, read only when a POST will follow: handed to the POST child,
    /// never logged, encoded or stored.
    public var serviceEnvironment: [String: String]?
    /// What confines the process that a POST child cannot take over (a seccomp filter, an LSM label);
    /// read with serviceEnvironment.
    public var confinement: [String] = []
    /// Each mapped file once, by (device, inode).
    public var files: [MappedObject]
    /// Every read that failed, with why (permission, process gone): reported, never skipped.
    public var failures: [ReadFailure]

    public init(pid: Int32, command: String? = nil, executable: String? = nil, unit: String? = nil,
                credentials: ProcessCredentials? = nil, cwd: String? = nil, environment: TargetEnvironment? = nil,
                files: [MappedObject] = [], failures: [ReadFailure] = [], startTime: UInt64? = nil) {
        self.pid = pid; self.startTime = startTime; self.command = command; self.executable = executable; self.unit = unit
        self.credentials = credentials; self.cwd = cwd; self.environment = environment; self.files = files
        self.failures = failures
    }

    /// "pid 1234 (app)", or "product-api.service pid 1234 (app)" when it runs in a unit.
    public var displayName: String {
        let base = "pid \(pid)" + (command.map { " (\($0))" } ?? "")
        return unit.map { "\($0) \(base)" } ?? base
    }
}

/// Why one /proc read failed.
public struct ReadFailure: Sendable, Hashable {
    public enum Reason: Sendable, Hashable, CustomStringConvertible {
        /// EACCES/EPERM: another user's process without CAP_SYS_PTRACE (and CAP_DAC_READ_SEARCH for environ).
        case permissionDenied
        /// ENOENT/ESRCH, or a zombie: the process exited before or between reads.
        case exited
        case other(String)
        public var description: String {
            switch self {
            case .permissionDenied: return "permission denied"
            case .exited: return "process exited"
            case .other(let s): return s
            }
        }
    }
    /// "maps", "environ", "status", "exe", "cwd", "cgroup".
    public var file: String
    public var reason: Reason
    public init(file: String, reason: Reason) { self.file = file; self.reason = reason }
}

/// What is at a mapping's path now, compared with the mapped (device, inode).
public enum DiskState: Sendable, Hashable {
    /// The file at the path is the mapped one.
    case current
    /// The mapped file was unlinked (the kernel's " (deleted)" marker, and the file at the full
    /// pathname is not it); `now` is what sits at the path today, if anything.
    case deleted(now: FileIdentity?)
    /// No marker, yet the path now names another file.
    case replaced(now: FileIdentity)
    /// The path could not be checked (permission, another mount namespace…).
    case unverified(String)

    /// What stat() said about one path.
    public enum Lookup: Sendable, Hashable {
        case file(FileIdentity)
        case missing
        case failed(String)
    }

    /// Decides from the mapping alone and a stat of its path(s). A real file named "x (deleted)" is
    /// the full pathname naming the mapped inode: checked first, so it is never called deleted.
    public static func judge(identity: FileIdentity, pathname: String, deletedMarker: Bool,
                             lookup: (String) -> Lookup) -> (path: String, state: DiskState) {
        if deletedMarker {
            if case .file(identity) = lookup(pathname) { return (pathname, .current) }
            let stripped = String(pathname.dropLast(MapsParser.deletedSuffix.count))
            switch lookup(stripped) {
            case .file(identity): return (stripped, .current)
            case .file(let other): return (stripped, .deleted(now: other))
            case .missing: return (stripped, .deleted(now: nil))
            case .failed(let why): return (stripped, .unverified(why))
            }
        }
        switch lookup(pathname) {
        case .file(identity): return (pathname, .current)
        case .file(let other): return (pathname, .replaced(now: other))
        case .missing: return (pathname, .unverified("no file at this path, yet the kernel does not mark it deleted (another mount namespace?)"))
        case .failed(let why): return (pathname, .unverified(why))
        }
    }
}

/// One file mapped into a process, with what the catalog knows about its content.
public struct MappedObject: Sendable, Hashable {
    public enum Identification: String, Sendable, Hashable {
        /// Read from the file itself (SONAME, exports, version text).
        case content
        /// The content could not be read (e.g. a deleted file without access to map_files): name only.
        case name
    }
    public var identity: FileIdentity
    /// The path, " (deleted)" marker stripped when the file really is deleted.
    public var path: String
    /// The pathname exactly as /proc/<pid>/maps printed it.
    public var mapsPathname: String
    public var disk: DiskState
    public var object: ELFObject?
    public var identification: Identification
    /// Why the content could not be read, if it could not.
    public var readError: String?
    /// Its first address range in this process ("start-end"), the name of its /proc/PID/map_files entry.
    public var mapRange: String?

    public init(identity: FileIdentity, path: String, mapsPathname: String, disk: DiskState, object: ELFObject?,
                identification: Identification = .content, readError: String? = nil) {
        self.identity = identity; self.path = path; self.mapsPathname = mapsPathname; self.disk = disk
        self.object = object; self.identification = identification; self.readError = readError
    }

    public var basename: String { path.split(separator: "/").last.map(String.init) ?? path }

    /// The OpenSSL role by content; by name only when the content was out of reach.
    public var role: OpenSSLRole? {
        if let object { return object.openSSLRole }
        guard identification == .name else { return nil }
        if OpenSSLNames.isLibcryptoName(basename) { return .libcrypto }
        if OpenSSLNames.isLibsslName(basename) { return .libssl }
        if path.contains("/ossl-modules/") && basename.hasSuffix(".so") { return .provider }
        return nil
    }

    /// A provider module named fips (fips.so): what OpenSSL loads for the "fips" provider.
    public var isFIPSProvider: Bool { role == .provider && basename.hasPrefix("fips") }

    public var version: String? { object?.opensslVersion }
}

/// What the operator expects of a process (CLI flags, or a service's config).
public struct ProcessExpectations: Sendable, Hashable {
    public var expectFIPS: Bool
    /// KEY → expected value (only TargetEnvironment.keptKeys); "" means unset or empty.
    public var environment: [String: String]
    public init(expectFIPS: Bool = false, environment: [String: String] = [:]) {
        self.expectFIPS = expectFIPS; self.environment = environment
    }
}
