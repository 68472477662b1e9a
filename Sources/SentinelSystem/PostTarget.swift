import Glibc
import SentinelCore

/// What a POST needs to know about a running service: the projection of one ProcReader snapshot read
/// with `forPOST` (so the process is read once, and the probe checks its start time again).
public struct PostTarget: Sendable {
    public var pid: Int32
    /// The whole initial environment (secrets included): passed to the child, never logged or stored.
    public var environ: [String: String]
    public var uid: UInt32
    public var gid: UInt32
    public var cwd: String?
    /// Every file the process maps (content-identified where it could be read).
    public var files: [MappedObject]
    /// Clock ticks since boot at the process's start: the probe refuses the pid if it changed.
    public var startTime: UInt64?
    /// What confines the process that the POST child cannot take over (a seccomp filter, an LSM label).
    public var notReproduced: [String]

    public init?(_ snap: ProcessSnapshot) {
        guard let environ = snap.serviceEnvironment, let ids = snap.credentials else { return nil }
        pid = snap.pid; self.environ = environ; uid = ids.uid; gid = ids.gid; cwd = snap.cwd
        files = snap.files; startTime = snap.startTime; notReproduced = snap.confinement
    }

    public static func read(pid: Int32) throws(ReadError) -> PostTarget {
        let snap = ProcReader().snapshot(pid: pid, forPOST: true)
        guard let target = PostTarget(snap) else {
            if snap.failures.contains(where: { $0.reason == .exited }) { throw ReadError(description: "no such process") }
            let why = snap.failures.map { "/proc/\(pid)/\($0.file): \($0.reason)" }.joined(separator: ", ")
            throw ReadError(description: "cannot read " + (why.isEmpty ? "/proc/\(pid)" : why))
        }
        return target
    }

    public struct ReadError: Error, CustomStringConvertible { public var description: String }

    /// libcrypto files the process maps, by basename (libcrypto*.so*, " (deleted)" kept): the fallback
    /// when content identification has nothing to say.
    public var mappedLibcrypto: [String] {
        files.map(\.mapsPathname).filter { path in
            let base = path.split(separator: "/").last.map(String.init) ?? path
            return base.hasPrefix("libcrypto") && base.contains(".so")
        }
    }

    /// The /proc/PID/map_files name of each mapped file, keyed by the pathname as maps prints it.
    public var ranges: [String: String] {
        Dictionary(files.compactMap { f in f.mapRange.map { (f.mapsPathname, $0) } }, uniquingKeysWith: { a, _ in a })
    }
}
