import Dispatch
import Glibc
import SentinelCore

/// One entry of a tree walk: a regular file (or a symlink to one) with its stamp.
public struct WalkEntry: Sendable {
    public var relativePath: String
    public var path: String
    public var stamp: FileStamp
}

/// Walks a bundle tree without following directory symlinks; symlinked files are kept (the loader
/// opens them by that path). Loops, unreadable folders and other trouble become one warning line.
///
/// With `threads` > 1 the folders (and the parts of a large folder) are stat()ed by that many threads
/// at once: a rescan of an unchanged tree is little else than these stat() calls. The result does not
/// depend on the number of threads: it is put together afterwards in the order of a depth-first walk
/// of the sorted names, as one thread alone would have walked it.
///
/// `reading`: each regular file is opened and fstat()ed instead of stat()ed, and read into that catalog
/// through the same descriptor (a first scan: one system call per file fewer, and no second walk).
/// Symlinks are stat()ed and followed as before, and read by path; FIFOs, sockets and devices are
/// never opened (readdir's d_type says what they are; where it does not, they are stat()ed first).
public enum TreeWalker {
    public static func walk(root: String, threads: Int = 1, reading catalog: ELFCatalog? = nil)
        throws(ScanError) -> (entries: [WalkEntry], warnings: [String]) {
        var st = stat()
        guard stat(EscapedBytes.cString(root), &st) == 0 else { throw .rootUnreadable(root, String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .rootUnreadable(root, "not a directory") }
        let walk = ConcurrentWalk(root: root, rootIdentity: FileStamp(st).identity, threads: max(1, threads), catalog: catalog)
        if threads <= 1 {
            walk.work()
        } else {
            DispatchQueue.concurrentPerform(iterations: threads) { _ in walk.work() }
        }
        return walk.assemble()
    }
}

/// The state of one walk, shared by its threads: a queue of folders (and parts of large folders) to
/// stat(), and each finished folder by its identity. Everything mutable is behind `state`'s lock,
/// except a part's stat() results, which are the part's own until it hands them in.
private final class ConcurrentWalk: Sendable {
    /// What one name of a folder turned out to be.
    enum Child: Sendable {
        case skipped                    // vanished, dangling, or not a file (FIFO, socket, device)
        case file(FileStamp)            // a regular file, or a symlink to one (the target's stamp)
        case folder(FileIdentity)       // a folder (never a symlink to one)
        case trouble(String)            // one warning line's reason
    }

    /// One folder: its sorted names and, once every part is in, what each name is.
    final class Folder: Sendable {
        let relativePath: String        // the path it was reached by first (any thread's first)
        let identity: FileIdentity
        let names: [String]
        let types: [UInt8]              // each name's d_type
        let openError: String?
        let stream: FolderStream?
        init(relativePath: String, identity: FileIdentity, names: [String], types: [UInt8], openError: String?,
             stream: FolderStream?) {
            self.relativePath = relativePath; self.identity = identity; self.names = names; self.types = types
            self.openError = openError; self.stream = stream
        }
    }

    /// An open folder while its parts are stat()ed against its descriptor; closed by the last part.
    final class FolderStream: @unchecked Sendable {
        let dir: OpaquePointer
        init(_ dir: OpaquePointer) { self.dir = dir }
        var fd: Int32 { dirfd(dir) }
    }

    /// A finished folder, with its files and warning lines as named by the path it was reached by.
    struct Finished: Sendable {
        var folder: Folder
        var children: [Child]
        var files: [WalkEntry]
        var warnings: [String]
    }

    enum Item: Sendable {
        case folder(relativePath: String, identity: FileIdentity)
        case part(Folder, Range<Int>)
    }

    struct State {
        var queue: [Item] = []
        var outstanding = 0                             // items queued or being worked on
        var claimed: Set<FileIdentity> = []             // folders queued once, whatever the path
        var parts: [FileIdentity: [(Int, [Child])]] = [:]  // a large folder's parts handed in so far
        var done: [FileIdentity: Finished] = [:]
    }

    /// Names stat()ed per item: a folder with more is split into parts the other threads can take.
    static let partSize = 128

    let root: String
    let rootIdentity: FileIdentity
    let threads: Int
    let catalog: ELFCatalog?
    let state = Locked(State())
    let ready = DispatchSemaphore(value: 0)

    init(root: String, rootIdentity: FileIdentity, threads: Int, catalog: ELFCatalog?) {
        self.root = root
        self.rootIdentity = rootIdentity
        self.threads = threads
        self.catalog = catalog
        state.withLock {
            $0.queue.append(.folder(relativePath: "", identity: rootIdentity))
            $0.outstanding = 1
            $0.claimed.insert(rootIdentity)
        }
        ready.signal()
    }

    /// One thread's share: takes items until the walk is over. Every queued item signals `ready`
    /// once, after it is queued, and the end signals it once more for each of the `threads` calls of
    /// this function, so a wake-up finds an item or the end (and a call that starts late still ends).
    func work() {
        while true {
            ready.wait()
            guard let item = state.withLock({ $0.queue.popLast() }) else { return }
            switch item {
            case .folder(let relativePath, let identity):
                open(relativePath: relativePath, identity: identity)
            case .part(let folder, let range):
                handIn(folder, part: range.lowerBound, children(folder, range))
            }
        }
    }

    private func open(relativePath: String, identity: FileIdentity) {
        let path = relativePath.isEmpty ? root : root + "/" + relativePath
        guard let dir = opendir(EscapedBytes.cString(path)) else {
            let folder = Folder(relativePath: relativePath, identity: identity, names: [], types: [],
                                openError: String(cString: strerror(errno)), stream: nil)
            finish(folder, [])
            return
        }
        var listed: [(name: String, type: UInt8)] = []
        while let ent = readdir(dir) {
            let name = EscapedBytes.string(directoryEntryBytes(ent))
            if name != "." && name != ".." { listed.append((name, directoryEntryType(ent))) }
        }
        listed.sort { $0.name < $1.name }
        let names = listed.map(\.name)
        let folder = Folder(relativePath: relativePath, identity: identity, names: names, types: listed.map(\.type),
                            openError: nil, stream: FolderStream(dir))
        if names.count <= Self.partSize {
            handIn(folder, part: 0, children(folder, 0..<names.count))
            return
        }
        // The first part is this thread's; the others go to the queue, and whoever hands in the last
        // part finishes the folder.
        let starts = Array(stride(from: Self.partSize, to: names.count, by: Self.partSize))
        state.withLock {
            for start in starts {
                $0.queue.append(.part(folder, start..<min(start + Self.partSize, names.count)))
            }
            $0.outstanding += starts.count
        }
        for _ in starts { ready.signal() }
        handIn(folder, part: 0, children(folder, 0..<Self.partSize))
    }

    /// What the names in `range` are. Children are looked up relative to the open folder: one path
    /// component for the kernel instead of the whole path, for every file of the tree.
    private func children(_ folder: Folder, _ range: Range<Int>) -> [Child] {
        let fd = folder.stream!.fd
        guard let catalog else { return range.map { Self.stat(folder.names[$0], in: fd) } }
        return range.map { i in
            let name = folder.names[i]
            switch Int32(folder.types[i]) {
            case Int32(DT_REG):
                let file = openat(fd, EscapedBytes.cString(name), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW)
                if file < 0 {
                    if errno == ENOENT { return .skipped }
                    return Self.stat(name, in: fd)  // no longer a file, or unreadable: as a rescan sees it
                }
                defer { close(file) }
                var st = Glibc.stat()
                guard fstat(file, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return Self.stat(name, in: fd) }
                _ = catalog.entry(opened: file, status: st)
                return .file(FileStamp(st))
            case Int32(DT_FIFO), Int32(DT_SOCK), Int32(DT_CHR), Int32(DT_BLK):
                return .skipped  // never opened, never stat()ed
            default:
                return Self.stat(name, in: fd)  // folders, symlinks (read by path later), DT_UNKNOWN
            }
        }
    }

    private static func stat(_ name: String, in fd: Int32) -> Child {
        let name = EscapedBytes.cString(name)
        var lst = Glibc.stat()
        guard fstatat(fd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 else {
            return errno == ENOENT ? .skipped : .trouble(String(cString: strerror(errno)))
        }
        switch lst.st_mode & S_IFMT {
        case S_IFDIR:
            return .folder(FileStamp(lst).identity)
        case S_IFREG:
            return .file(FileStamp(lst))
        case S_IFLNK:
            var target = Glibc.stat()
            if fstatat(fd, name, &target, 0) != 0 {
                return errno == ELOOP ? .trouble("symlink loop") : .skipped  // dangling links load nothing
            }
            return (target.st_mode & S_IFMT) == S_IFREG ? .file(FileStamp(target)) : .skipped
        default:
            return .skipped  // FIFOs, sockets, devices: never opened
        }
    }

    /// A part's results; the last part of a folder finishes it. Each item (a folder, or a part of one
    /// beyond its first) is counted out once: here, or by `finish` for the item that completes the folder.
    private func handIn(_ folder: Folder, part: Int, _ children: [Child]) {
        if children.count == folder.names.count { finish(folder, children); return }
        let complete: [Child]? = state.withLock {
            $0.parts[folder.identity, default: []].append((part, children))
            guard let parts = $0.parts[folder.identity], parts.reduce(0, { $0 + $1.1.count }) == folder.names.count
            else { $0.outstanding -= 1; return nil }  // not the last: others remain, so not the end
            $0.parts[folder.identity] = nil
            return parts.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
        if let complete { finish(folder, complete) }
    }

    /// A folder is done: its subfolders not queued yet are queued.
    private func finish(_ folder: Folder, _ children: [Child]) {
        if let stream = folder.stream { closedir(stream.dir) }
        var subfolders: [Item] = []
        for (name, child) in zip(folder.names, children) {
            if case .folder(let identity) = child {
                subfolders.append(.folder(relativePath: Self.join(folder.relativePath, name), identity: identity))
            }
        }
        // Named here, on the walking threads, by the path this thread reached the folder by.
        let (files, warnings) = entries(folder, children, at: folder.relativePath)
        let finished = Finished(folder: folder, children: children, files: files, warnings: warnings)
        let (queued, over): (Int, Bool) = state.withLock {
            $0.done[folder.identity] = finished
            var queued = 0
            for item in subfolders {
                guard case .folder(_, let identity) = item, $0.claimed.insert(identity).inserted else { continue }
                $0.queue.append(item)
                queued += 1
            }
            $0.outstanding += queued - 1
            return (queued, $0.outstanding == 0)
        }
        for _ in 0..<queued { ready.signal() }
        if over {
            for _ in 0..<threads { ready.signal() }
        }
    }

    static func join(_ folder: String, _ name: String) -> String { folder.isEmpty ? name : folder + "/" + name }

    /// A folder's files and warning lines, named as reached by `relativePath`.
    private func entries(_ folder: Folder, _ children: [Child], at relativePath: String)
        -> (files: [WalkEntry], warnings: [String]) {
        var files: [WalkEntry] = []
        var warnings: [String] = []
        if let error = folder.openError {
            warnings.append("\(relativePath.isEmpty ? "." : relativePath): cannot read directory: \(error)")
        }
        for (name, child) in zip(folder.names, children) {
            switch child {
            case .file(let stamp):
                let childRel = Self.join(relativePath, name)
                files.append(WalkEntry(relativePath: childRel, path: root + "/" + childRel, stamp: stamp))
            case .trouble(let reason):
                warnings.append("\(Self.join(relativePath, name)): \(reason)")
            case .folder, .skipped:
                continue
            }
        }
        return (files, warnings)
    }

    /// The walk in depth-first order of the sorted names, each folder identity once (the first path
    /// that reaches it, in that order), whatever order the threads finished the folders in.
    func assemble() -> (entries: [WalkEntry], warnings: [String]) {
        let done = state.withLock { $0.done }
        var entries: [WalkEntry] = []
        var warnings: [String] = []
        var visited: Set<FileIdentity> = [rootIdentity]
        var stack: [(String, FileIdentity)] = [("", rootIdentity)]
        while let (relativePath, identity) = stack.popLast() {
            guard let finished = done[identity] else { continue }
            if relativePath == finished.folder.relativePath {
                entries.append(contentsOf: finished.files)
                warnings.append(contentsOf: finished.warnings)
            } else {
                // Reached first, in this order, by another path than the thread that walked it took.
                let named = self.entries(finished.folder, finished.children, at: relativePath)
                entries.append(contentsOf: named.files)
                warnings.append(contentsOf: named.warnings)
            }
            var subfolders: [(String, FileIdentity)] = []
            for (name, child) in zip(finished.folder.names, finished.children) {
                if case .folder(let id) = child, visited.insert(id).inserted {
                    subfolders.append((Self.join(relativePath, name), id))
                }
            }
            stack.append(contentsOf: subfolders.reversed())
        }
        return (entries, warnings)
    }
}
