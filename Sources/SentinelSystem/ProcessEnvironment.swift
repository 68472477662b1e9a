import Glibc
import SentinelCore

/// The OpenSSL and loader environment of a running process, from /proc (hostile input).
public struct ProcessEnvironment: Sendable {
    public var pid: Int32
    public var environment: TargetEnvironment

    public enum ReadError: Error, CustomStringConvertible {
        case unreadable(String, String)
        public var description: String {
            switch self { case .unreadable(let path, let reason): return "cannot read \(path): \(reason)" }
        }
    }

    public static func read(pid: Int32) throws -> ProcessEnvironment {
        let environ = try readAll("/proc/\(pid)/environ")
        // AT_SECURE (auxv type 23) tells whether glibc ignores LD_LIBRARY_PATH for this process.
        let auxv = (try? readAll("/proc/\(pid)/auxv")) ?? []
        var secure = false
        auxv.withUnsafeBytes { raw in
            var i = 0
            while i + 16 <= raw.count {
                let type = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let value = raw.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
                if type == 23 { secure = value != 0 }
                if type == 0 { break }
                i += 16
            }
        }
        return ProcessEnvironment(pid: pid, environment: TargetEnvironment(environ: environ, secureExecution: secure))
    }

    /// Reads a whole /proc file (their stat size is 0, so read until EOF), capped at 4 MiB.
    static func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError.unreadable(path, String(cString: strerror(errno))) }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < 4 << 20 {
            let n = Glibc.read(fd, &buf, buf.count)
            if n < 0 { throw ReadError.unreadable(path, String(cString: strerror(errno))) }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }
}
