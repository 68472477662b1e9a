import Foundation
import Glibc
import Testing
@testable import SentinelSystem

/// A real SOCK_DGRAM listener, as systemd binds for NOTIFY_SOCKET: a filesystem path or an abstract
/// `@name`. SO_PASSCRED makes the kernel attach each sender's pid, so datagrams from other processes
/// (a child of another suite that inherited NOTIFY_SOCKET while it was set) are skipped, as systemd's
/// NotifyAccess=main would.
final class NotifyListener {
    let fd: Int32
    /// The NOTIFY_SOCKET value: a path, or "@name".
    let address: String

    private let removeOnClose: Bool

    convenience init(abstract: Bool) throws {
        let name = "sentinel-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try self.init(address: abstract ? "@" + name : "/tmp/" + name + ".sock", removeOnClose: true)
    }

    /// A listener on `path` whose file stays after close (a stale socket, as a killed journald leaves).
    convenience init(path: String) throws {
        try self.init(address: path, removeOnClose: false)
    }

    private init(address: String, removeOnClose: Bool) throws {
        self.address = address
        self.removeOnClose = removeOnClose
        let abstract = address.hasPrefix("@")
        let name = String(address.dropFirst())
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(name.utf8)
        let pathBytes = abstract ? [0] + bytes : Array(address.utf8) + [0]
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
        }
        // An abstract name's length is exact (no terminating NUL); a path's may include the rest.
        let length = abstract ? socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count) : socklen_t(MemoryLayout<sockaddr_un>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw FixtureError("bind \(address): \(reason)")
        }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        if removeOnClose && !address.hasPrefix("@") { unlink(address) }
    }

    /// The next datagram this process sent, or nil after the timeout. One recv is one message.
    func receive() -> String? {
        while true {
            var data = [UInt8](repeating: 0, count: 4096)
            var control = [UInt8](repeating: 0, count: 256)
            let n = data.withUnsafeMutableBytes { dataRaw in
                control.withUnsafeMutableBytes { controlRaw in
                    var iov = iovec(iov_base: dataRaw.baseAddress, iov_len: dataRaw.count)
                    return withUnsafeMutablePointer(to: &iov) { iovPtr in
                        var msg = msghdr()
                        msg.msg_iov = iovPtr
                        msg.msg_iovlen = 1
                        msg.msg_control = controlRaw.baseAddress
                        msg.msg_controllen = controlRaw.count
                        let n = recvmsg(fd, &msg, 0)
                        controlLength = Int(msg.msg_controllen)
                        return n
                    }
                }
            }
            guard n >= 0 else { return nil }
            if let pid = senderPID(control, length: controlLength), pid != getpid() { continue }
            return String(decoding: data.prefix(n), as: UTF8.self)
        }
    }

    private var controlLength = 0

    /// SCM_CREDENTIALS from the control buffer: cmsghdr {size_t len; int level; int type} then ucred.
    private func senderPID(_ control: [UInt8], length: Int) -> pid_t? {
        let header = MemoryLayout<Int>.size + 8
        var offset = 0
        while offset + header <= length {
            let len = control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Int.self) }
            let level = control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + MemoryLayout<Int>.size, as: Int32.self) }
            let type = control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + MemoryLayout<Int>.size + 4, as: Int32.self) }
            if level == SOL_SOCKET, type == 2 /* SCM_CREDENTIALS, not exported by Glibc's module */, offset + header + 4 <= length {
                return control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + header, as: pid_t.self) }
            }
            guard len > 0 else { return nil }
            offset += (len + 7) & ~7
        }
        return nil
    }
}

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
