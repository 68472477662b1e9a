import Foundation
import Glibc
import SentinelTestSupport
import Testing
@testable import SentinelSystem

/// NOTIFY_SOCKET and WATCHDOG_* are process-global: the suite runs serialised and restores them.
@Suite("sd_notify through libsystemd", .serialized)
struct ServiceNotifierTests {
    /// Runs `body` with the given variables set (nil = unset), then restores what was there.
    func withEnvironment(_ values: [String: String?], _ body: () throws -> Void) rethrows {
        let saved = values.keys.map { ($0, getenv($0).map { String(cString: $0) }) }
        defer {
            for (key, value) in saved {
                if let value { setenv(key, value, 1) } else { unsetenv(key) }
            }
        }
        for (key, value) in values {
            if let value { setenv(key, value, 1) } else { unsetenv(key) }
        }
        try body()
    }

    @Test("no NOTIFY_SOCKET: disabled, and every send is a no-op")
    func disabled() {
        withEnvironment(["NOTIFY_SOCKET": nil]) {
            let notifier = ServiceNotifier()
            #expect(!notifier.isEnabled)
            #expect(!notifier.send(["READY=1"]))
        }
        withEnvironment(["NOTIFY_SOCKET": ""]) {
            #expect(!ServiceNotifier().isEnabled)
        }
    }

    @Test("each message is one datagram with the exact text", arguments: [false, true])
    func exactDatagrams(abstract: Bool) throws {
        let listener = try NotifyListener(abstract: abstract)
        try withEnvironment(["NOTIFY_SOCKET": listener.address]) {
            let notifier = ServiceNotifier()
            #expect(notifier.isEnabled)

            notifier.ready(status: "3 targets: 2 healthy,\n1 failed\r\n(split-libcrypto on api)")
            #expect(listener.receive() == "READY=1\nSTATUS=3 targets: 2 healthy, 1 failed (split-libcrypto on api)")

            notifier.status("cycle\n2\u{0} done")
            #expect(listener.receive() == "STATUS=cycle 2 done")

            notifier.watchdog()
            #expect(listener.receive() == "WATCHDOG=1")

            notifier.stopping(status: nil)
            #expect(listener.receive() == "STOPPING=1")

            notifier.stopping(status: "stopping:\nSIGTERM")
            #expect(listener.receive() == "STOPPING=1\nSTATUS=stopping: SIGTERM")

            #expect(notifier.send(["EXTEND_TIMEOUT_USEC=5000000", "STATUS=x"]))
            #expect(listener.receive() == "EXTEND_TIMEOUT_USEC=5000000\nSTATUS=x")
            // Nothing else was sent: the next receive times out.
            try #require(fcntl(listener.fd, F_SETFL, fcntl(listener.fd, F_GETFL) | O_NONBLOCK) == 0)
            #expect(listener.receive() == nil)
        }
    }

    @Test("RELOADING=1 and MONOTONIC_USEC arrive in ONE datagram with the current CLOCK_MONOTONIC", arguments: [false, true])
    func reloading(abstract: Bool) throws {
        let listener = try NotifyListener(abstract: abstract)
        try withEnvironment(["NOTIFY_SOCKET": listener.address]) {
            func now() -> UInt64 {
                var ts = timespec()
                clock_gettime(CLOCK_MONOTONIC, &ts)
                return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
            }
            let before = now()
            ServiceNotifier().reloading()
            let after = now()
            let datagram = try #require(listener.receive())
            let lines = datagram.split(separator: "\n", omittingEmptySubsequences: false)
            try #require(lines.count == 2, "got \(datagram.debugDescription)")
            #expect(lines[0] == "RELOADING=1")
            #expect(lines[1].hasPrefix("MONOTONIC_USEC="))
            let usec = try #require(UInt64(lines[1].dropFirst("MONOTONIC_USEC=".count)))
            #expect(usec >= before && usec <= after, "MONOTONIC_USEC \(usec) outside [\(before), \(after)]")
        }
    }

    @Test("watchdog interval: half of WATCHDOG_USEC when WATCHDOG_PID is unset or ours, else nil")
    func watchdogInterval() {
        let ours = String(getpid())
        withEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": nil]) {
            #expect(ServiceNotifier.watchdogInterval() == .seconds(15))
        }
        withEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": ours]) {
            #expect(ServiceNotifier.watchdogInterval() == .seconds(15))
        }
        // Another process's watchdog (a child that inherited the variables must not ping for its parent).
        withEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": String(getppid())]) {
            #expect(ServiceNotifier.watchdogInterval() == nil)
        }
        withEnvironment(["WATCHDOG_USEC": nil, "WATCHDOG_PID": ours]) {
            #expect(ServiceNotifier.watchdogInterval() == nil)
        }
        withEnvironment(["WATCHDOG_USEC": "soon", "WATCHDOG_PID": nil]) {
            #expect(ServiceNotifier.watchdogInterval() == nil)
        }
        withEnvironment(["WATCHDOG_USEC": "1000001", "WATCHDOG_PID": nil]) {
            #expect(ServiceNotifier.watchdogInterval() == .microseconds(500_000))
        }
        // The check does not consume the variables: the daemon may ask again after a reload.
        withEnvironment(["WATCHDOG_USEC": "4000000", "WATCHDOG_PID": ours]) {
            _ = ServiceNotifier.watchdogInterval()
            #expect(getenv("WATCHDOG_USEC") != nil)
            #expect(ServiceNotifier.watchdogInterval() == .seconds(2))
        }
    }
}
