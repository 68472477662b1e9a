import Foundation
import Glibc
import SentinelCore

/// What a POST needs to know about a running service, from /proc (hostile input; the process can
/// exit between any two reads). Small on purpose: the `inspect` work brings the full ProcReader.
public struct PostTarget: Sendable {
    public var pid: Int32
    /// The whole initial environment (secrets included): passed to the child, never logged or stored.
    public var environ: [String: String]
    public var uid: UInt32
    public var gid: UInt32
    public var cwd: String?
    /// libcrypto files the process maps, by basename (libcrypto*.so*): the fallback when the inspect
    /// work's ProcReader (content-based identification) has nothing to say.
    public var mappedLibcrypto: [String]
    /// The first address range ("start-end") of each mapped libcrypto, for /proc/PID/map_files.
    public var ranges: [String: String] = [:]
    /// Clock ticks since boot at the process's start: the probe refuses the pid if it changed.
    public var startTime: UInt64?
    /// What confines the process that the POST child cannot take over (a seccomp filter, an LSM label).
    public var notReproduced: [String] = []

    public static func read(pid: Int32) throws -> PostTarget {
        let environ = parseEnviron(try ProcessEnvironment.readAll("/proc/\(pid)/environ"))
        let status = String(decoding: try ProcessEnvironment.readAll("/proc/\(pid)/status"), as: UTF8.self)
        let maps = String(decoding: try ProcessEnvironment.readAll("/proc/\(pid)/maps"), as: UTF8.self)
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/\(pid)/cwd", &buf, 4096)
        let cwd = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
        let (uid, gid) = try parseIDs(status, pid: pid)
        let label = (try? ProcessEnvironment.readAll("/proc/\(pid)/attr/current")).map { String(decoding: $0, as: UTF8.self) }
        return PostTarget(pid: pid, environ: environ, uid: uid, gid: gid, cwd: cwd,
                          mappedLibcrypto: libcryptoMappings(maps), ranges: mappingRanges(maps),
                          startTime: ProcReader.startTime(pid: pid), notReproduced: confinement(status: status, label: label))
    }

    /// The confinement a child cannot copy from another process: a seccomp mode (the filter itself is
    /// not readable) and an LSM label other than unconfined.
    public static func confinement(status: String, label: String?) -> [String] {
        var out: [String] = []
        for line in status.split(separator: "\n") where line.hasPrefix("Seccomp:") {
            switch line.dropFirst(8).trimmingCharacters(in: .whitespaces) {
            case "1": out.append("seccomp strict mode")
            case "2": out.append("seccomp filter")
            default: break
            }
        }
        let l = (label ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "\0\n "))
        if !l.isEmpty, l != "unconfined", !l.hasPrefix("unconfined ") {
            out.append("LSM label \(l)")
        }
        return out
    }

    /// NUL-separated KEY=VALUE; the first occurrence of a key wins, as getenv() sees it.
    public static func parseEnviron(_ bytes: [UInt8]) -> [String: String] {
        var out: [String: String] = [:]
        for entry in bytes.split(separator: 0, omittingEmptySubsequences: true) {
            guard let eq = entry.firstIndex(of: UInt8(ascii: "=")), eq != entry.startIndex else { continue }
            let key = String(decoding: entry[entry.startIndex..<eq], as: UTF8.self)
            if out[key] == nil { out[key] = String(decoding: entry[(eq + 1)...], as: UTF8.self) }
        }
        return out
    }

    /// Real uid/gid from "Uid:\treal\teffective\tsaved\tfs" (the service's identity is its real one).
    public static func parseIDs(_ status: String, pid: Int32) throws -> (UInt32, UInt32) {
        func field(_ name: String) -> UInt32? {
            for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
                let parts = line.dropFirst(name.count + 1).split(whereSeparator: { $0 == "\t" || $0 == " " })
                return parts.first.flatMap { UInt32($0) }
            }
            return nil
        }
        guard let uid = field("Uid"), let gid = field("Gid") else {
            throw ProcessEnvironment.ReadError.unreadable("/proc/\(pid)/status", "no Uid/Gid line")
        }
        return (uid, gid)
    }

    /// Distinct mapped files whose basename is libcrypto*.so* (the " (deleted)" suffix kept: the
    /// probe then fails to load it, which is the truth about a replaced library).
    public static func libcryptoMappings(_ maps: String) -> [String] {
        pathRanges(maps).map(\.path).filter { path in
            let base = path.split(separator: "/").last.map(String.init) ?? path
            return base.hasPrefix("libcrypto") && base.contains(".so")
        }
    }

    /// The first address range of every mapped file, keyed by the pathname as maps prints it.
    public static func mappingRanges(_ maps: String) -> [String: String] {
        Dictionary(pathRanges(maps).map { ($0.path, $0.range) }, uniquingKeysWith: { a, _ in a })
    }

    static func pathRanges(_ maps: String) -> [(path: String, range: String)] {
        var seen: [(path: String, range: String)] = []
        var known = Set<String>()
        for line in maps.split(separator: "\n") {
            let range = String(line.prefix { $0 != " " })
            var rest = Substring(line)
            for _ in 0..<5 {
                guard let sp = rest.firstIndex(of: " ") else { rest = ""; break }
                rest = rest[sp...].drop { $0 == " " }
            }
            guard rest.hasPrefix("/") else { continue }
            let path = String(rest)
            if known.insert(path).inserted { seen.append((path, range)) }
        }
        return seen
    }
}
