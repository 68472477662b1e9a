import Foundation
import Glibc

/// A real systemd-journald for tests on a machine whose PID 1 is not systemd: started
/// by hand when none listens on /run/systemd/journal/socket, stopped (by pid) by whoever started it once
/// the last user is done. Users in every test process share it through a lock file: each holds a shared
/// flock while it uses journald; the starter takes the lock exclusively before stopping it, so it never
/// pulls journald from under a test of another suite or another `swift test` run.
public final class JournaldLease {
    public static let socketPath = "/run/systemd/journal/socket"
    public static let binary = "/lib/systemd/systemd-journald"
    public static let journalctl = "/usr/bin/journalctl"

    private let lockFD: Int32
    /// The journald this lease started, or nil when one was already running.
    public let startedPID: pid_t?
    private var process: Process?

    /// Blocks until journald accepts datagrams (starting it if needed), or throws.
    public init() throws {
        try FileManager.default.createDirectory(atPath: FixtureScripts.root, withIntermediateDirectories: true)
        lockFD = open(FixtureScripts.root + "/journald.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else { throw FixtureScriptError(message: "journald lock: \(String(cString: strerror(errno)))") }
        flock(lockFD, LOCK_EX)
        if Self.isListening() {
            startedPID = nil
        } else {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.binary)
            // journald would sd_notify READY=1 to a NOTIFY_SOCKET a concurrent test happened to set.
            p.environment = ProcessInfo.processInfo.environment.filter { $0.key != "NOTIFY_SOCKET" && !$0.key.hasPrefix("WATCHDOG_") }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            do { try p.run() } catch {
                close(lockFD)
                throw FixtureScriptError(message: "cannot start \(Self.binary): \(error)")
            }
            let deadline = Date().addingTimeInterval(10)
            while !Self.isListening() && p.isRunning && Date() < deadline { usleep(20_000) }
            guard Self.isListening() else {
                if p.isRunning { kill(p.processIdentifier, SIGTERM); p.waitUntilExit() }
                close(lockFD)
                throw FixtureScriptError(message: "\(Self.binary) did not create \(Self.socketPath) within 10 s")
            }
            process = p
            startedPID = p.processIdentifier
        }
        flock(lockFD, LOCK_SH)
    }

    /// Stops the journald this lease started once no other lease holds the lock; closes the lock.
    public func release() {
        if let p = process {
            flock(lockFD, LOCK_EX)
            kill(p.processIdentifier, SIGTERM)
            p.waitUntilExit()
            process = nil
        }
        close(lockFD)
    }

    /// journald listens when a datagram socket can connect to its socket (a stale file refuses).
    public static func isListening() -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in socketPath.utf8.enumerated() { raw[i] = b }
        }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
    }

    /// `journalctl -o json MATCHES…`, polled until at least `count` entries show or `timeout` passes
    /// (journald stores a datagram asynchronously). One JSON object per entry.
    /// `since`: only entries from then on. With `_PID=` among the matches, give the process's start:
    /// pids wrap (pid_max is 32,768 here) and the journal keeps earlier runs' entries.
    public static func entries(matching matches: [String], since: Date? = nil, count: Int = 1,
                               timeout: TimeInterval = 10) throws -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(timeout)
        let window = since.map { ["--since", "@\(Int($0.timeIntervalSince1970))"] } ?? []
        while true {
            let (_, out) = try runTool(journalctl, ["--no-pager", "-o", "json"] + window + matches)
            let entries = out.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
            }
            if entries.count >= count || Date() >= deadline { return entries }
            usleep(50_000)
        }
    }

    /// Runs a tool; stdout and stderr together.
    public static func runTool(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
