import Glibc
import SentinelCore
import SentinelSystem

/// Notices between cycles that the live picture changed — a service (re)started or stopped, a process
/// that maps OpenSSL appeared or exited — so the scheduler runs a cycle at once instead of waiting for
/// the interval. Cheap by design: each tick lists /proc and reads maps, cgroup and exe only of pids it
/// has not seen before. (A library dlopen()ed later by a known process waits for the next cycle.)
/// A process is its pid *and* its start time: a pid handed out again between two ticks is a new
/// process, read afresh, and changes the fingerprint even when it runs the same executable.
final class LiveWatcher {
    struct Info {
        var start: UInt64?; var openssl: Bool; var unit: String?; var exe: (UInt64, UInt64)?; var ours: Bool; var firstSeen: Int
        /// What the fingerprint holds for this process.
        func mark(_ pid: Int32) -> String { "\(pid)@\(start.map(String.init) ?? "?")" }
    }
    private var known: [Int32: Info] = [:]
    private var tick = 0
    /// A young process is read again for a few ticks: it is moved into its unit's cgroup and loads
    /// OpenSSL only after it becomes visible (systemd forks, then moves, then execs; dlopen comes later).
    static let settleTicks = 5
    private let procRoot: String
    private var last: Set<String>?

    init(procRoot: String = "/proc") { self.procRoot = procRoot }

    /// True when the fingerprint differs from the previous tick's (never on the first tick).
    func changed(_ config: DaemonConfig) -> Bool {
        let now = fingerprint(config)
        defer { last = now }
        return last.map { $0 != now } ?? false
    }

    func fingerprint(_ config: DaemonConfig) -> Set<String> {
        let me = getpid()
        let reader = ProcReader(procRoot: procRoot)
        let pids = reader.allPIDs()
        let alive = Set(pids)
        known = known.filter { alive.contains($0.key) }
        tick += 1
        for pid in pids where pid != me {
            // One small read per process and tick: the start time tells a reused pid from the old process.
            let start = ProcReader.startTime(pid: pid, procRoot: procRoot)
            let same = known[pid].map { $0.start == start } ?? false
            if same, let old = known[pid], tick - old.firstSeen > Self.settleTicks { continue }
            var fresh = info(pid, start: start, reader: reader, me: me)
            fresh.firstSeen = same ? known[pid]!.firstSeen : tick
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

    private func info(_ pid: Int32, start: UInt64?, reader: ProcReader, me: Int32) -> Info {
        let base = procRoot + "/\(pid)"
        var info = Info(start: start, openssl: false, unit: reader.unit(pid: pid), exe: nil, ours: false, firstSeen: tick)
        // Our own POST children map libcrypto too: they must not wake the scheduler.
        if case .success(let stat) = ProcReader.readWhole(base + "/stat"),
           let close = stat.lastIndex(of: UInt8(ascii: ")")) {
            let fields = stat[(close + 2)...].split(separator: UInt8(ascii: " "))
            if fields.count > 1, let ppid = Int32(String(decoding: fields[1], as: UTF8.self)) { info.ours = ppid == me }
        }
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
