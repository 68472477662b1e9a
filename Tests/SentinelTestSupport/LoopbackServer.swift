import Foundation
import Glibc

/// A server a test starts on a free 127.0.0.1 port and stops (by pid). The port is found by binding
/// port 0 and closing it, so another process may take it before the server binds: the server then exits
/// (or never listens) and is started again on another port. Ready once the server itself listens on the
/// port (one of its own sockets in LISTEN state, /proc/PID/net/tcp), not merely once something answers.
public final class LoopbackServer {
    public let process = Process()
    public let port: Int
    public let logPath: String
    public var pid: Int32 { process.processIdentifier }
    public var address: String { "127.0.0.1:\(port)" }
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// `argv(port)` is the command line for a port; `user` runs it through setpriv (which execs, so the
    /// pid stays the server's). stdout and stderr go to `logPath`.
    public static func start(logPath: String, as user: String? = nil, seconds: Double = 60,
                             _ argv: (Int) -> [String]) throws -> LoopbackServer {
        var last = ""
        for _ in 0..<5 {
            let server = try LoopbackServer(port: try freePort(), logPath: logPath, user: user, argv)
            if server.waitUntilListening(seconds) { return server }
            server.stop()
            last = server.log
        }
        throw FixtureScriptError(message: "\(argv(0).first ?? "?") never listened on 127.0.0.1; last log:\n\(last)")
    }

    private init(port: Int, logPath: String, user: String?, _ argv: (Int) -> [String]) throws {
        self.port = port
        self.logPath = logPath
        var full = argv(port)
        if let user { full = ["/usr/bin/setpriv", "--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--"] + full }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: full[0])
        process.arguments = Array(full.dropFirst())
        process.environment = ["PATH": "/usr/bin:/bin"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
    }

    private func waitUntilListening(_ seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline {
            if Self.listens(pid: pid, port: port) { return true }
            usleep(50_000)
        }
        return false
    }

    /// SIGTERM (a clean shutdown: Prometheus closes its TSDB), SIGKILL after 20 s.
    public func stop() { process.stop() }

    /// A port no socket is bound to right now (the kernel's pick for port 0).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FixtureScriptError(message: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw FixtureScriptError(message: "bind 127.0.0.1:0: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Whether one of `pid`'s own sockets listens on `port` (TCP over IPv4).
    public static func listens(pid: Int32, port: Int) -> Bool {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        let inodes = Set(fds.compactMap { fd -> Substring? in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                  target.hasPrefix("socket:[") else { return nil }
            return Substring(target.dropFirst(8).dropLast())
        })
        // /proc files report size 0: read to EOF.
        guard let table = FileHandle(forReadingAtPath: "/proc/\(pid)/net/tcp")?.readDataToEndOfFile() else { return false }
        // "sl local_address rem_address st … inode": local port in hex, state 0A is LISTEN.
        return String(decoding: table, as: UTF8.self).split(separator: "\n").dropFirst().contains { line in
            let f = line.split(separator: " ")
            guard f.count > 9, let colon = f[1].lastIndex(of: ":") else { return false }
            return f[3] == "0A" && Int(f[1][f[1].index(after: colon)...], radix: 16) == port && inodes.contains(f[9])
        }
    }
}

extension Process {
    /// SIGTERM, then SIGKILL if it has not exited after `grace` seconds; reaped either way.
    public func stop(grace: Double = 20) {
        guard isRunning else { return }
        kill(processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while isRunning && Date() < deadline { usleep(20_000) }
        if isRunning { kill(processIdentifier, SIGKILL) }
        waitUntilExit()
    }
}
