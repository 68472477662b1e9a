import Dispatch
import Glibc
import SentinelCore

/// Reads running processes from /proc (hostile, racy input) into `ProcessSnapshot`s. Every file is
/// opened relative to one /proc/<pid> directory descriptor, so a pid reused between reads cannot mix
/// two processes; a process that exits or is out of reach becomes a `ReadFailure`, never a crash.
/// Mapped files are identified by content through the shared `ELFCatalog`, each (device, inode) once
/// per reader; nothing is ever loaded or run.
public final class ProcReader: Sendable {
    public let catalog: ELFCatalog
    public let procRoot: String
    private let ownMountNamespace: String?
    private let classified = Locked<[FileIdentity: Classified]>([:])
    private let pathLookups = Locked<[String: DiskState.Lookup]>([:])
    /// Mapped files already judged in this run, by identity (with the pathname they were judged under).
    private let known = Locked<[FileIdentity: MappedObject]>([:])

    struct Classified: Sendable {
        var object: ELFObject?
        var identification: MappedObject.Identification
        var readError: String?
    }

    public init(catalog: ELFCatalog = ELFCatalog(), procRoot: String = "/proc") {
        self.catalog = catalog
        self.procRoot = procRoot
        ownMountNamespace = Self.readLink(AT_FDCWD, procRoot + "/self/ns/mnt").value
    }

    // MARK: discovery

    /// Every process (thread-group leader) in /proc.
    public func allPIDs() -> [Int32] {
        guard let dir = opendir(procRoot) else { return [] }
        defer { closedir(dir) }
        var pids: [Int32] = []
        while let entry = readdir(dir) {
            let pid = { () -> Int32? in
                var p = directoryEntryName(entry)
                var v: Int32 = 0
                while p.pointee != 0 {
                    let b = UInt8(bitPattern: p.pointee)
                    guard b >= 0x30, b <= 0x39 else { return nil }
                    v = v &* 10 &+ Int32(b - 0x30)
                    p += 1
                }
                return v > 0 ? v : nil
            }()
            if let pid { pids.append(pid) }
        }
        return pids.sorted()
    }

    /// Every process whose /proc/<pid>/cgroup puts it in `unit` (main process and workers).
    public func pids(unit: String) -> [Int32] {
        let unit = CgroupUnit.normalise(unit)
        return allPIDs().filter { self.unit(pid: $0) == unit }
    }

    public func unit(pid: Int32) -> String? {
        guard case .success(let bytes) = Self.readWhole(procRoot + "/\(pid)/cgroup") else { return nil }
        return CgroupUnit.unit(cgroupFile: String(decoding: bytes, as: UTF8.self))
    }

    /// The processes started by `pid` and by its children, in turn (each thread's `children` file).
    public func descendants(of pid: Int32) -> [Int32] {
        var found: [Int32] = [], queue = [pid]
        while let next = queue.popLast(), found.count < 4096 {
            guard let dir = opendir(procRoot + "/\(next)/task") else { continue }
            var kids: [Int32] = []
            while let entry = readdir(dir) {
                let tid = String(cString: directoryEntryName(entry))
                guard Int32(tid) != nil, case .success(let bytes) = Self.readWhole(procRoot + "/\(next)/task/\(tid)/children") else { continue }
                kids += String(decoding: bytes, as: UTF8.self).split(separator: " ").compactMap { Int32($0) }
            }
            closedir(dir)
            found += kids.sorted()
            queue += kids
        }
        return found
    }

    /// Every process running `path` (compared by device and inode, so symlinks and hard links match).
    public func pids(executable path: String) -> [Int32] {
        var st = stat()
        guard stat(path, &st) == 0 else { return [] }
        return allPIDs().filter { pid in
            var exe = stat()
            return stat(procRoot + "/\(pid)/exe", &exe) == 0 && exe.st_dev == st.st_dev && exe.st_ino == st.st_ino
        }
    }

    /// When `pid` started (/proc/<pid>/stat field 22, clock ticks after boot); nil when it is gone.
    /// Cheap enough for the live watcher's every tick: one read into a stack buffer (the line is at
    /// most ~1.1 KiB: a 15-byte comm and 50 numbers), no heap buffer.
    public static func startTime(pid: Int32, procRoot: String = "/proc") -> UInt64? {
        let fd = open(procRoot + "/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(byteCount: 2048, alignment: 8) { buffer in
            let n = read(fd, buffer.baseAddress, buffer.count)
            return n > 0 ? startTime(stat: UnsafeRawBufferPointer(rebasing: buffer[0..<n])) : nil
        }
    }

    /// Field 22 of a /proc/<pid>/stat text. The command (field 2) may hold spaces and ')': fields are
    /// counted after its last ')'.
    public static func startTime(stat: UnsafeRawBufferPointer) -> UInt64? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var field = 2, value: UInt64 = 0, digits = 0
        for b in stat[(close + 1)...] {
            if b == UInt8(ascii: " ") {
                if field == 22 { break }
                field += 1
            } else if field == 22 {
                guard b >= 0x30, b <= 0x39, digits < 19 else { return nil }  // 19 digits cannot overflow
                value = value * 10 + UInt64(b - 0x30)
                digits += 1
            }
        }
        return field == 22 && digits > 0 ? value : nil
    }

    public enum PidFileError: Error, CustomStringConvertible {
        case unreadable(String, String), malformed(String)
        public var description: String {
            switch self {
            case .unreadable(let p, let why): return "cannot read pid file \(p): \(why)"
            case .malformed(let p): return "pid file \(p) does not hold a process id"
            }
        }
    }

    public static func pid(fromFile path: String) throws(PidFileError) -> Int32 {
        let bytes: [UInt8]
        switch readWhole(path, limit: 4096) {
        case .success(let b): bytes = b
        case .failure(let e): throw .unreadable(path, String(cString: strerror(e.code)))
        }
        let text = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isWhitespace).first.map(String.init) ?? ""
        guard let pid = Int32(text), pid > 0 else { throw .malformed(path) }
        return pid
    }

    // MARK: snapshots

    /// Snapshots of many processes on every core. With `onlyOpenSSL`, processes that map no OpenSSL
    /// library (or static copy) and processes gone before their maps were read are left out; one
    /// whose maps are out of reach is kept (it may map OpenSSL: reported as unreadable).
    /// `forPOST`: also the whole environment and the confinement, for a POST that follows the process.
    public func snapshots(pids: [Int32], onlyOpenSSL: Bool, secureExecution: Bool = false, forPOST: Bool = false) -> [ProcessSnapshot] {
        let workers = max(1, min(pids.count / 16, System.cores))
        let results = Locked<[[ProcessSnapshot]]>(Array(repeating: [], count: workers))
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let buffer = ReadBuffer()
            var mine: [ProcessSnapshot] = []
            var i = w
            while i < pids.count {
                if let s = snapshot(pid: pids[i], buffer: buffer, onlyOpenSSL: onlyOpenSSL, secureExecution: secureExecution, forPOST: forPOST) {
                    mine.append(s)
                }
                i += workers
            }
            results.withLock { $0[w] = mine }
        }
        return results.withLock { $0 }.flatMap { $0 }.sorted { $0.pid < $1.pid }
    }

    /// One process. `afterRead` runs after each /proc file is read (tests use it to end the process
    /// between two reads).
    public func snapshot(pid: Int32, secureExecution: Bool = false, forPOST: Bool = false,
                         afterRead: ((String) -> Void)? = nil) -> ProcessSnapshot {
        snapshot(pid: pid, buffer: ReadBuffer(), onlyOpenSSL: false, secureExecution: secureExecution, forPOST: forPOST,
                 afterRead: afterRead)!
    }

    func snapshot(pid: Int32, buffer: ReadBuffer, onlyOpenSSL: Bool, secureExecution: Bool, forPOST: Bool = false,
                  afterRead: ((String) -> Void)? = nil) -> ProcessSnapshot? {
        var snap = ProcessSnapshot(pid: pid)
        let dir = open(procRoot + "/\(pid)", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else {
            if onlyOpenSSL { return nil }
            snap.failures = [ReadFailure(file: "maps", reason: Self.reason(errno, alive: false))]
            return snap
        }
        defer { close(dir) }
        var errors: [(String, Int32)] = []

        // maps first: with --all most processes stop here.
        var mapsBytes = 0
        switch buffer.read(dir, "maps") {
        case .success(let n): mapsBytes = n
        case .failure(let e):
            if onlyOpenSSL, e.code == ENOENT || e.code == ESRCH { return nil }
            errors.append(("maps", e.code))
        }
        afterRead?("maps")
        snap.files = mappedObjects(UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<mapsBytes]), pid: pid, dir: dir)
        if onlyOpenSSL, errors.isEmpty, !ProcessAudit.mapsOpenSSL(snap.files) { return nil }

        var zombie = false
        switch buffer.read(dir, "status") {
        case .success(let n):
            let status = ProcStatus.parse(UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]), throughSeccomp: forPOST)
            snap.command = status.name; snap.credentials = status.credentials
            if status.seccomp == 1 { snap.confinement.append("seccomp strict mode") }
            if status.seccomp == 2 { snap.confinement.append("seccomp filter") }
            zombie = status.state == "Z" || status.state == "X"
        case .failure(let e): errors.append(("status", e.code))
        }
        afterRead?("status")
        switch buffer.read(dir, "environ") {
        case .success(let n):
            let environ = Array(buffer.bytes[0..<n])
            if forPOST { snap.serviceEnvironment = TargetEnvironment.parse(environ: environ) }
            snap.environment = TargetEnvironment(environ: environ, secureExecution: secureExecution && Self.secureExecution(dir, buffer))
        case .failure(let e): errors.append(("environ", e.code))
        }
        afterRead?("environ")
        switch Self.readLink(dir, "exe") {
        case .value(let v): snap.executable = v
        case .error(let e): errors.append(("exe", e))
        }
        switch Self.readLink(dir, "cwd") {
        case .value(let v): snap.cwd = v
        case .error(let e): errors.append(("cwd", e))
        }
        if case .success(let n) = buffer.read(dir, "stat") {
            snap.startTime = Self.startTime(stat: UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]))
        }
        if forPOST, case .success(let n) = buffer.read(dir, "attr/current") {
            let raw = buffer.bytes[0..<n]
            let label = String(decoding: raw.prefix { $0 != 0 && $0 != 0x0a }, as: UTF8.self)
            if !label.isEmpty, label != "unconfined", !label.hasPrefix("unconfined ") { snap.confinement.append("LSM label \(label)") }
        }
        if case .success(let n) = buffer.read(dir, "cgroup") {
            snap.unit = CgroupUnit.unit(cgroupFile: UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]))
        }
        afterRead?("cgroup")

        // Gone now (or a zombie, whose maps read empty)? Then ENOENT/ESRCH above meant "exited".
        guard zombie || !errors.isEmpty || snap.files.isEmpty else { return snap }
        let alive = !zombie && faccessat(dir, "stat", F_OK, 0) == 0
        if !alive && errors.isEmpty && snap.files.isEmpty { errors.append(("maps", ESRCH)) }
        for (file, code) in errors {
            let reason = Self.reason(code, alive: alive)
            // A live kernel thread has no exe or cwd: nothing failed.
            if alive, code == ENOENT, file == "exe" || file == "cwd" { continue }
            snap.failures.append(ReadFailure(file: file, reason: reason))
        }
        return snap
    }

    static func reason(_ code: Int32, alive: Bool) -> ReadFailure.Reason {
        switch code {
        case EACCES, EPERM: return .permissionDenied
        case ESRCH: return .exited
        case ENOENT: return alive ? .other("no such file") : .exited
        default: return .other(String(cString: strerror(code)))
        }
    }

    // MARK: mapped files

    /// The mapped files of one process, each (device, inode) once. A file already seen in this run under
    /// the same pathname is reused as is: no String, no stat, no catalog look-up.
    private func mappedObjects(_ maps: UnsafeRawBufferPointer, pid: Int32, dir: Int32) -> [MappedObject] {
        var out: [MappedObject] = []
        var seen: [FileIdentity] = []
        var namespace: String??  // read only if a path does not match its mapping (another mount namespace?)
        MapsParser.forEachFileLine(maps) { line in
            guard line.kind == .file, !seen.contains(line.identity) else { return }
            seen.append(line.identity)
            if let hit = known.withLock({ $0[line.identity] }), hit.mapsPathname.utf8.elementsEqual(line.pathname) {
                var hit = hit
                hit.mapRange = line.mapFilesName
                out.append(hit); return
            }
            let pathname = line.decodedPathname
            var (path, disk) = DiskState.judge(identity: line.identity, pathname: pathname, deletedMarker: line.deletedMarker) {
                lookup($0, root: nil, namespace: "")
            }
            var foreignRoot: String?
            if disk != .current {
                if namespace == nil { namespace = .some(Self.readLink(dir, "ns/mnt").value) }
                if let ns = namespace!, ns != ownMountNamespace {
                    foreignRoot = procRoot + "/\(pid)/root"
                    (path, disk) = DiskState.judge(identity: line.identity, pathname: pathname, deletedMarker: line.deletedMarker) {
                        lookup($0, root: foreignRoot, namespace: ns)
                    }
                }
            }
            let c = classify(line.identity, mapFilesName: line.mapFilesName, path: path, disk: disk, pid: pid, foreignRoot: foreignRoot)
            var object = MappedObject(identity: line.identity, path: path, mapsPathname: pathname, disk: disk, object: c.object,
                                      identification: c.identification, readError: c.readError)
            // Only what holds in every mount namespace and was fully read is shared across processes.
            if foreignRoot == nil, c.identification == .content { known.withLock { $0[line.identity] = object } }
            object.mapRange = line.mapFilesName
            out.append(object)
        }
        return out
    }

    private func lookup(_ path: String, root: String?, namespace: String) -> DiskState.Lookup {
        let key = root == nil ? path : namespace + "\0" + path
        if let hit = pathLookups.withLock({ $0[key] }) { return hit }
        var st = stat()
        let result: DiskState.Lookup
        if stat(EscapedBytes.cString((root ?? "") + path), &st) == 0 {
            result = .file(FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)))
        } else {
            result = errno == ENOENT || errno == ENOTDIR ? .missing : .failed(String(cString: strerror(errno)))
        }
        pathLookups.withLock { $0[key] = result }
        return result
    }

    /// The ELF model of a mapped file, once per (device, inode): through its path when that still names
    /// it, else through /proc/<pid>/map_files (root only); by name alone when neither is open to us.
    private func classify(_ identity: FileIdentity, mapFilesName: String, path: String, disk: DiskState, pid: Int32,
                          foreignRoot: String?) -> Classified {
        if let hit = classified.withLock({ $0[identity] }) { return hit }
        var candidates: [String] = []
        if disk == .current { candidates.append((foreignRoot ?? "") + path) }
        candidates.append(procRoot + "/\(pid)/map_files/" + mapFilesName)
        var result = Classified(object: nil, identification: .name, readError: nil)
        for candidate in candidates {
            var st = stat()
            guard stat(EscapedBytes.cString(candidate), &st) == 0 else { result.readError = String(cString: strerror(errno)); continue }
            // Never open a device or FIFO someone mapped: opening can have side effects.
            guard st.st_mode & S_IFMT == S_IFREG else { result = Classified(object: nil, identification: .content); break }
            let stamp = FileStamp(st)
            guard stamp.identity == identity else { continue }
            switch catalog.entry(path: candidate, stamp: stamp) {
            case .elf(let object): result = Classified(object: object, identification: .content)
            case .notELF: result = Classified(object: nil, identification: .content)
            case .unreadable(let why): result.readError = why; continue
            }
            break
        }
        // Errors may pass (another process may have map_files open to us): only cache what was read.
        if result.identification == .content { classified.withLock { $0[identity] = result } }
        return result
    }

    // MARK: reading

    /// AT_SECURE from auxv: glibc then ignores LD_LIBRARY_PATH (matters for the bundle audit only).
    static func secureExecution(_ dir: Int32, _ buffer: ReadBuffer) -> Bool {
        guard case .success(let n) = buffer.read(dir, "auxv") else { return false }
        var i = 0
        while i + 16 <= n {
            let type = buffer.bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let value = buffer.bytes.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
            if type == 23 { return value != 0 }
            if type == 0 { break }
            i += 16
        }
        return false
    }

    enum LinkResult { case value(String), error(Int32)
        var value: String? { if case .value(let v) = self { return v }; return nil }
    }

    static func readLink(_ dir: Int32, _ name: String) -> LinkResult {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlinkat(dir, name, &buf, buf.count - 1)
        guard n >= 0 else { return .error(errno) }
        return .value(EscapedBytes.string(buf[0..<n].map { UInt8(bitPattern: $0) }))
    }

    public struct Errno: Error { public var code: Int32 }

    public static func readWhole(_ path: String, limit: Int = 1 << 20) -> Result<[UInt8], Errno> {
        let buffer = ReadBuffer()
        switch buffer.read(AT_FDCWD, path, limit: limit) {
        case .success(let n): return .success(Array(buffer.bytes[0..<n]))
        case .failure(let e): return .failure(e)
        }
    }
}

/// One reusable read buffer per worker: /proc files report size 0, so read() until EOF, growing as needed.
final class ReadBuffer {
    private(set) var bytes: UnsafeMutableRawBufferPointer

    init(capacity: Int = 64 << 10) { bytes = .allocate(byteCount: capacity, alignment: 16) }
    deinit { bytes.deallocate() }

    func read(_ dir: Int32, _ name: String, limit: Int = 16 << 20) -> Result<Int, ProcReader.Errno> {
        let fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return .failure(.init(code: errno)) }
        defer { close(fd) }
        var count = 0
        while true {
            if count == bytes.count {
                guard bytes.count < limit else { break }
                let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count * 2, alignment: 16)
                bigger.copyMemory(from: UnsafeRawBufferPointer(bytes))
                bytes.deallocate()
                bytes = bigger
            }
            let n = Glibc.read(fd, bytes.baseAddress! + count, bytes.count - count)
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.init(code: errno))
            }
            if n == 0 { break }
            count += n
        }
        return .success(count)
    }
}

enum System {
    static let cores: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}
