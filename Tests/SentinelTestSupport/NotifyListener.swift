import Foundation
import Glibc
import SentinelCore

/// A real SOCK_DGRAM listener, as systemd binds for NOTIFY_SOCKET: a filesystem path or an abstract
/// `@name`. SO_PASSCRED makes the kernel attach each sender's pid, so datagrams from other processes
/// (a child of another suite that inherited NOTIFY_SOCKET while it was set) are skipped, as systemd's
/// NotifyAccess=main would.
/// Sender filtering is by the test process itself unless `accept(pid:)` names another (a daemon under test).
///
/// `draining: true` reads the socket all the time on a thread of its own, as systemd does, and keeps
/// the datagrams for `receive()`: the kernel queues at most net.unix.max_dgram_qlen (10 by default)
/// datagrams, after which the sender's sd_notify blocks, so a listener read only now and then stalls a
/// daemon that keeps sending WATCHDOG=1 and STATUS= (its cycle loop with it).
public final class NotifyListener {
    public let fd: Int32
    /// The NOTIFY_SOCKET value: a path, or "@name".
    public let address: String

    private let removeOnClose: Bool
    private let drain: Drain?

    public convenience init(abstract: Bool, draining: Bool = false) throws {
        let name = "sentinel-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try self.init(address: abstract ? "@" + name : "/tmp/" + name + ".sock", removeOnClose: true, draining: draining)
    }

    /// A listener on `path` whose file stays after close (a stale socket, as a killed journald leaves).
    public convenience init(path: String) throws {
        try self.init(address: path, removeOnClose: false, draining: false)
    }

    private init(address: String, removeOnClose: Bool, draining: Bool) throws {
        self.address = address
        self.removeOnClose = removeOnClose
        let abstract = address.hasPrefix("@")
        let name = String(address.dropFirst())
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FixtureScriptError(message: "socket: \(String(cString: strerror(errno)))") }
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
            throw FixtureScriptError(message: "bind \(address): \(reason)")
        }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: draining ? 0 : 3, tv_usec: draining ? 200_000 : 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.fd = fd
        drain = draining ? Drain(fd: fd) : nil
    }

    deinit {
        drain?.stop()   // joins the reader thread before the descriptor is closed (and maybe reused)
        close(fd)
        if removeOnClose && !address.hasPrefix("@") { unlink(address) }
    }

    /// The next datagram this process sent, or nil after the timeout (3 s). One recv is one message.
    public func receive() -> String? {
        guard let drain else {
            while true {
                guard let (pid, text) = Self.receiveOne(fd) else { return nil }
                if let pid, pid != (accepted ?? getpid()) { continue }
                return text
            }
        }
        while let (pid, text) = drain.next(timeout: 3) {
            if let pid, pid != (accepted ?? getpid()) { continue }
            return text
        }
        return nil
    }

    /// One datagram and its sender's pid (SCM_CREDENTIALS), or nil after SO_RCVTIMEO.
    static func receiveOne(_ fd: Int32) -> (pid_t?, String)? {
        var controlLength = 0
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
        return (senderPID(control, length: controlLength), String(decoding: data.prefix(n), as: UTF8.self))
    }

    private var accepted: pid_t?

    /// Datagrams from this pid only (a daemon the test started), instead of from this process.
    public func accept(pid: pid_t) { accepted = pid }

    /// SCM_CREDENTIALS from the control buffer: cmsghdr {size_t len; int level; int type} then ucred.
    private static func senderPID(_ control: [UInt8], length: Int) -> pid_t? {
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

/// The reader thread of a draining listener: every datagram in arrival order, with its sender (the
/// pid filter applies when one is taken, so datagrams sent before `accept(pid:)` are not lost).
final class Drain: Sendable {
    private let queue = Locked<[(pid: pid_t?, text: String)]>([])
    private let arrived = DispatchSemaphore(value: 0)
    private let stopping = Locked(false)
    private let finished = DispatchSemaphore(value: 0)

    init(fd: Int32) {
        Thread { [self] in
            while !stopping.withLock({ $0 }) {
                guard let (pid, text) = NotifyListener.receiveOne(fd) else { continue }   // nil: SO_RCVTIMEO
                queue.withLock { $0.append((pid, text)) }
                arrived.signal()
            }
            finished.signal()
        }.start()
    }

    func next(timeout seconds: Double) -> (pid_t?, String)? {
        guard arrived.wait(timeout: .now() + seconds) == .success else { return nil }
        return queue.withLock { $0.removeFirst() }
    }

    /// Returns once the thread has stopped reading (within one SO_RCVTIMEO).
    func stop() {
        stopping.withLock { $0 = true }
        finished.wait()
    }
}
