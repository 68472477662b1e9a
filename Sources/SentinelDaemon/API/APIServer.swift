import CLibSystemd
import Dispatch
import FoundationEssentials
import Glibc
import NIOCore
import NIOPosix
import SentinelCore
import ServiceLifecycle
import Synchronization

/// What `POST /v1/scan` did: cycles never overlap, so a second request while one is queued is a no-op.
public enum ScanRequestOutcome: Sendable { case started, alreadyPending }

/// Bounds on what one client may cost the daemon.
public struct APILimits: Sendable {
    public var maxHeaderBytes: Int
    public var maxBodyBytes: Int
    public var maxRequestLineBytes: Int
    /// From a request's first byte until it is complete; then 408 and close.
    public var headerTimeout: TimeAmount
    /// A keep-alive connection with no request in progress is closed after this.
    public var idleTimeout: TimeAmount
    /// When full, the oldest idle or slow connection is shed; if none is, the new one gets 503.
    public var maxConnections: Int
    /// Event loop threads. One: the answers are ready bytes, so one thread serves 0.7–0.8x of nginx's two
    /// workers on a 2-core machine, and a second thread only competed with the clients and the cycle
    /// for the cores (p99 at 64 clients 3.3–4.3 ms with two, 1.1–3.7 ms with one; README).
    public var threads: Int

    public init(maxHeaderBytes: Int = 8192, maxBodyBytes: Int = 4096, maxRequestLineBytes: Int = 4096,
                headerTimeout: TimeAmount = .seconds(5), idleTimeout: TimeAmount = .seconds(30),
                maxConnections: Int = 512, threads: Int = 1) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        self.maxRequestLineBytes = maxRequestLineBytes
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.threads = max(1, threads)
    }

    var parser: HTTPParserLimits {
        HTTPParserLimits(maxRequestLineBytes: maxRequestLineBytes, maxHeaderBytes: maxHeaderBytes, maxBodyBytes: maxBodyBytes)
    }
}

/// A one-line reason why the API could not start.
public struct APIServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The Unix-socket HTTP/1.1 API. Every answer is served from the StateBoard's pre-encoded bytes, so a
/// query never waits for a cycle.
public final class APIServer: Sendable {
    let board: StateBoard
    let metrics: DaemonMetrics
    let scanGroup: gid_t?
    let limits: APILimits
    let requestScan: @Sendable () -> ScanRequestOutcome
    let connections = ConnectionTable()
    let router: Router

    private struct Running: @unchecked Sendable {  // MultiThreadedEventLoopGroup is Sendable; the tuple fields are values.
        var group: MultiThreadedEventLoopGroup
        var channel: Channel
        /// The socket file we created (nil when systemd passed the socket): removed on stop if still ours.
        var socketFile: (path: String, dev: UInt64, ino: UInt64)?
    }
    private let running = Locked<Running?>(nil)
    /// maxConnections, lowered at start so the open-file limit is never what refuses a client: at EMFILE
    /// the kernel queue fills while accept fails, and nobody (not even /v1/health) gets in.
    private let connectionLimit = Atomic<Int>(0)

    public init(board: StateBoard, metrics: DaemonMetrics, scanGroup: gid_t?, limits: APILimits = .init(),
                requestScan: @escaping @Sendable () -> ScanRequestOutcome) {
        self.board = board
        self.metrics = metrics
        self.scanGroup = scanGroup
        self.limits = limits
        self.requestScan = requestScan
        self.router = Router(board: board, metrics: metrics)
    }

    /// True when the listening socket came from systemd (LISTEN_FDS) rather than our own bind.
    public var isSocketActivated: Bool { running.withLock { $0 != nil && $0?.socketFile == nil } }

    /// Open client connections (for tests and the hostile-client checks).
    public var connectionCount: Int { connections.count }

    /// The connection bound in force (APILimits.maxConnections, or less under a low RLIMIT_NOFILE).
    public var maxConnections: Int { connectionLimit.load(ordering: .relaxed) }

    /// Keeps `reserve` descriptors for everything else the daemon opens (probes, journal, state files).
    static func connectionLimit(configured: Int, reserve: Int = 64) -> Int {
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return configured }
        // RLIM_INFINITY is all ones: clamping makes it Int.max.
        return max(1, min(configured, Int(clamping: rl.rlim_cur) - reserve))
    }

    /// Adopts a socket-activated fd bound to `socketPath` (or the only one passed), else binds the path
    /// with mode 0660 and `group`. Returns once the socket accepts connections.
    public func start(socketPath: String, group: gid_t?) async throws {
        guard running.withLock({ $0 == nil }) else { throw APIServerError("the API server is already running") }
        // 0 stays 0: refusing everyone is a valid (test) configuration.
        connectionLimit.store(limits.maxConnections == 0 ? 0 : Self.connectionLimit(configured: limits.maxConnections),
                              ordering: .relaxed)
        let elg = MultiThreadedEventLoopGroup(numberOfThreads: limits.threads)
        let bootstrap = ServerBootstrap(group: elg)
            .serverChannelOption(.backlog, value: 256)
            .childChannelInitializer { [self] channel in initialize(channel) }
        do {
            let next: Running
            if let fd = Self.activatedSocket(path: socketPath) {
                let channel = try await bootstrap.withBoundSocket(fd).get()
                next = Running(group: elg, channel: channel, socketFile: nil)
            } else {
                let (channel, file) = try await bindPath(bootstrap, path: socketPath, group: group)
                next = Running(group: elg, channel: channel, socketFile: file)
            }
            running.withLock { $0 = next }
        } catch {
            try? await elg.shutdownGracefully()
            if let error = error as? APIServerError { throw error }
            throw APIServerError("cannot listen on \(socketPath): \(error)")
        }
    }

    /// Closes the listener and every connection, and removes the socket file we created.
    public func stop() async {
        guard let r = running.withLock({ s -> Running? in defer { s = nil }; return s }) else { return }
        try? await r.channel.close()
        for c in connections.all() { c.channel.close(promise: nil) }
        if let file = r.socketFile {
            var st = stat()
            // Only our own inode: a new daemon may already have bound the path.
            if lstat(file.path, &st) == 0, UInt64(st.st_dev) == file.dev, UInt64(st.st_ino) == file.ino { unlink(file.path) }
        }
        try? await r.group.shutdownGracefully()
    }

    // MARK: Listening socket

    /// The fd systemd passed for this path; or the single one passed when the unit names another path.
    static func activatedSocket(path: String) -> CInt? {
        let n = sentinel_sd_listen_fds(0)
        guard n > 0 else { return nil }
        let stream = CInt(SOCK_STREAM.rawValue)
        var candidate: CInt?
        for fd in SD_LISTEN_FDS_START..<(SD_LISTEN_FDS_START + n) {
            if sentinel_sd_is_socket_unix(fd, stream, 1, path, 0) > 0 { candidate = fd; break }
            if n == 1, sentinel_sd_is_socket_unix(fd, stream, 1, nil, 0) > 0 { candidate = fd }
        }
        guard let fd = candidate else { return nil }
        // Children (probes, POST commands) must not believe the socket is theirs.
        unsetenv("LISTEN_PID"); unsetenv("LISTEN_FDS"); unsetenv("LISTEN_FDNAMES")
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }

    /// Binds a temporary name, sets mode and group, then renames it into place: the socket is never
    /// reachable with the umask's looser mode.
    private func bindPath(_ bootstrap: ServerBootstrap, path: String, group: gid_t?) async throws
        -> (Channel, (path: String, dev: UInt64, ino: UInt64)) {
        let temp = path + ".\(getpid()).new"
        guard temp.utf8.count < 108 else { throw APIServerError("socket path too long (at most 90 bytes): \(path)") }
        let dir = LoaderResolver.dirname(path)
        if !dir.isEmpty, mkdir(dir, 0o755) != 0, errno != EEXIST {
            throw APIServerError("cannot create \(dir): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else { throw APIServerError("\(path) exists and is not a socket") }
            if Self.someoneListens(path) { throw APIServerError("another process already listens on \(path)") }
        }
        unlink(temp)
        let channel = try await bootstrap.bind(unixDomainSocketPath: temp).get()
        func fail(_ what: String) async -> APIServerError {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            unlink(temp)
            return APIServerError("\(what) \(path): \(reason)")
        }
        if chmod(temp, 0o660) != 0 { throw await fail("cannot chmod 0660") }
        if let group, chown(temp, uid_t.max, group) != 0 { throw await fail("cannot give group \(group) to") }
        if rename(temp, path) != 0 { throw await fail("cannot move the socket to") }
        guard lstat(path, &st) == 0 else { throw await fail("cannot stat") }
        return (channel, (path, UInt64(st.st_dev), UInt64(st.st_ino)))
    }

    /// A live daemon still answers on a socket file; a stale one (crash, kill -9) refuses.
    static func someoneListens(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
    }

    // MARK: Connections

    private func initialize(_ channel: Channel) -> EventLoopFuture<Void> {
        let record = ConnectionRecord(channel: channel)
        let admitted: Bool
        switch connections.admit(record, limit: connectionLimit.load(ordering: .relaxed)) {
        case .admitted(let shed):
            admitted = true
            shed?.channel.close(promise: nil)
        case .refused:
            admitted = false
        }
        if admitted {
            channel.closeFuture.whenComplete { [connections] _ in connections.remove(record) }
        }
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                APIConnectionHandler(server: self, record: record, refused: !admitted))
        }
    }

    // MARK: Authorisation

    /// Root, or a peer whose primary or supplementary groups include the scan group.
    func mayRequestScan(_ peer: PeerCredentials) -> Bool {
        if peer.uid == 0 { return true }
        guard let scanGroup else { return false }
        if peer.gid == scanGroup { return true }
        return Self.supplementaryGroups(pid: peer.pid).contains(scanGroup)
    }

    /// The `Groups:` line of /proc/PID/status (empty when the peer is gone: deny).
    static func supplementaryGroups(pid: pid_t) -> [gid_t] {
        guard pid > 0 else { return [] }
        let fd = open("/proc/\(pid)/status", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 16 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Groups:") }) else { return [] }
        return line.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { gid_t($0) }
    }
}

/// `struct ucred` of SO_PEERCRED (glibc hides it behind _GNU_SOURCE): same three 32-bit fields, same order.
struct PeerCredentials: Sendable {
    var pid: pid_t = 0
    var uid: uid_t = 0
    var gid: gid_t = 0
}

/// The API as a swift-service-lifecycle service: start the server first, then run this in the
/// ServiceGroup; graceful shutdown (SIGTERM) or cancellation stops it.
public struct APIService: Service {
    public let server: APIServer
    public init(server: APIServer) { self.server = server }

    public func run() async throws {
        // Throws CancellationError when the group cancels us instead of shutting down gracefully.
        try? await gracefulShutdown()
        await server.stop()
    }
}
