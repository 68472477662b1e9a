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
    public init() {}

    public func contentsEqual(_ a: (path: String, stamp: FileStamp), _ b: (path: String, stamp: FileStamp)) -> Bool {
        if a.stamp.size != b.stamp.size { return false }
        let key = [a.stamp, b.stamp].sorted { ($0.identity.device, $0.identity.inode) < ($1.identity.device, $1.identity.inode) }
        if let hit = comparisons.withLock({ $0[key] }) { return hit }
        let equal = Self.compareBytes(a.path, b.path)
        comparisons.withLock { $0[key] = equal }
        return equal
    }

    static func compareBytes(_ a: String, _ b: String) -> Bool {
        let fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC)
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

    /// Reads `path` (already stat()ed as `stamp`) unless the cache holds the same stamp.
    public func entry(path: String, stamp: FileStamp) -> CatalogEntry {
        if let hit = entries.withLock({ $0[stamp.identity] }), hit.0 == stamp { return hit.1 }
        let result = Self.read(path: path, expected: stamp)
        if case .unreadable = result { return result }  // errors (EACCES, vanished) may pass: retry next time
        entries.withLock { $0[stamp.identity] = (stamp, result) }
        return result
    }

    static func read(path: String, expected: FileStamp) -> CatalogEntry {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else {
            let e = errno
            return .unreadable(e == ENOENT ? "vanished during the scan" : "cannot open: \(String(cString: strerror(e)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .unreadable("cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .notELF }
        if FileStamp(st).identity != expected.identity { return .unreadable("replaced during the scan") }
        do {
            guard let object = try ELFFileReader.read(fd: fd, path: path) else { return .notELF }
            return .elf(object)
        } catch {
            return .unreadable("\(error)")
        }
    }
}

/// One entry of a tree walk: a regular file (or a symlink to one) with its stamp.
public struct WalkEntry: Sendable {
    public var relativePath: String
    public var path: String
    public var stamp: FileStamp
}

/// Walks a bundle tree without following directory symlinks; symlinked files are kept (the loader
/// opens them by that path). Loops, unreadable folders and other trouble become one warning line.
public enum TreeWalker {
    public static func walk(root: String) throws(ScanError) -> (entries: [WalkEntry], warnings: [String]) {
        var st = stat()
        guard stat(root, &st) == 0 else { throw .rootUnreadable(root, String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .rootUnreadable(root, "not a directory") }
        var entries: [WalkEntry] = []
        var warnings: [String] = []
        var visited: Set<FileIdentity> = [FileStamp(st).identity]
        var stack: [String] = [""]
        while let rel = stack.popLast() {
            let dirPath = rel.isEmpty ? root : root + "/" + rel
            guard let dir = opendir(dirPath) else {
                warnings.append("\(rel.isEmpty ? "." : rel): cannot read directory: \(String(cString: strerror(errno)))")
                continue
            }
            var names: [String] = []
            while let ent = readdir(dir) {
                let name = String(cString: directoryEntryName(ent))
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(dir)
            var subdirs: [String] = []
            for name in names.sorted() {
                let childRel = rel.isEmpty ? name : rel + "/" + name
                let childPath = root + "/" + childRel
                var lst = stat()
                guard lstat(childPath, &lst) == 0 else {
                    if errno != ENOENT { warnings.append("\(childRel): \(String(cString: strerror(errno)))") }
                    continue
                }
                switch lst.st_mode & S_IFMT {
                case S_IFDIR:
                    if visited.insert(FileStamp(lst).identity).inserted { subdirs.append(childRel) }
                case S_IFREG:
                    entries.append(WalkEntry(relativePath: childRel, path: childPath, stamp: FileStamp(lst)))
                case S_IFLNK:
                    var target = stat()
                    if stat(childPath, &target) != 0 {
                        if errno == ELOOP { warnings.append("\(childRel): symlink loop") }
                        continue  // dangling links load nothing
                    }
                    if (target.st_mode & S_IFMT) == S_IFREG {
                        entries.append(WalkEntry(relativePath: childRel, path: childPath, stamp: FileStamp(target)))
                    }
                default:
                    continue  // FIFOs, sockets, devices: never opened
                }
            }
            stack.append(contentsOf: subdirs.reversed())
        }
        return (entries, warnings)
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

    public func inventory(root: String) throws(ScanError) -> BundleInventory { try scan(root: root).inventory }

    /// The inventory, and the stamp of every ELF file in it (what a cached audit depends on).
    public func scan(root: String) throws(ScanError) -> (inventory: BundleInventory, stamps: [String: FileStamp]) {
        let walk = try TreeWalker.walk(root: root)
        let inventory = inventory(root: root, entries: walk.entries, warnings: walk.warnings)
        let elf = Set(inventory.elfFiles.map(\.file.path))
        var stamps: [String: FileStamp] = [:]
        for e in walk.entries where elf.contains(e.path) { stamps[e.path] = e.stamp }
        return (inventory, stamps)
    }

    public func inventory(root: String, entries: [WalkEntry], warnings: [String]) -> BundleInventory {
        // First path per identity; later paths are aliases.
        var order: [FileIdentity] = []
        var byIdentity: [FileIdentity: (first: WalkEntry, aliases: [String])] = [:]
        for e in entries {
            if byIdentity[e.stamp.identity] == nil {
                order.append(e.stamp.identity)
                byIdentity[e.stamp.identity] = (e, [])
            } else {
                byIdentity[e.stamp.identity]!.aliases.append(e.relativePath)
            }
        }
        let firsts = order.map { byIdentity[$0]!.first }
        let results = Locked<[CatalogEntry?]>(Array(repeating: nil, count: firsts.count))
        let catalog = self.catalog
        DispatchQueue.concurrentPerform(iterations: firsts.count) { i in
            let r = catalog.entry(path: firsts[i].path, stamp: firsts[i].stamp)
            results.withLock { $0[i] = r }
        }
        var elf: [BundleFile] = []
        var other: [String] = []
        var lines = warnings
        for (i, result) in results.withLock({ $0 }).enumerated() {
            let e = firsts[i]
            switch result! {
            case .elf(let object):
                elf.append(BundleFile(file: LoadedFile(path: e.path, identity: e.stamp.identity, object: object),
                                      relativePath: e.relativePath, aliases: byIdentity[e.stamp.identity]!.aliases,
                                      size: e.stamp.size))
            case .notELF:
                other.append(e.relativePath)
                other.append(contentsOf: byIdentity[e.stamp.identity]!.aliases)
            case .unreadable(let reason):
                lines.append("\(e.relativePath): \(reason)")
            }
        }
        return BundleInventory(root: root, elfFiles: elf, otherFiles: other, warnings: lines, fileCount: entries.count)
    }
}

/// The real filesystem as the loader and the audit see it, through the catalog.
public final class DiskFileSystem: AuditFileSystem, @unchecked Sendable {
    // One audit uses it from one thread; the memo is per instance.
    private var probes: [String: LoaderProbe] = [:]
    private let catalog: ELFCatalog

    public init(catalog: ELFCatalog) { self.catalog = catalog }

    /// Every path the loader simulation asked about (what a cached simulation depends on).
    public var probedPaths: [String] { Array(probes.keys) }

    public func probe(_ path: String) -> LoaderProbe {
        if let hit = probes[path] { return hit }
        let result: LoaderProbe
        var st = stat()
        if stat(path, &st) != 0 {
            result = (errno == ENOENT || errno == ENOTDIR) ? .missing : .unusable(reason: String(cString: strerror(errno)))
        } else if (st.st_mode & S_IFMT) != S_IFREG {
            result = .unusable(reason: "not a regular file")
        } else {
            let stamp = FileStamp(st)
            switch catalog.entry(path: path, stamp: stamp) {
            case .elf(let object): result = .object(LoadedFile(path: path, identity: stamp.identity, object: object))
            case .notELF: result = .unusable(reason: "not an ELF file")
            case .unreadable(let reason): result = .unusable(reason: reason)
            }
        }
        probes[path] = result
        return result
    }

    /// Every existence check the audit made, with its answer (what a cached report depends on).
    public private(set) var existence: [String: Bool] = [:]

    public func exists(_ path: String) -> Bool {
        let answer = access(path, F_OK) == 0
        existence[path] = answer
        return answer
    }

    public func contentsEqual(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return catalog.contentsEqual((a, FileStamp(sa)), (b, FileStamp(sb)))
    }
}
