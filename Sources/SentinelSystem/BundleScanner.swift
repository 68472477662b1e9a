import Dispatch
import Glibc
import SentinelCore

/// What a file's stat says; the cache key that tells an unchanged file from a changed one.
public struct FileStamp: Sendable, Hashable {
    public var identity: FileIdentity
    public var size: UInt64
    public var mtime: Int64
    public var ctime: Int64

    init(_ st: stat) {
        identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        size = UInt64(st.st_size)
        mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        // ctime moves on chmod/chown too, so a permission fix is seen without a content change.
        ctime = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
    }
}

/// The outcome of reading one file, cached by its stamp.
public enum CatalogEntry: Sendable {
    case notELF
    case elf(ELFObject)
    case unreadable(String)
}

/// A cache of ELF models keyed by (device, inode) and validated by size, mtime and ctime, so an
/// unchanged tree is rescanned with stat() alone. Shared by scans in one process (the daemon).
public final class ELFCatalog: Sendable {
    private let entries = Locked<[FileIdentity: (FileStamp, CatalogEntry)]>([:])
    /// Byte-comparison results for pairs of unchanged files (duplicate copies are compared once).
    private let comparisons = Locked<[[FileStamp]: Bool]>([:])
    /// Group comparisons under way, by their files' stamps: a second caller waits for the first.
    private let comparing = Locked<[[FileStamp]: DispatchGroup]>([:])
    /// PyInstaller archives by their executable, read at the stamp kept beside them.
    private let archives = Locked<[FileIdentity: (FileStamp, Result<PyInstallerArchive, PyInstallerArchive.ReadError>)]>([:])
    public init() {}

    /// The archive in `range` of the executable at `path` (its ELF model gave the range), read
    /// again only when the file changed.
    func archive(path: String, identity: FileIdentity, range: FileRange) -> Result<PyInstallerArchive, PyInstallerArchive.ReadError> {
        var st = stat()
        guard stat(EscapedBytes.cString(path), &st) == 0 else { return .failure(.cannotRead(errno)) }
        let stamp = FileStamp(st)
        if let hit = archives.withLock({ $0[identity] }), hit.0 == stamp { return hit.1 }
        let result = Result { () throws(PyInstallerArchive.ReadError) in try PyInstallerArchive.read(path: path, range: range) }
        archives.withLock { $0[identity] = (stamp, result) }
        return result
    }

    public func contentsEqual(_ a: (path: String, stamp: FileStamp), _ b: (path: String, stamp: FileStamp)) -> Bool {
        if a.stamp.size != b.stamp.size { return false }
        let key = [a.stamp, b.stamp].sorted { ($0.identity.device, $0.identity.inode) < ($1.identity.device, $1.identity.inode) }
        if let hit = comparisons.withLock({ $0[key] }) { return hit }
        let equal = Self.compareBytes(a.path, b.path)
        comparisons.withLock { $0[key] = equal }
        return equal
    }

    /// Whether every one of `others` holds the same bytes as `first`; each pair's answer is cached
    /// like `contentsEqual`'s. Stops at the first difference, as comparing pair by pair would.
    /// A group being compared by another thread (the auditor starts them early) is waited for, not
    /// compared twice.
    public func allContentsEqual(_ first: (path: String, stamp: FileStamp), _ others: [(path: String, stamp: FileStamp)]) -> Bool {
        let key = [first.stamp] + others.map(\.stamp)
        while true {
            let (group, mine): (DispatchGroup, Bool) = comparing.withLock {
                if let running = $0[key] { return (running, false) }
                let group = DispatchGroup()
                group.enter()
                $0[key] = group
                return (group, true)
            }
            guard mine else { group.wait(); continue }
            defer {
                comparing.withLock { $0[key] = nil }
                group.leave()
            }
            return compareAll(first, others)
        }
    }

    private func compareAll(_ first: (path: String, stamp: FileStamp), _ others: [(path: String, stamp: FileStamp)]) -> Bool {
        var pending: [(path: String, stamp: FileStamp)] = []
        for other in others {
            if other.stamp.size != first.stamp.size { return false }
            let key = [first.stamp, other.stamp].sorted { ($0.identity.device, $0.identity.inode) < ($1.identity.device, $1.identity.inode) }
            switch comparisons.withLock({ $0[key] }) {
            case false?: return false
            case true?: continue
            case nil: pending.append(other)
            }
        }
        guard !pending.isEmpty else { return true }
        let answers = Self.compareGroup(first.path, pending.map(\.path))
        comparisons.withLock { cache in
            for (other, answer) in zip(pending, answers) {
                guard let answer else { continue }
                let key = [first.stamp, other.stamp].sorted { ($0.identity.device, $0.identity.inode) < ($1.identity.device, $1.identity.inode) }
                cache[key] = answer
            }
        }
        return answers.allSatisfy { $0 == true }
    }

    /// Compares `first` with each of `others`, the others shared between the cores. Each share walks
    /// the files chunk by chunk, every file of the share at one offset before the next, so `first`'s
    /// chunk is read once and stays in cache while the copies stream past it: a duplicate group of
    /// 100 libcrypto copies costs one read of each copy instead of two. nil: not compared, because
    /// another file already differed. pread, not mmap: a file truncated meanwhile must not SIGBUS.
    static func compareGroup(_ first: String, _ others: [String]) -> [Bool?] {
        let parts = max(1, min(others.count, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        let results = Locked<[Bool?]>(Array(repeating: nil, count: others.count))
        let differs = Locked(false)
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let mine = Array(stride(from: part, to: others.count, by: parts))
            let answers = compareShare(first, mine.map { others[$0] }, stop: differs)
            results.withLock { for (k, i) in mine.enumerated() { $0[i] = answers[k] } }
        }
        return results.withLock { $0 }
    }

    private static func compareShare(_ first: String, _ paths: [String], stop: Locked<Bool>) -> [Bool?] {
        var answers = [Bool?](repeating: nil, count: paths.count)
        var fds = [Int32](repeating: -1, count: paths.count)
        defer { for fd in fds where fd >= 0 { close(fd) } }
        let ff = open(EscapedBytes.cString(first), O_RDONLY | O_CLOEXEC)
        guard ff >= 0 else { return answers.map { _ in false } }
        defer { close(ff) }
        var active: [Int] = []
        for (i, path) in paths.enumerated() {
            fds[i] = open(EscapedBytes.cString(path), O_RDONLY | O_CLOEXEC)
            if fds[i] < 0 { answers[i] = false } else { active.append(i) }
        }
        let chunk = 1 << 17
        var a = [UInt8](repeating: 0, count: chunk), b = [UInt8](repeating: 0, count: chunk)
        var offset = 0
        while !active.isEmpty {
            if stop.withLock({ $0 }) { return answers }
            let na = readFully(ff, &a, at: offset)
            guard na >= 0 else { for i in active { answers[i] = false }; break }
            var still: [Int] = []
            for i in active {
                // At first's end, the copy must end too: ask for one byte past it.
                let nb = readFully(fds[i], &b, at: offset, count: na == 0 ? 1 : na)
                if nb == na && (na == 0 || memcmp(a, b, na) == 0) {
                    if na == 0 { answers[i] = true } else { still.append(i) }
                } else {
                    answers[i] = false
                    stop.withLock { $0 = true }
                }
            }
            active = still
            offset += na
        }
        return answers
    }

    /// pread until `count` bytes (default: the buffer) or the end of the file; -1 on an error.
    private static func readFully(_ fd: Int32, _ buffer: inout [UInt8], at offset: Int, count: Int? = nil) -> Int {
        let want = count ?? buffer.count
        return buffer.withUnsafeMutableBytes { preadFully(fd, UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]), at: UInt64(offset)) }
    }

    static func compareBytes(_ a: String, _ b: String) -> Bool {
        let fa = open(EscapedBytes.cString(a), O_RDONLY | O_CLOEXEC), fb = open(EscapedBytes.cString(b), O_RDONLY | O_CLOEXEC)
        defer { if fa >= 0 { close(fa) }; if fb >= 0 { close(fb) } }
        guard fa >= 0, fb >= 0 else { return false }
        let size = 1 << 16
        var bufA = [UInt8](repeating: 0, count: size), bufB = [UInt8](repeating: 0, count: size)
        while true {
            let na = Glibc.read(fa, &bufA, size), nb = Glibc.read(fb, &bufB, size)
            if na != nb || na < 0 { return false }
            if na == 0 { return true }
            if memcmp(bufA, bufB, na) != 0 { return false }
        }
    }

    public var count: Int { entries.withLock { $0.count } }

    /// What the cache holds for each file at its stamp (nil: not read at that stamp), under one lock.
    func cached(_ files: [WalkEntry]) -> [CatalogEntry?] {
        entries.withLock { entries in
            files.map { file in
                guard let hit = entries[file.stamp.identity], hit.0 == file.stamp else { return nil }
                return hit.1
            }
        }
    }

    /// Reads `path` (already stat()ed as `stamp`) unless the cache holds the same stamp.
    public func entry(path: String, stamp: FileStamp) -> CatalogEntry {
        entry(stamp) { Self.read(path: path, expected: stamp) }
    }

    /// The same for a file the caller opened and fstat()ed itself (`status`): a first scan's walk reads
    /// each file it finds through the descriptor it found it with.
    func entry(opened fd: Int32, status: stat) -> CatalogEntry {
        entry(FileStamp(status)) { Self.read(fd: fd, status: status) }
    }

    private func entry(_ stamp: FileStamp, read: () -> CatalogEntry) -> CatalogEntry {
        if let hit = entries.withLock({ $0[stamp.identity] }), hit.0 == stamp { return hit.1 }
        let result = read()
        if case .unreadable = result { return result }  // errors (EACCES, vanished) may pass: retry next time
        entries.withLock { $0[stamp.identity] = (stamp, result) }
        return result
    }

    static func read(path: String, expected: FileStamp) -> CatalogEntry {
        let fd = open(EscapedBytes.cString(path), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else {
            let e = errno
            return .unreadable(e == ENOENT ? "vanished during the scan" : "cannot open: \(String(cString: strerror(e)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .unreadable("cannot stat: \(String(cString: strerror(errno)))") }
        if (st.st_mode & S_IFMT) == S_IFREG, FileStamp(st).identity != expected.identity {
            return .unreadable("replaced during the scan")
        }
        return read(fd: fd, status: st)
    }

    static func read(fd: Int32, status st: stat) -> CatalogEntry {
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .notELF }
        do {
            guard let object = try ELFFileReader.read(fd: fd, status: st) else { return .notELF }
            return .elf(object)
        } catch {
            return .unreadable("\(error)")
        }
    }
}

public enum ScanError: Error, CustomStringConvertible {
    case rootUnreadable(String, String)
    public var description: String {
        switch self {
        case .rootUnreadable(let path, let reason): return "cannot scan \(path): \(reason)"
        }
    }
}

/// Turns a walk into the audit's inventory, reading each distinct file once (in parallel, through the catalog).
public struct BundleScanner: Sendable {
    public let catalog: ELFCatalog
    public init(catalog: ELFCatalog = ELFCatalog()) { self.catalog = catalog }

    public func inventory(root: String) throws(ScanError) -> BundleInventory {
        let walk = try walk(root: root)
        return inventory(root: root, entries: walk.entries, warnings: walk.warnings)
    }

    /// The tree's files with their stamps, walked on every core. A first scan reads each file into the
    /// catalog on the way, through the descriptor its stamp comes from (open and fstat instead of a
    /// stat and, later, an open and fstat). `rescan`: the tree was audited before and is most likely
    /// unchanged, so the walk only stat()s, and `inventoryAndStamps` reads whatever did change.
    public func walk(root: String, rescan: Bool = false) throws(ScanError) -> (entries: [WalkEntry], warnings: [String]) {
        try TreeWalker.walk(root: root, threads: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), reading: rescan ? nil : catalog)
    }

    public func inventory(root: String, entries: [WalkEntry], warnings: [String]) -> BundleInventory {
        inventoryAndStamps(root: root, entries: entries, warnings: warnings).inventory
    }

    /// The inventory, and the stamp of each ELF file by its path (collected on the way: a rescan of
    /// an unchanged 20,000-file tree is little more than this function).
    func inventoryAndStamps(root: String, entries: [WalkEntry], warnings: [String])
        -> (inventory: BundleInventory, stamps: [String: FileStamp]) {
        // First path per identity; later paths are aliases.
        var firsts: [WalkEntry] = []
        var aliases: [[String]] = []
        var index: [FileIdentity: Int] = [:]
        firsts.reserveCapacity(entries.count)
        index.reserveCapacity(entries.count)
        for e in entries {
            if let i = index[e.stamp.identity] {
                aliases[i].append(e.relativePath)
            } else {
                index[e.stamp.identity] = firsts.count
                firsts.append(e)
                aliases.append([])
            }
        }
        // Usually every file is in the catalog already (read during the walk, or unchanged since the
        // last scan): looked up under one lock. The others are read on every core, 64 to a block.
        var found = catalog.cached(firsts)
        let misses = found.indices.filter { found[$0] == nil }
        if !misses.isEmpty {
            let block = 64
            let reads = Locked<[(Int, CatalogEntry)]>([])
            let catalog = self.catalog
            let frozen = firsts
            DispatchQueue.concurrentPerform(iterations: (misses.count + block - 1) / block) { b in
                let mine = misses[(b * block)..<min((b + 1) * block, misses.count)].map {
                    ($0, catalog.entry(path: frozen[$0].path, stamp: frozen[$0].stamp))
                }
                reads.withLock { $0 += mine }
            }
            for (i, entry) in reads.withLock({ $0 }) { found[i] = entry }
        }
        var elf: [BundleFile] = []
        var other: [String] = []
        var stamps: [String: FileStamp] = [:]
        var lines = warnings
        for (i, result) in found.enumerated() {
            let e = firsts[i]
            switch result! {
            case .elf(let object):
                elf.append(BundleFile(file: LoadedFile(path: e.path, identity: e.stamp.identity, object: object),
                                      relativePath: e.relativePath, aliases: aliases[i], size: e.stamp.size))
                stamps[e.path] = e.stamp
                if let note = object.searchWarning { lines.append("\(e.relativePath): \(note)") }
            case .notELF:
                other.append(e.relativePath)
                other.append(contentsOf: aliases[i])
            case .unreadable(let reason):
                lines.append("\(e.relativePath): \(reason)")
            }
        }
        return (BundleInventory(root: root, elfFiles: elf, otherFiles: other, warnings: lines, fileCount: entries.count), stamps)
    }
}

/// The real filesystem as the loader and the audit see it, through the catalog.
public final class DiskFileSystem: AuditFileSystem, @unchecked Sendable {
    /// Probe answers with the stat() each came from, shared by the file systems of one audit: the
    /// resolution threads probe the same system folders, so each path is stat()ed once, and the cached
    /// audit keeps the stamps the simulation saw instead of stat()ing every probed path again.
    final class ProbeMemo: Sendable {
        let entries = Locked<[String: (probe: LoaderProbe, stamp: ProbeStamp)]>([:])
    }
    private let memo: ProbeMemo
    private let catalog: ELFCatalog
    private let archived: ArchivedFiles

    public convenience init(catalog: ELFCatalog, archived: ArchivedFiles = .none) {
        self.init(catalog: catalog, memo: ProbeMemo(), archived: archived)
    }

    init(catalog: ELFCatalog, memo: ProbeMemo, archived: ArchivedFiles) {
        self.catalog = catalog
        self.memo = memo
        self.archived = archived
    }

    /// Each probed path with what stat() said when it was probed.
    var probeStamps: [(path: String, stamp: ProbeStamp)] {
        memo.entries.withLock { $0.map { ($0.key, $0.value.stamp) } }
    }

    public func probe(_ path: String) -> LoaderProbe {
        if let member = archived.probe(path) { return member }
        if let hit = memo.entries.withLock({ $0[path] }) { return hit.probe }
        let result: LoaderProbe
        let stamp: ProbeStamp
        var st = stat()
        if stat(EscapedBytes.cString(path), &st) != 0 {
            let code = errno
            stamp = .missing(code)
            result = (code == ENOENT || code == ENOTDIR) ? .missing : .unusable(reason: String(cString: strerror(code)))
        } else {
            let fileStamp = FileStamp(st)
            stamp = .present(fileStamp)
            if (st.st_mode & S_IFMT) != S_IFREG {
                result = .unusable(reason: "not a regular file")
            } else {
                switch catalog.entry(path: path, stamp: fileStamp) {
                case .elf(let object): result = .object(LoadedFile(path: path, identity: fileStamp.identity, object: object))
                case .notELF: result = .unusable(reason: "not an ELF file")
                case .unreadable(let reason): result = .unusable(reason: reason)
                }
            }
        }
        // A path probed by two threads at once keeps the first answer, so both report the same one.
        return memo.entries.withLock { entries in
            if let first = entries[path] { return first.probe }
            entries[path] = (result, stamp)
            return result
        }
    }

    /// Every existence check the audit made, with its answer (what a cached report depends on).
    public private(set) var existence: [String: Bool] = [:]

    public func exists(_ path: String) -> Bool {
        if let member = archived.probe(path) {
            if case .missing = member { return false }
            return true
        }
        let answer = access(EscapedBytes.cString(path), F_OK) == 0
        existence[path] = answer
        return answer
    }

    public func allContentsEqual(_ first: String, _ others: [String]) -> Bool {
        if archived.probe(first) != nil { return others.allSatisfy { contentsEqual(first, $0) } }
        var sf = stat()
        guard stat(EscapedBytes.cString(first), &sf) == 0 else { return others.isEmpty }
        var stamped: [(path: String, stamp: FileStamp)] = []
        for other in others {
            var so = stat()
            guard stat(EscapedBytes.cString(other), &so) == 0 else { return false }
            stamped.append((other, FileStamp(so)))
        }
        return catalog.allContentsEqual((first, FileStamp(sf)), stamped)
    }

    public func contentsEqual(_ a: String, _ b: String) -> Bool {
        if archived.probe(a) != nil || archived.probe(b) != nil { return archived.contentsEqual(a, b) ?? false }
        var sa = stat(), sb = stat()
        guard stat(EscapedBytes.cString(a), &sa) == 0, stat(EscapedBytes.cString(b), &sb) == 0 else { return false }
        return catalog.contentsEqual((a, FileStamp(sa)), (b, FileStamp(sb)))
    }
}
