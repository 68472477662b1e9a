import CLinux
import Glibc
import SentinelCore
import SentinelSystem

/// Notices between cycles that the live picture changed — a service (re)started or stopped, a process
/// that maps OpenSSL appeared or exited — so the scheduler runs a cycle at once instead of waiting for
/// the interval. Cheap by design: each tick lists /proc and reads stat, maps, cgroup and exe only of
/// pids it has not seen before, of young ones, and of those whose process exited. (A library
/// dlopen()ed later by a known process waits for the next cycle.)
/// A process is its pid *and* its start time: a pid handed out again between two ticks is a new
/// process, read afresh, and changes the fingerprint even when it runs the same executable. A known
/// pid still listed is the same process as long as its pidfd has not reported an exit; a pid without
/// a pidfd (none left, or the kernel refuses them) has its start time read every tick instead.
final class LiveWatcher {
    struct Info {
        var start: UInt64?; var openssl: Bool; var unit: String?; var exe: (UInt64, UInt64)?; var ours: Bool; var firstSeen: Int
        /// In `exits` when >= 0.
        var pidfd: Int32 = -1
        /// What the fingerprint holds for this process.
        func mark(_ pid: Int32) -> String { "\(pid)@\(start.map(String.init) ?? "?")" }
    }
    private var known: [Int32: Info] = [:]
    private var tick = 0
    /// A young process is read again for a few ticks: it is moved into its unit's cgroup and loads
    /// OpenSSL only after it becomes visible (systemd forks, then moves, then execs; dlopen comes later).
    static let settleTicks = 5
    private let procRoot: String
    private let reader: ProcReader
    private var last: Set<String>?
    /// The pidfds, keyed by pid: readable once their process has exited.
    private let exits: Int32
    private var pidfds = 0
    private var maxPidfds: Int
    /// /proc/PID/stat files read in the last tick: what the idle cost grows with.
    private(set) var statReads = 0

    init(procRoot: String = "/proc", maxPidfds: Int = LiveWatcher.pidfdBudget()) {
        self.procRoot = procRoot
        reader = ProcReader(procRoot: procRoot)
        exits = epoll_create1(Int32(EPOLL_CLOEXEC))
        self.maxPidfds = exits >= 0 ? maxPidfds : 0
    }

    deinit {
        for info in known.values where info.pidfd >= 0 { close(info.pidfd) }
        if exits >= 0 { close(exits) }
    }

    /// One pidfd per process would take a host's whole process count of descriptors: they get what the
    /// open-file limit leaves above 1,024, which stays for the API (at most 512 connections and its
    /// reserve) and the cycle. The shipped unit's LimitNOFILE=4096 leaves 3,072.
    static func pidfdBudget() -> Int {
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return 0 }
        return max(0, Int(clamping: rl.rlim_cur) - 1024)
    }

    /// True when the fingerprint differs from the previous tick's (never on the first tick).
    func changed(_ config: DaemonConfig) -> Bool {
        let now = fingerprint(config)
        defer { last = now }
        return last.map { $0 != now } ?? false
    }

    func fingerprint(_ config: DaemonConfig) -> Set<String> {
        let me = getpid()
        tick += 1
        statReads = 0
        let exited = exitedPIDs()
        let pids = reader.allPIDs()
        let listed = Set(pids)
        for pid in known.keys where !listed.contains(pid) { forget(known.removeValue(forKey: pid)!) }
        for pid in pids where pid != me {
            let old = known[pid]
            if let old, old.pidfd >= 0, !exited.contains(pid), tick - old.firstSeen > Self.settleTicks { continue }
            var pidfd = old?.pidfd ?? -1
            if pidfd >= 0, exited.contains(pid) { forget(pidfd); pidfd = -1 }
            // Opened before stat is read, the pidfd names the process read or a later one at this pid,
            // never an earlier one: an exit in between shows at the next tick.
            if pidfd < 0 { pidfd = watch(pid) }
            let (start, ppid) = readStat(pid)
            if let old, old.start == start {
                known[pid]!.pidfd = pidfd
                // Exited but still listed (a zombie), or watched without a pidfd: nothing else changed.
                if tick - old.firstSeen > Self.settleTicks { continue }
            }
            var fresh = info(pid, start: start, ppid: ppid, me: me)
            fresh.pidfd = pidfd
            if let old, old.start == start { fresh.firstSeen = old.firstSeen }
            known[pid] = fresh
        }
        var marks = Set<String>()
        for service in config.services {
            switch service.selector {
            case .unit(let unit):
                let u = CgroupUnit.normalise(unit)
                for (pid, i) in known where i.unit == u { marks.insert("\(service.name):" + i.mark(pid)) }
            case .exe(let path):
                var st = stat()
                guard stat(path, &st) == 0 else { continue }
                for (pid, i) in known where i.exe.map({ $0 == (UInt64(st.st_dev), UInt64(st.st_ino)) }) == true {
                    marks.insert("\(service.name):" + i.mark(pid))
                }
            case .pidFile(let file):
                if let pid = try? ProcReader.pid(fromFile: file), let i = known[pid] { marks.insert("\(service.name):" + i.mark(pid)) }
            }
        }
        if config.discover.enabled {
            for (pid, i) in known where i.openssl && !i.ours { marks.insert("p:" + i.mark(pid)) }
        }
        return marks
    }

    /// A pidfd for `pid` in `exits`, or -1 (none left, the process is gone, or pidfds are refused:
    /// an old kernel or a seccomp filter, after which none is asked for again).
    private func watch(_ pid: Int32) -> Int32 {
        guard pidfds < maxPidfds else { return -1 }
        let fd = sentinel_pidfd_open(pid)
        guard fd >= 0 else {
            if errno == ENOSYS || errno == EPERM { maxPidfds = 0 }
            return -1
        }
        guard sentinel_epoll_add(exits, fd, UInt64(UInt32(bitPattern: pid))) == 0 else { close(fd); return -1 }
        pidfds += 1
        return fd
    }

    private func forget(_ pidfd: Int32) {
        guard pidfd >= 0 else { return }
        close(pidfd)  // also leaves `exits`
        pidfds -= 1
    }

    private func forget(_ info: Info) { forget(info.pidfd) }

    /// Pids whose process has exited since their pidfd was opened (each is closed this tick, so one
    /// left out by the batch size is reported at the next).
    private func exitedPIDs() -> Set<Int32> {
        guard pidfds > 0 else { return [] }
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 256) { keys in
            let n = sentinel_epoll_ready(exits, keys.baseAddress, Int32(keys.count))
            return n > 0 ? Set(keys[0..<Int(n)].map { Int32(bitPattern: UInt32(truncatingIfNeeded: $0)) }) : []
        }
    }

    /// Start time and parent pid from one read of /proc/PID/stat; nils when it is gone.
    private func readStat(_ pid: Int32) -> (UInt64?, Int32?) {
        statReads += 1
        let fd = open(procRoot + "/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return (nil, nil) }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(byteCount: 2048, alignment: 8) { buffer in
            let n = read(fd, buffer.baseAddress, buffer.count)
            guard n > 0 else { return (nil, nil) }
            let stat = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            var ppid: Int32?
            if let close = stat.lastIndex(of: UInt8(ascii: ")")) {
                // ") S PPID ...": the parent is the second field after the command.
                let fields = stat[(close + 2)...].split(separator: UInt8(ascii: " "), maxSplits: 2)
                if fields.count > 1 { ppid = Int32(String(decoding: fields[1], as: UTF8.self)) }
            }
            return (ProcReader.startTime(stat: stat), ppid)
        }
    }

    private func info(_ pid: Int32, start: UInt64?, ppid: Int32?, me: Int32) -> Info {
        let base = procRoot + "/\(pid)"
        // Our own POST children map libcrypto too: they must not wake the scheduler.
        var info = Info(start: start, openssl: false, unit: reader.unit(pid: pid), exe: nil, ours: ppid == me, firstSeen: tick)
        if case .success(let maps) = ProcReader.readWhole(base + "/maps") {
            info.openssl = Self.contains(maps, "libcrypto") || Self.contains(maps, "libssl")
        }
        var st = stat()
        if stat(base + "/exe", &st) == 0 { info.exe = (UInt64(st.st_dev), UInt64(st.st_ino)) }
        return info
    }

    static func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        let n = Array(needle.utf8)
        guard let first = n.first, haystack.count >= n.count else { return false }
        var i = 0
        while let at = haystack[i...].firstIndex(of: first) {
            if at + n.count > haystack.count { return false }
            if haystack[at..<at + n.count].elementsEqual(n) { return true }
            i = at + 1
        }
        return false
    }
}
