import Dispatch
import FoundationEssentials
import CLinux
import Glibc
import SentinelCore

/// Spawns the native probe (or the product's own POST command) in a fresh child: exactly the given
/// environment (minus NOTIFY_SOCKET / WATCHDOG_*), the service's cwd, uid and gid with supplementary
/// groups reset, a new session, a timeout with SIGKILL to the whole process group, and an output cap.
///
/// posix_spawn (POSIX_SPAWN_SETSID) rather than swift-subprocess: spawning needs no pre-exec hook
/// because the probe drops privileges itself (setgroups([gid]), setgid, setuid, checked, then
/// PR_SET_NO_NEW_PRIVS and rlimits) before anything of OpenSSL loads, and `--command` goes through
/// the same probe in --exec mode. That keeps one code path for both and no extra package to build.
/// The price of dropping privileges inside the probe (posix_spawn cannot change the uid): the probe
/// is exec'd as root, so it must not be exec'd with the service's environment (ld.so would honour a
/// service-controlled LD_PRELOAD in a root process). It starts with an empty environment, reads the
/// service's from stdin, drops privileges, and only then re-executes itself with it.
public struct PostRunner: Sendable {
    public struct Identity: Sendable, Hashable {
        public var uid: UInt32, gid: UInt32
        public init(uid: UInt32, gid: UInt32) { self.uid = uid; self.gid = gid }
    }
    /// The running process a POST follows: the probe takes its mount namespace, root, cwd and
    /// capability bounds from /proc/PID, refusing it when the start time no longer matches.
    public struct Process: Sendable, Hashable {
        public var pid: Int32, startTime: UInt64?
        public init(pid: Int32, startTime: UInt64?) { self.pid = pid; self.startTime = startTime }
    }

    public var probe: String
    public var timeout: Double
    public var outputCap: Int

    public init(probe: String, timeout: Double = 10, outputCap: Int = 1 << 20) {
        self.probe = probe; self.timeout = timeout; self.outputCap = outputCap
    }

    /// The probe beside the running executable, or $SENTINEL_PROBE; nil when the one chosen is not
    /// executable (a wrong $SENTINEL_PROBE is reported at start, not as a spawn failure per POST).
    /// getenv and readlink rather than ProcessInfo/FileManager/URL: this runs before every POST spawn,
    /// and Foundation's first use of each costs more than the lookup itself.
    public static func locateProbe() -> String? {
        if let p = getenv("SENTINEL_PROBE").map({ String(cString: $0) }), !p.isEmpty { return access(p, X_OK) == 0 ? p : nil }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, Int(PATH_MAX))
        guard n > 0 else { return nil }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return nil }
        let candidate = String(exe[...slash]) + "sentinel-probe"
        return access(candidate, X_OK) == 0 ? candidate : nil
    }

    /// Variables a POST child must never see: it would talk to systemd as if it were the service.
    public static func childEnvironment(_ env: [String: String]) -> [String: String] {
        env.filter { $0.key != "NOTIFY_SOCKET" && !$0.key.hasPrefix("WATCHDOG_") }
    }

    /// `mappedRange`: the library is the file `process` maps at that range (deleted or replaced on disk).
    /// `operations`: named operations (PostOperations) the probe performs after its own checks.
    public func runProbe(library: String, environment: [String: String], cwd: String?, identity: Identity?,
                         process: Process? = nil, mappedRange: String? = nil, operations: [String] = []) -> PostRun {
        let ops = operations.isEmpty ? [] : ["--ops", operations.joined(separator: ",")]
        let r = spawn(mode: (mappedRange.map { ["--mapped", $0] } ?? []) + ops + [library], environment: environment, cwd: cwd,
                      identity: identity, process: process)
        let outcome: PostOutcome
        switch r.end {
        case .timedOut: outcome = .timedOut(seconds: timeout)
        case .signaled(let s): outcome = .signaled(s)
        case .exited(let status):
            let doc = r.overCap ? nil : StrictJSON.parse(r.stdout)
            outcome = .exited(status: status, result: doc.flatMap { if case .object = $0 { return $0 } else { return nil } })
        }
        // Only the probe's own lines: anything else on its stderr or stdout comes from code of the
        // service's (an LD_PRELOAD, ld.so echoing LD_AUDIT=…) and may carry its environment's values.
        return PostRun(library: library, outcome: outcome, stderrTail: Self.tail(Self.probeLines(r.stderr), lines: 12), elapsedMs: r.elapsedMs)
    }

    /// The product's own POST program, under the same environment, uid and timeout.
    public func runCommand(_ argv: [String], environment: [String: String], cwd: String?, identity: Identity?, process: Process? = nil) -> (PostOutcome, String, Int) {
        let r = spawn(mode: ["--exec", "--"] + argv, environment: environment, cwd: cwd, identity: identity, process: process, mergeOutput: true)
        let outcome: PostOutcome
        switch r.end {
        case .timedOut: outcome = .timedOut(seconds: timeout)
        case .signaled(let s): outcome = .signaled(s)
        case .exited(let status): outcome = .exited(status: status, result: nil)
        }
        return (outcome, Self.tail(r.stdout + r.stderr, lines: 20), r.elapsedMs)
    }

    /// Children now running (each leads its own session): a daemon stopping mid-cycle kills them all.
    static let running = Locked(Set<pid_t>())

    /// SIGKILL to every running POST child's process group (daemon shutdown mid-cycle).
    public static func killRunning() {
        running.withLock { for pid in $0 { kill(-pid, SIGKILL) } }
    }

    enum End { case exited(Int32), signaled(Int32), timedOut }
    struct Raw { var end: End; var stdout: [UInt8]; var stderr: [UInt8]; var overCap: Bool; var elapsedMs: Int }

    /// CLOCK_MONOTONIC without libdispatch (DispatchTime initialises it: measurable on a 10 ms POST).
    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The last `lines` lines (of the last 8 KiB), ASCII whitespace trimmed. Cut on bytes, decoded once:
    /// it runs after every child, and String's Character views (and Foundation's trimmingCharacters)
    /// cost more on first use than the cut itself.
    static func tail(_ bytes: [UInt8], lines: Int) -> String {
        let window = bytes.suffix(8192)
        var start = window.startIndex
        var newlines = 0
        for i in window.indices.reversed() where window[i] == UInt8(ascii: "\n") {
            newlines += 1
            if newlines > lines { start = i + 1; break }
        }
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (0x09...0x0d).contains(b) }
        var kept = window[start...]
        while let b = kept.first, isSpace(b) { kept.removeFirst() }
        while let b = kept.last, isSpace(b) { kept.removeLast() }
        return String(decoding: kept, as: UTF8.self)
    }

    /// The lines the probe writes itself ("sentinel-probe: …").
    static func probeLines(_ bytes: [UInt8]) -> [UInt8] {
        let prefix = Array("sentinel-probe: ".utf8)
        var out: [UInt8] = []
        for line in bytes.split(separator: UInt8(ascii: "\n")) where line.starts(with: prefix) { out += line; out.append(UInt8(ascii: "\n")) }
        return out
    }

    /// A child spawned and fed its environment on stdin from `finish`'s loop.
    struct Child: Sendable {
        var pid: pid_t, outFD: Int32, errFD: Int32, inFD: Int32
        var pendingIn: ArraySlice<UInt8>, start: UInt64
    }
    enum Started { case running(Child), failed(Raw) }

    func spawn(mode: [String], environment: [String: String], cwd: String?, identity: Identity?, process: Process?, mergeOutput: Bool = false) -> Raw {
        switch start(mode: mode, environment: environment, cwd: cwd, identity: identity, process: process, mergeOutput: mergeOutput) {
        case .running(let child): return finish(child)
        case .failed(let raw): return raw
        }
    }

    func start(mode: [String], environment: [String: String], cwd: String?, identity: Identity?, process: Process?, mergeOutput: Bool = false) -> Started {
        var args = [probe]
        if let identity { args += ["--uid", String(identity.uid), "--gid", String(identity.gid)] }
        if let process {
            args += ["--pid", String(process.pid)]
            if let t = process.startTime { args += ["--start-time", String(t)] }
        } else if let cwd { args += ["--cwd", cwd] }
        // The service's environment goes to the probe on stdin: the probe starts (maybe as root) with
        // an empty one and hands it to ld.so only after dropping privileges (see probe.c).
        args += ["--env-stdin"] + mode
        var envBlock: [UInt8] = []
        for (k, v) in Self.childEnvironment(environment).sorted(by: { $0.key < $1.key }) {
            envBlock += Array("\(k)=\(v)".utf8) + [0]
        }
        let envStrings: [String] = []
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
        guard pipe2(&outPipe, O_CLOEXEC) == 0, pipe2(&errPipe, O_CLOEXEC) == 0, pipe2(&inPipe, O_CLOEXEC) == 0 else {
            return .failed(Raw(end: .exited(127), stdout: [], stderr: Array("pipe: \(String(cString: strerror(errno)))".utf8), overCap: false, elapsedMs: 0))
        }
        _ = fcntl(inPipe[1], F_SETFL, O_NONBLOCK)
        // A child that exits before reading its stdin must not kill us with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, mergeOutput ? outPipe[1] : errPipe[1], 2)
        // The child gets 0-2 and nothing else: not the API's sockets, the selector's epoll or eventfd,
        // another thread's pipes, nor a file the caller had open (the probe closes them again itself).
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var all = sigset_t(); sigfillset(&all)
        var none = sigset_t(); sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setsigmask(&attr, &none)
        // POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID (0x80, glibc ≥ 2.26)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | 0x80))

        let start = Self.monotonicNanos()
        var pid: pid_t = 0
        let argvC = args.map { strdup($0) } + [nil]
        let envC = envStrings.map { strdup($0) } + [nil]
        defer { argvC.forEach { free($0) }; envC.forEach { free($0) } }
        var rc = posix_spawn(&pid, probe, &actions, &attr, argvC, envC)
        // ETXTBSY: another thread's fork briefly holds a write descriptor of a freshly written file.
        for _ in 0..<20 where rc == ETXTBSY {
            usleep(10_000)
            rc = posix_spawn(&pid, probe, &actions, &attr, argvC, envC)
        }
        close(outPipe[1]); close(errPipe[1]); close(inPipe[0])
        if rc == 0 { Self.running.withLock { _ = $0.insert(pid) } }
        var inFD: Int32 = inPipe[1]
        if envBlock.isEmpty { close(inFD); inFD = -1 }
        guard rc == 0 else {
            if inFD >= 0 { close(inFD) }
            close(outPipe[0]); close(errPipe[0])
            return .failed(Raw(end: .exited(127), stdout: [], stderr: Array("cannot run \(probe): \(String(cString: strerror(rc)))".utf8), overCap: false, elapsedMs: 0))
        }
        var pendingIn = envBlock[...]
        if inFD >= 0 {
            // Most environments fit in the pipe: written at once, the rest from finish()'s loop.
            let wrote = pendingIn.withUnsafeBytes { write(inFD, $0.baseAddress, $0.count) }
            if wrote > 0 { pendingIn = pendingIn.dropFirst(wrote) }
            if pendingIn.isEmpty { close(inFD); inFD = -1 }
        }
        return .running(Child(pid: pid, outFD: outPipe[0], errFD: errPipe[0], inFD: inFD, pendingIn: pendingIn, start: start))
    }

    /// Feeds, reads, times out and reaps a started child.
    func finish(_ child: Child) -> Raw {
        let pid = child.pid, start = child.start
        var pendingIn = child.pendingIn
        var inFD = child.inFD
        // Callers bound the timeout; a day caps what reaches the conversion (a Double past UInt64 traps).
        let deadline = start + UInt64(min(max(timeout, 0), 86_400) * 1e9)
        var out: [UInt8] = [], err: [UInt8] = []
        var open = [child.outFD, child.errFD]
        var overCap = false, timedOut = false
        var buf = [UInt8](repeating: 0, count: 65536)
        var status: Int32 = 0
        var reaped = false
        var exitPoll: UInt32 = 20
        while true {
            let now = Self.monotonicNanos()
            if now >= deadline { timedOut = true; break }
            if open.isEmpty {
                // Both pipes closed: wait for the exit itself (still bounded by the deadline).
                let w = waitpid(pid, &status, WNOHANG)
                if w == pid { reaped = true; break }
                // The pipes close a moment before the exit is reported: poll soon, then back off.
                usleep(exitPoll); exitPoll = min(exitPoll * 2, 1000); continue
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if inFD >= 0 { fds.append(pollfd(fd: inFD, events: Int16(POLLOUT), revents: 0)) }
            let ms = Int32(min(UInt64(Int32.max), (deadline - now) / 1_000_000 + 1))
            let n = poll(&fds, nfds_t(fds.count), ms)
            if n < 0 && errno == EINTR { continue }
            for f in fds where f.revents != 0 {
                if f.fd == inFD {
                    let wrote = pendingIn.withUnsafeBytes { write(inFD, $0.baseAddress, $0.count) }
                    if wrote > 0 { pendingIn = pendingIn.dropFirst(wrote) }
                    if pendingIn.isEmpty || (wrote < 0 && errno != EAGAIN && errno != EINTR) { close(inFD); inFD = -1 }
                    continue
                }
                let got = read(f.fd, &buf, buf.count)
                if got <= 0 { close(f.fd); open.removeAll { $0 == f.fd }; continue }
                if f.fd == child.outFD { out += buf[0..<got] } else { err += buf[0..<got]; if err.count > 65536 { err.removeFirst(err.count - 65536) } }
                if out.count > outputCap { overCap = true }
            }
            if overCap { break }
        }
        // Whatever happened, nothing of the child's session survives it.
        kill(-pid, SIGKILL)
        for fd in open { close(fd) }
        if inFD >= 0 { close(inFD) }
        if !reaped { while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
        Self.running.withLock { _ = $0.remove(pid) }
        let elapsed = Int((Self.monotonicNanos() - start) / 1_000_000)
        let end: End
        if timedOut { end = .timedOut }
        else if (status & 0x7f) == 0 { end = .exited((status >> 8) & 0xff) }
        else { end = .signaled(status & 0x7f) }
        return Raw(end: overCap && !timedOut ? .exited(-1) : end, stdout: out, stderr: err, overCap: overCap, elapsedMs: elapsed)
    }
}
