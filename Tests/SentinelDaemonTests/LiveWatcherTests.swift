import Foundation
import Glibc
import Testing
import SentinelCore
@testable import SentinelDaemon

/// The live watcher driven tick by tick over a /proc tree the test writes. Each pid of that tree is a
/// real `sleep` child of the test, so the watcher's pidfds watch real processes; whether a process is
/// "the same" is then up to the test: ending the child while its directory stays is a pid handed out
/// again, ending it and removing the directory is a process that stopped. No timing is assumed.
@Suite(.serialized) struct LiveWatcherTests {
    final class FakeProc {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-watch-\(UUID().uuidString.prefix(8))").path
        var children: [Int32: Process] = [:]

        init() throws { try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true) }
        deinit {
            for p in children.values { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            try? FileManager.default.removeItem(atPath: root)
        }

        /// A new real process, shown in the tree as started at `start` in `unit`, mapping OpenSSL or not.
        func start(_ start: Int, unit: String? = nil, openssl: Bool = false, parent: Int32 = 1) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sleep")
            p.arguments = ["600"]
            try p.run()
            children[p.processIdentifier] = p
            try write(p.processIdentifier, start: start, unit: unit, openssl: openssl, parent: parent)
            return p.processIdentifier
        }

        func write(_ pid: Int32, start: Int, unit: String? = nil, openssl: Bool = false, parent: Int32 = 1) throws {
            let dir = root + "/\(pid)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try "\(pid) (svc) S \(parent) \(pid) \(pid) 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \(start) 2228224 128 0\n"
                .write(toFile: dir + "/stat", atomically: true, encoding: .utf8)
            try "0::/system.slice/\(unit ?? "session-1.scope")\n".write(toFile: dir + "/cgroup", atomically: true, encoding: .utf8)
            try (openssl ? "7f00-7f01 r-xp 00000000 08:01 42 /usr/lib/x86_64-linux-gnu/libcrypto.so.3\n" : "")
                .write(toFile: dir + "/maps", atomically: true, encoding: .utf8)
        }

        /// The real process ends (and is reaped); its directory stays unless `remove`.
        func end(_ pid: Int32, remove: Bool) throws {
            let p = try #require(children[pid])
            children[pid] = nil
            kill(pid, SIGKILL)
            p.waitUntilExit()
            if remove { try FileManager.default.removeItem(atPath: root + "/\(pid)") }
        }
    }

    let config = try! DaemonConfig.parse("services:\n  - name: svc\n    unit: svc.service\ndiscover:\n  enabled: true\n", file: "test.yaml")

    /// Ticks until every process is past its young ticks.
    func settle(_ watcher: LiveWatcher) {
        for _ in 0...LiveWatcher.settleTicks { _ = watcher.changed(config) }
    }

    @Test func aStartedAStoppedAndAReusedPidAreEachAChange() throws {
        let proc = try FakeProc()
        let a = try proc.start(1000, unit: "svc.service")
        let mapper = try proc.start(1001, openssl: true)
        let ours = try proc.start(1002, openssl: true, parent: getpid())  // like a POST child of the daemon
        let watcher = LiveWatcher(procRoot: proc.root, maxPidfds: 64)
        #expect(!watcher.changed(config), "the first tick is the baseline")
        #expect(watcher.fingerprint(config) == ["svc:\(a)@1000", "p:\(mapper)@1001"], "not \(ours), a child of ours")
        settle(watcher)

        // Stopped: the process ends and leaves the listing.
        try proc.end(a, remove: true)
        #expect(watcher.changed(config))
        #expect(watcher.fingerprint(config) == ["p:\(mapper)@1001"])

        // Started: a new pid in the unit.
        let b = try proc.start(2000, unit: "svc.service")
        #expect(watcher.changed(config))
        #expect(watcher.fingerprint(config) == ["svc:\(b)@2000", "p:\(mapper)@1001"])
        settle(watcher)
        #expect(watcher.statReads == 0, "settled and watched: nothing read")

        // Reused: the process at `b` ends and, before the next tick, its pid is listed again with
        // another start time. Only its pidfd tells: it is the one stat read of the tick.
        try proc.end(b, remove: false)
        try proc.write(b, start: 3000, unit: "svc.service")
        #expect(watcher.changed(config))
        #expect(watcher.statReads == 1)
        #expect(watcher.fingerprint(config) == ["svc:\(b)@3000", "p:\(mapper)@1001"])

        // The OpenSSL mapper exits but stays listed (a zombie not yet reaped): the same process, still counted.
        settle(watcher)
        try proc.end(mapper, remove: false)
        #expect(!watcher.changed(config))
        #expect(watcher.fingerprint(config).contains("p:\(mapper)@1001"))
    }

    /// The idle cost in reads: with N unchanged processes a tick reads no stat file once they are settled
    /// (N on every tick without pidfds, as before); a new process costs one.
    @Test func unchangedProcessesCostNoStatReads() throws {
        let proc = try FakeProc()
        let n = 24
        for i in 0..<n { _ = try proc.start(5000 + i) }
        let watched = LiveWatcher(procRoot: proc.root, maxPidfds: 64)
        let unwatched = LiveWatcher(procRoot: proc.root, maxPidfds: 0)
        for w in [watched, unwatched] {
            _ = w.changed(config)
            #expect(w.statReads == n, "the first tick reads every process")
            settle(w)
        }
        #expect(watched.statReads == 0)
        #expect(unwatched.statReads == n)
        _ = try proc.start(6000)
        _ = watched.changed(config)
        #expect(watched.statReads == 1)
        // More processes than pidfds: the rest are read every tick, so nothing is missed.
        let short = LiveWatcher(procRoot: proc.root, maxPidfds: 10)
        _ = short.changed(config)
        settle(short)
        #expect(short.statReads == n + 1 - 10)
    }
}
