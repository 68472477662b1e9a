import CLinux
import Dispatch
import Glibc
import SentinelCore
import Synchronization

/// Writes a copy of a bundle tree as the repair wants it: some files under another name, some left
/// out, some with a few bytes changed. Everything else is kept exactly: data (holes stay holes), hard
/// links, symlink text, mode with setuid/setgid/sticky, owner and group (as root), atime and mtime to
/// the nanosecond, and every extended attribute (security.capability, ACLs, SELinux labels, user.*).
///
/// Symlinks are never followed: they are copied as links, and files and folders are opened with
/// O_NOFOLLOW below descriptors of their folders. The source is only read, with O_NOATIME where
/// allowed, so even its atimes stay as they are (readlink still sets a link's atime, as any reader's).
///
/// Relative paths (the plan's keys and values) are as `TreeWalker` gives them: "lib/libssl.so.3", no
/// leading "./", each name escaped by `EscapedBytes`.
///
/// Order of the work, for what each step would undo: data, then patches, then owner (chown clears
/// setuid and security.capability), then extended attributes (an ACL rewrites the mode's group bits),
/// then the mode, then the times; folders last, deepest first, since every name made in a folder
/// sets its mtime. The files are copied by `threads` threads (one walk first, then folder by folder).
public struct TreeCopier: Sendable {
    /// In-place bytes written over the copy of a file: refused unless the copy has `expected` there.
    public struct Patch: Sendable, Equatable {
        public var offset: UInt64
        public var bytes: [UInt8]
        public var expected: [UInt8]
        public init(offset: UInt64, bytes: [UInt8], expected: [UInt8]) {
            self.offset = offset
            self.bytes = bytes
            self.expected = expected
        }
    }

    /// What the copy does differently from the source. Every key must name something in the tree.
    public struct Plan: Sendable {
        /// Relative path (as in the source tree) -> relative path in the copy: the file (or symlink) is
        /// copied under the new name (its other hard links inside the tree keep theirs). The new name's
        /// folder must be a folder of the copy. Folders cannot be renamed.
        public var renames: [String: String]
        /// Relative paths not copied at all (a folder: with everything in it).
        public var omit: Set<String>
        /// Relative path -> byte patches applied to the copy, after its data is written and before its
        /// metadata is restored. A file with several names is patched once, with the patches of all of them.
        public var patches: [String: [Patch]]
        /// Relative path of a symlink -> the link text its copy gets instead of the source's (escaped).
        public var symlinkTargets: [String: String]

        public init(renames: [String: String] = [:], omit: Set<String> = [], patches: [String: [Patch]] = [:],
                    symlinkTargets: [String: String] = [:]) {
            self.renames = renames
            self.omit = omit
            self.patches = patches
            self.symlinkTargets = symlinkTargets
        }
    }

    public let threads: Int

    public init(threads: Int = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) {
        self.threads = max(1, threads)
    }

    /// Copies the folder `source` to `destination`, which must not exist yet (its parent must). Returns
    /// warning lines: FIFOs, sockets and devices not copied, owners or attributes the copy could not
    /// take, and symlinks of the copy that now name nothing because the plan renamed or left out what
    /// they named in the source (the link text is kept; `Plan.symlinkTargets` changes it). On an error
    /// the partial copy is removed.
    public func copy(from source: String, to destination: String, plan: Plan = Plan()) throws(TreeCopyError) -> [String] {
        let source = Self.trimmed(source)
        let destination = Self.trimmed(destination)
        var st = stat()
        guard lstat(EscapedBytes.cString(source), &st) == 0 else { throw TreeCopyError(source, errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw TreeCopyError(source, (st.st_mode & S_IFMT) == S_IFLNK ? "a symlink, not followed: name the folder itself" : "not a directory")
        }
        var existing = stat()
        if lstat(EscapedBytes.cString(destination), &existing) == 0 { throw TreeCopyError(destination, "already exists") }
        if errno != ENOENT { throw TreeCopyError(destination, errno: errno) }
        guard mkdir(EscapedBytes.cString(destination), 0o700) == 0 else { throw TreeCopyError(destination, errno: errno) }
        do throws(TreeCopyError) {
            return try Run.copy(source: source, status: st, destination: destination, plan: plan, threads: threads)
        } catch {
            do throws(TreeCopyError) {
                try Self.removeTree(destination)
            } catch let cleanup {
                throw TreeCopyError(error.path, error.reason + "; the partial copy is left at \(destination) (\(cleanup))")
            }
            throw error
        }
    }

    /// Removes `path` and everything under it without following a symlink (a link is removed, not
    /// what it names). Nothing there is not an error.
    public static func removeTree(_ path: String) throws(TreeCopyError) {
        let path = trimmed(path)
        var st = stat()
        guard lstat(EscapedBytes.cString(path), &st) == 0 else {
            if errno == ENOENT { return }
            throw TreeCopyError(path, errno: errno)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            guard unlink(EscapedBytes.cString(path)) == 0 else { throw TreeCopyError(path, errno: errno) }
            return
        }
        let fd = open(EscapedBytes.cString(path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw TreeCopyError(path, errno: errno) }
        try removeContents(of: fd, path: path)
        guard rmdir(EscapedBytes.cString(path)) == 0 else { throw TreeCopyError(path, errno: errno) }
    }

    /// Empties the folder open as `fd` (closed here). Names are read first, then removed: no readdir
    /// over a folder that is changing.
    private static func removeContents(of fd: Int32, path: String) throws(TreeCopyError) {
        guard let dir = fdopendir(fd) else {
            let code = errno
            close(fd)
            throw TreeCopyError(path, errno: code)
        }
        defer { closedir(dir) }
        let names = try listNames(dir, path: path)
        for name in names {
            let cName = name.map { CChar(bitPattern: $0) } + [0]
            if unlinkat(dirfd(dir), cName, 0) == 0 || errno == ENOENT { continue }
            let childPath = path + "/" + EscapedBytes.string(name)
            guard errno == EISDIR else { throw TreeCopyError(childPath, errno: errno) }
            let child = openat(dirfd(dir), cName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard child >= 0 else { throw TreeCopyError(childPath, errno: errno) }
            try removeContents(of: child, path: childPath)
            guard unlinkat(dirfd(dir), cName, AT_REMOVEDIR) == 0 else { throw TreeCopyError(childPath, errno: errno) }
        }
    }

    /// A folder's names but "." and "..", sorted by their bytes.
    fileprivate static func listNames(_ dir: OpaquePointer, path: String) throws(TreeCopyError) -> [[UInt8]] {
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw TreeCopyError(path, errno: errno) }
                break
            }
            let name = directoryEntryBytes(entry)
            if name.count == 1 && name[0] == UInt8(ascii: ".") { continue }
            if name.count == 2 && name[0] == UInt8(ascii: ".") && name[1] == UInt8(ascii: ".") { continue }
            names.append(Array(name))
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Without the trailing slashes ("/srv/app/" names the same folder, and the paths made from it
    /// read better).
    static func trimmed(_ path: String) -> String {
        var path = path
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }
}

extension TreeCopier {
    /// One extended attribute, as read.
    fileprivate struct Attribute: Sendable {
        var name: [CChar]  // NUL-terminated
        var value: [UInt8]
    }

    /// A folder of the source (and of the copy, at the same relative path).
    fileprivate struct Folder: Sendable {
        var relativePath: String
        var parent: Int     // index in the folders; -1 for the root
        var name: [CChar]   // NUL-terminated; empty for the root
        var status: stat
        var attributes: [Attribute]
    }

    /// A file or symlink to copy: where it is in the source, where it goes in the copy.
    fileprivate struct Item: Sendable {
        enum Kind: Sendable { case file, symlink }
        var kind: Kind
        var relativePath: String
        var folder: Int
        var name: [CChar]
        var copyPath: String    // relative
        var copyFolder: Int
        var copyName: [CChar]
        var status: stat
        var patches: [Patch]
        var linkText: [CChar]?  // a symlink's text in the copy (the plan's, or read by the walk), NUL-terminated
    }

    /// Another name of a file of the tree that is already an item: linked to its copy, not copied.
    fileprivate struct Link: Sendable {
        var item: Int
        var relativePath: String
        var copyPath: String
    }

    /// The single-threaded walk of the source, which also makes the copy's folders (mode 0700 until
    /// the end): folders, files and symlinks to copy, other names of files already seen.
    fileprivate struct Walk {
        let source: String
        let destination: String
        let plan: Plan
        let destinationIdentity: FileIdentity
        var folders: [Folder] = []
        var items: [Item] = []
        var links: [Link] = []
        var warnings: [String] = []
        var firstName: [FileIdentity: Int] = [:]   // a multiply linked file's item
        var omitted: Set<String> = []
        var skipped: [String: String] = [:]         // relative path -> what it is (not copied)
        var planned: Set<String> = []               // keys of renames, patches and symlinkTargets met

        init(source: String, destination: String, plan: Plan, destinationIdentity: FileIdentity) {
            self.source = source
            self.destination = destination
            self.plan = plan
            self.destinationIdentity = destinationIdentity
        }

        func sourcePath(_ relativePath: String) -> String { relativePath.isEmpty ? source : source + "/" + relativePath }
        func copyPath(_ relativePath: String) -> String { relativePath.isEmpty ? destination : destination + "/" + relativePath }

        /// Walks the folder `index`, open as `sourceFd` (taken: closed here), made in the copy as `copyFd`.
        /// Its files and links first, then its folders: a folder's items stay together, for the threads.
        mutating func walk(folder index: Int, sourceFd: Int32, copyFd: Int32) throws(TreeCopyError) {
            let relativePath = folders[index].relativePath
            guard let dir = fdopendir(sourceFd) else {
                let code = errno
                close(sourceFd)
                throw TreeCopyError(sourcePath(relativePath), errno: code)
            }
            defer { closedir(dir) }
            let fd = dirfd(dir)
            var subfolders: [(name: [CChar], relativePath: String, status: stat)] = []
            for bytes in try TreeCopier.listNames(dir, path: sourcePath(relativePath)) {
                let name = bytes.map { CChar(bitPattern: $0) } + [0]
                let childPath = relativePath.isEmpty ? EscapedBytes.string(bytes) : relativePath + "/" + EscapedBytes.string(bytes)
                if plan.omit.contains(childPath) { omitted.insert(childPath); continue }
                var st = stat()
                guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw TreeCopyError(sourcePath(childPath), errno: errno) }
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    for (key, what) in [(plan.renames[childPath] != nil, "renames"), (plan.patches[childPath] != nil, "patches"),
                                        (plan.symlinkTargets[childPath] != nil, "retargets")] where key {
                        throw TreeCopyError(sourcePath(childPath), "the plan \(what) it, but it is a folder")
                    }
                    subfolders.append((name, childPath, st))
                case S_IFREG:
                    if plan.symlinkTargets[childPath] != nil { throw TreeCopyError(sourcePath(childPath), "the plan retargets it, but it is not a symlink") }
                    addItem(.file, name: name, relativePath: childPath, folder: index, status: st, linkText: nil)
                case S_IFLNK:
                    if plan.patches[childPath] != nil { throw TreeCopyError(sourcePath(childPath), "the plan patches it, but it is a symlink (patch the file it names)") }
                    var text = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                    let n = readlinkat(fd, name, &text, text.count)
                    guard n >= 0 else { throw TreeCopyError(sourcePath(childPath), errno: errno) }
                    guard n < text.count else { throw TreeCopyError(sourcePath(childPath), errno: ENAMETOOLONG) }
                    text.removeLast(text.count - n - 1)
                    text[n] = 0
                    addItem(.symlink, name: name, relativePath: childPath, folder: index, status: st,
                            linkText: plan.symlinkTargets[childPath].map { EscapedBytes.cString($0) } ?? text)
                default:
                    let what = switch st.st_mode & S_IFMT {
                    case S_IFIFO: "a FIFO"
                    case S_IFSOCK: "a socket"
                    case S_IFCHR: "a character device"
                    case S_IFBLK: "a block device"
                    default: "of unknown type"
                    }
                    skipped[childPath] = what
                    warnings.append("\(childPath): not copied: \(what)")
                }
            }
            for (name, childPath, st) in subfolders {
                let identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
                if identity == destinationIdentity {
                    throw TreeCopyError(sourcePath(childPath), "is the copy being made: the destination must not be inside the source")
                }
                guard mkdirat(copyFd, name, 0o700) == 0 else { throw TreeCopyError(copyPath(childPath), errno: errno) }
                let child = TreeCopier.openSource(fd, name, O_RDONLY | O_DIRECTORY)
                guard child >= 0 else { throw TreeCopyError(sourcePath(childPath), errno: errno) }
                var opened = stat()
                let attributes: [Attribute]
                do throws(TreeCopyError) {
                    guard fstat(child, &opened) == 0, opened.st_dev == st.st_dev, opened.st_ino == st.st_ino else {
                        throw TreeCopyError(sourcePath(childPath), "changed during the copy")
                    }
                    attributes = try TreeCopier.readAttributes(path: sourcePath(childPath), list: { flistxattr(child, $0, $1) },
                                                               get: { fgetxattr(child, $0, $1, $2) })
                } catch {
                    close(child)
                    throw error
                }
                let childCopy = openat(copyFd, name, SENTINEL_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard childCopy >= 0 else {
                    let code = errno
                    close(child)
                    throw TreeCopyError(copyPath(childPath), errno: code)
                }
                defer { close(childCopy) }
                folders.append(Folder(relativePath: childPath, parent: index, name: name, status: opened, attributes: attributes))
                try walk(folder: folders.count - 1, sourceFd: child, copyFd: childCopy)
            }
        }

        /// A file or symlink: an item, or a link to the item of its first name. The copy's place is
        /// settled later, once every folder is known.
        private mutating func addItem(_ kind: Item.Kind, name: [CChar], relativePath: String, folder: Int, status: stat,
                                      linkText: [CChar]?) {
            if plan.renames[relativePath] != nil || plan.patches[relativePath] != nil || plan.symlinkTargets[relativePath] != nil {
                planned.insert(relativePath)
            }
            let patches = plan.patches[relativePath] ?? []
            if kind == .file && status.st_nlink > 1 {
                let identity = FileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
                if let first = firstName[identity] {
                    for patch in patches where !items[first].patches.contains(patch) { items[first].patches.append(patch) }
                    links.append(Link(item: first, relativePath: relativePath, copyPath: relativePath))
                    return
                }
                firstName[identity] = items.count
            }
            items.append(Item(kind: kind, relativePath: relativePath, folder: folder, name: name, copyPath: relativePath,
                              copyFolder: folder, copyName: name, status: status, patches: patches, linkText: linkText))
        }

        /// The plan's renames put in place, and every key of the plan checked against what the walk met.
        mutating func settle() throws(TreeCopyError) {
            for key in plan.omit.sorted() where !omitted.contains(key) && !isOmitted(key) {
                throw TreeCopyError(sourcePath(key), "the plan leaves it out, but it is not in the tree")
            }
            for key in Set(plan.renames.keys).union(plan.patches.keys).union(plan.symlinkTargets.keys).sorted()
            where !planned.contains(key) {
                throw TreeCopyError(sourcePath(key), isOmitted(key) ? "the plan both leaves it out and changes it" : "the plan changes it, but it is not in the tree")
            }
            guard !plan.renames.isEmpty else { return }
            var folderIndex: [String: Int] = [:]
            for (i, folder) in folders.enumerated() { folderIndex[folder.relativePath] = i }
            func place(_ relativePath: String) throws(TreeCopyError) -> (folder: Int, name: [CChar])? {
                guard let target = plan.renames[relativePath] else { return nil }
                let slash = target.lastIndex(of: "/")
                let parent = slash.map { String(target[..<$0]) } ?? ""
                let name = slash.map { String(target[target.index(after: $0)...]) } ?? target
                guard !name.isEmpty, name != ".", name != "..", let folder = folderIndex[parent] else {
                    throw TreeCopyError(sourcePath(relativePath), "the plan renames it to \(target), which is not a name in a folder of the copy")
                }
                return (folder, EscapedBytes.cString(name))
            }
            for i in items.indices {
                guard let (folder, name) = try place(items[i].relativePath) else { continue }
                items[i].copyFolder = folder
                items[i].copyName = name
                items[i].copyPath = plan.renames[items[i].relativePath]!
            }
            for i in links.indices where plan.renames[links[i].relativePath] != nil {
                _ = try place(links[i].relativePath)
                links[i].copyPath = plan.renames[links[i].relativePath]!
            }
            // Two names for one place would fail half-way (EEXIST); say it before copying anything.
            var taken = Set(folders.map(\.relativePath))
            for (from, to) in items.map({ ($0.relativePath, $0.copyPath) }) + links.map({ ($0.relativePath, $0.copyPath) })
            where !taken.insert(to).inserted {
                throw TreeCopyError(sourcePath(from), "the plan renames it to \(to), which the copy has already")
            }
        }

        /// Whether the plan leaves out `relativePath` or a folder it is in.
        func isOmitted(_ relativePath: String) -> Bool {
            var path = Substring(relativePath)
            while true {
                if omitted.contains(String(path)) { return true }
                guard let slash = path.lastIndex(of: "/") else { return false }
                path = path[..<slash]
            }
        }

        /// A warning for each relative symlink that named a file of the tree which the copy no longer
        /// has at that name. Resolved by the text alone: a link whose path goes through another
        /// symlink is not checked.
        func danglingLinks() -> [String] {
            let symlinks = items.filter { $0.kind == .symlink }
            guard !symlinks.isEmpty, !plan.renames.isEmpty || !omitted.isEmpty || !skipped.isEmpty || !plan.symlinkTargets.isEmpty
            else { return [] }
            var inSource = Set(folders.map(\.relativePath))
            var inCopy = inSource
            for item in items { inSource.insert(item.relativePath); inCopy.insert(item.copyPath) }
            for link in links { inSource.insert(link.relativePath); inCopy.insert(link.copyPath) }
            var renamedTo: [String: String] = [:]
            for item in items where item.copyPath != item.relativePath { renamedTo[item.relativePath] = item.copyPath }
            for link in links where link.copyPath != link.relativePath { renamedTo[link.relativePath] = link.copyPath }
            var warnings: [String] = []
            for item in symlinks {
                // The text the walk read (a readlink of the copy would set its atime).
                let text = (item.linkText ?? [0]).dropLast().map { UInt8(bitPattern: $0) }
                guard text.first != UInt8(ascii: "/") else { continue }
                var parts = item.copyPath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                parts.removeLast()
                var escapes = false
                for part in text.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
                    if part.elementsEqual([UInt8(ascii: ".")]) { continue }
                    if part.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                        if parts.isEmpty { escapes = true; break }
                        parts.removeLast()
                    } else {
                        parts.append(EscapedBytes.string(part))
                    }
                }
                let target = parts.joined(separator: "/")
                guard !escapes, !target.isEmpty, !inCopy.contains(target) else { continue }
                let why: String
                if let to = renamedTo[target] {
                    why = "\(target) is renamed to \(to)"
                } else if isOmitted(target) {
                    why = "\(target) is left out"
                } else if let what = skipped[target] {
                    why = "\(target) is \(what), not copied"
                } else if inSource.contains(target) {
                    why = "\(target) is not in the copy"
                } else {
                    continue  // dangling in the source as well, or through a symlinked folder
                }
                warnings.append("\(item.copyPath): symlink to \(EscapedBytes.string(text)) names nothing in the copy: \(why) (link text kept)")
            }
            return warnings
        }
    }

    /// An attribute's name (NUL-terminated) for a message.
    fileprivate static func attributeName(_ name: [CChar]) -> String {
        EscapedBytes.string(name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) })
    }

    /// Opens a name of the source without following a symlink, without updating its atime where the
    /// kernel lets us (the file's owner, or root).
    fileprivate static func openSource(_ folder: Int32, _ name: [CChar], _ flags: Int32) -> Int32 {
        let flags = flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK
        let fd = openat(folder, name, flags | SENTINEL_O_NOATIME)
        return fd < 0 && errno == EPERM ? openat(folder, name, flags) : fd
    }

    /// Every extended attribute of one file, through `list` and `get` (flistxattr/fgetxattr or the
    /// l* calls). A file system without them has none.
    fileprivate static func readAttributes(path: String, list: (UnsafeMutablePointer<CChar>?, Int) -> Int,
                                           get: (UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int)
        throws(TreeCopyError) -> [Attribute] {
        var names: [CChar] = []
        while true {
            let size = list(nil, 0)
            if size < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP) { return [] }
            guard size >= 0 else { throw TreeCopyError(path, "cannot list extended attributes: \(String(cString: strerror(errno)))") }
            if size == 0 { return [] }
            names = [CChar](repeating: 0, count: size)
            let n = names.withUnsafeMutableBufferPointer { list($0.baseAddress, size) }
            if n < 0 && errno == ERANGE { continue }  // grew in between
            guard n >= 0 else { throw TreeCopyError(path, "cannot list extended attributes: \(String(cString: strerror(errno)))") }
            names.removeLast(size - n)
            break
        }
        var attributes: [Attribute] = []
        for name in names.split(separator: 0) {
            let cName = Array(name) + [0]
            while true {
                let size = get(cName, nil, 0)
                if size < 0 && errno == ENODATA { break }  // removed in between
                guard size >= 0 else {
                    throw TreeCopyError(path, "cannot read extended attribute \(attributeName(cName)): \(String(cString: strerror(errno)))")
                }
                var value = [UInt8](repeating: 0, count: size)
                let n = value.withUnsafeMutableBytes { get(cName, $0.baseAddress, size) }
                if n < 0 && (errno == ERANGE || errno == ENODATA) { continue }
                guard n >= 0 else {
                    throw TreeCopyError(path, "cannot read extended attribute \(attributeName(cName)): \(String(cString: strerror(errno)))")
                }
                value.removeLast(size - n)
                attributes.append(Attribute(name: cName, value: value))
                break
            }
        }
        return attributes
    }
}

extension TreeCopier {
    /// One copy: the walk, then the files on `threads` threads (a chunk of one folder's items at a
    /// time), then the other names of multiply linked files, then the folders' metadata.
    fileprivate final class Run: Sendable {
        let source: String
        let destination: String
        let folders: [Folder]
        let items: [Item]
        let chunks: [Range<Int>]
        let sourceRoot: Int32   // O_PATH descriptors of both roots, for the threads' openat chains
        let copyRoot: Int32
        let uid = geteuid()
        let gid = getegid()
        let next = Atomic<Int>(0)
        let cloning = Atomic<Bool>(true)   // FICLONE works here (until it fails once)
        let ranging = Atomic<Bool>(true)   // copy_file_range works here (until it fails once)
        let failed = Atomic<Bool>(false)
        let failure = Locked<TreeCopyError?>(nil)
        let notes = Locked<(lines: [String], said: Set<String>)>(([], []))

        /// Items per chunk, and data per chunk: a folder of large files is shared out too.
        static let chunkItems = 64
        static let chunkBytes = 16 << 20

        init(source: String, destination: String, folders: [Folder], items: [Item], sourceRoot: Int32, copyRoot: Int32) {
            self.source = source
            self.destination = destination
            self.folders = folders
            self.items = items
            self.sourceRoot = sourceRoot
            self.copyRoot = copyRoot
            var chunks: [Range<Int>] = []
            var start = 0
            var bytes = 0
            for i in items.indices {
                if i > start && (items[i].folder != items[start].folder || i - start >= Self.chunkItems || bytes >= Self.chunkBytes) {
                    chunks.append(start..<i)
                    start = i
                    bytes = 0
                }
                bytes += Int(items[i].status.st_size)
            }
            if start < items.count { chunks.append(start..<items.count) }
            self.chunks = chunks
        }

        static func copy(source: String, status: stat, destination: String, plan: Plan, threads: Int) throws(TreeCopyError) -> [String] {
            let copyRootFd = open(EscapedBytes.cString(destination), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard copyRootFd >= 0 else { throw TreeCopyError(destination, errno: errno) }
            defer { close(copyRootFd) }
            var made = stat()
            guard fstat(copyRootFd, &made) == 0 else { throw TreeCopyError(destination, errno: errno) }
            // A setgid parent gave the new root its bit, an ACL-default parent its ACLs: gone, so that
            // nothing made below inherits either (the root gets the source's own at the end).
            guard fchmod(copyRootFd, 0o700) == 0 else { throw TreeCopyError(destination, errno: errno) }
            for name in ["system.posix_acl_default", "system.posix_acl_access"] where fremovexattr(copyRootFd, name) != 0 {
                if errno != ENODATA && errno != ENOTSUP && errno != EOPNOTSUPP { throw TreeCopyError(destination, errno: errno) }
            }
            let sourceFd = openSource(AT_FDCWD, EscapedBytes.cString(source), O_RDONLY | O_DIRECTORY)
            guard sourceFd >= 0 else { throw TreeCopyError(source, errno: errno) }
            var opened = stat()
            let rootAttributes: [Attribute]
            do throws(TreeCopyError) {
                guard fstat(sourceFd, &opened) == 0, opened.st_dev == status.st_dev, opened.st_ino == status.st_ino else {
                    throw TreeCopyError(source, "changed during the copy")
                }
                rootAttributes = try readAttributes(path: source, list: { flistxattr(sourceFd, $0, $1) }, get: { fgetxattr(sourceFd, $0, $1, $2) })
            } catch {
                close(sourceFd)
                throw error
            }
            let sourceRoot = open(EscapedBytes.cString(source), SENTINEL_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard sourceRoot >= 0 else {
                let code = errno
                close(sourceFd)
                throw TreeCopyError(source, errno: code)
            }
            defer { close(sourceRoot) }
            let copyRoot = open(EscapedBytes.cString(destination), SENTINEL_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard copyRoot >= 0 else {
                let code = errno
                close(sourceFd)
                throw TreeCopyError(destination, errno: code)
            }
            defer { close(copyRoot) }

            var walk = Walk(source: source, destination: destination, plan: plan,
                            destinationIdentity: FileIdentity(device: UInt64(made.st_dev), inode: UInt64(made.st_ino)))
            walk.folders.append(Folder(relativePath: "", parent: -1, name: [], status: opened, attributes: rootAttributes))
            try walk.walk(folder: 0, sourceFd: sourceFd, copyFd: copyRoot)
            try walk.settle()

            let run = Run(source: source, destination: destination, folders: walk.folders, items: walk.items,
                          sourceRoot: sourceRoot, copyRoot: copyRoot)
            if threads <= 1 || run.chunks.count <= 1 {
                run.work()
            } else {
                DispatchQueue.concurrentPerform(iterations: min(threads, run.chunks.count)) { _ in run.work() }
            }
            if let failure = run.failure.withLock({ $0 }) { throw failure }
            for link in walk.links {
                let first = EscapedBytes.cString(walk.copyPath(walk.items[link.item].copyPath))
                guard linkat(AT_FDCWD, first, AT_FDCWD, EscapedBytes.cString(walk.copyPath(link.copyPath)), 0) == 0 else {
                    throw TreeCopyError(walk.copyPath(link.copyPath), errno: errno)
                }
            }
            for folder in walk.folders.reversed() {
                let path = walk.copyPath(folder.relativePath)
                let fd = open(EscapedBytes.cString(path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { throw TreeCopyError(path, errno: errno) }
                defer { close(fd) }
                try run.restore(fd, folder.status, folder.attributes, path: path, alwaysChown: true)
            }
            return walk.warnings + run.notes.withLock { $0.lines } + walk.danglingLinks()
        }

        func sourcePath(_ relativePath: String) -> String { relativePath.isEmpty ? source : source + "/" + relativePath }
        func copyPath(_ relativePath: String) -> String { relativePath.isEmpty ? destination : destination + "/" + relativePath }

        /// One thread's share: chunks until none is left or one thread failed.
        func work() {
            var folder = -1
            var sourceFd: Int32 = -1
            var copyFd: Int32 = -1
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 4096)
            defer {
                if sourceFd >= 0 { close(sourceFd) }
                if copyFd >= 0 { close(copyFd) }
                buffer.deallocate()
            }
            while !failed.load(ordering: .relaxed) {
                let chunk = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard chunk < chunks.count else { return }
                do throws(TreeCopyError) {
                    let range = chunks[chunk]
                    if items[range.lowerBound].folder != folder {
                        if sourceFd >= 0 { close(sourceFd); sourceFd = -1 }
                        if copyFd >= 0 { close(copyFd); copyFd = -1 }
                        folder = items[range.lowerBound].folder
                        sourceFd = try openFolder(folder, inCopy: false)
                        copyFd = try openFolder(folder, inCopy: true)
                    }
                    for item in items[range] {
                        // A file renamed into another folder: that folder's descriptor for this one.
                        let elsewhere = item.copyFolder == item.folder ? -1 : try openFolder(item.copyFolder, inCopy: true)
                        defer { if elsewhere >= 0 { close(elsewhere) } }
                        switch item.kind {
                        case .file: try copyFile(item, from: sourceFd, to: elsewhere >= 0 ? elsewhere : copyFd, buffer: buffer)
                        case .symlink: try copySymlink(item, to: elsewhere >= 0 ? elsewhere : copyFd)
                        }
                    }
                } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                    failed.store(true, ordering: .relaxed)
                    return
                }
            }
        }

        /// An O_PATH descriptor of a folder, opened name by name from the root, never through a symlink.
        /// The source's is checked to be the folder the walk saw.
        func openFolder(_ index: Int, inCopy: Bool) throws(TreeCopyError) -> Int32 {
            let root = inCopy ? copyRoot : sourceRoot
            var chain: [Int] = []
            var i = index
            while i > 0 { chain.append(i); i = folders[i].parent }
            var fd = dup(root)
            guard fd >= 0 else { throw TreeCopyError(inCopy ? destination : source, errno: errno) }
            for i in chain.reversed() {
                let child = openat(fd, folders[i].name, SENTINEL_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                let code = errno
                close(fd)
                guard child >= 0 else {
                    throw TreeCopyError(inCopy ? copyPath(folders[i].relativePath) : sourcePath(folders[i].relativePath), errno: code)
                }
                fd = child
            }
            if !inCopy {
                var st = stat()
                guard fstat(fd, &st) == 0, st.st_dev == folders[index].status.st_dev, st.st_ino == folders[index].status.st_ino else {
                    close(fd)
                    throw TreeCopyError(sourcePath(folders[index].relativePath), "changed during the copy")
                }
            }
            return fd
        }

        private func copyFile(_ item: Item, from folder: Int32, to copyFolder: Int32, buffer: UnsafeMutableRawBufferPointer)
            throws(TreeCopyError) {
            let path = sourcePath(item.relativePath)
            let src = openSource(folder, item.name, O_RDONLY)
            guard src >= 0 else { throw TreeCopyError(path, errno: errno) }
            defer { close(src) }
            var st = stat()
            guard fstat(src, &st) == 0 else { throw TreeCopyError(path, errno: errno) }
            guard (st.st_mode & S_IFMT) == S_IFREG, st.st_dev == item.status.st_dev, st.st_ino == item.status.st_ino else {
                throw TreeCopyError(path, "changed during the copy")
            }
            let copy = copyPath(item.copyPath)
            let dst = openat(copyFolder, item.copyName, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard dst >= 0 else { throw TreeCopyError(copy, errno: errno) }
            defer { close(dst) }
            try copyData(src, dst, size: Int64(st.st_size), sparse: Int64(st.st_blocks) * 512 < Int64(st.st_size),
                         path: path, copy: copy, buffer: buffer)
            for patch in item.patches { try apply(patch, to: dst, size: UInt64(st.st_size), path: path) }
            let attributes = try readAttributes(path: path, list: { flistxattr(src, $0, $1) }, get: { fgetxattr(src, $0, $1, $2) })
            try restore(dst, st, attributes, path: copy, alwaysChown: false)
        }

        /// The data: shared extents where the file system can (FICLONE), else copied in the kernel,
        /// only the data of a file with holes (SEEK_DATA/SEEK_HOLE; the copy is truncated to the size).
        private func copyData(_ src: Int32, _ dst: Int32, size: Int64, sparse: Bool, path: String, copy: String,
                              buffer: UnsafeMutableRawBufferPointer) throws(TreeCopyError) {
            guard size > 0 else { return }
            if cloning.load(ordering: .relaxed) {
                if sentinel_ficlone(dst, src) == 0 { return }
                cloning.store(false, ordering: .relaxed)  // this file system (or pair) cannot: not asked again
            }
            guard sparse else { return try copyRange(src, dst, from: 0, count: size, path: path, copy: copy, buffer: buffer) }
            var offset: Int64 = 0
            while offset < size {
                let data = lseek(src, off_t(offset), SENTINEL_SEEK_DATA)
                if data < 0 && errno == ENXIO { break }  // a hole to the end
                guard data >= 0 else { throw TreeCopyError(path, errno: errno) }
                let hole = lseek(src, data, SENTINEL_SEEK_HOLE)
                guard hole >= 0 else { throw TreeCopyError(path, errno: errno) }
                let end = min(Int64(hole), size)
                try copyRange(src, dst, from: Int64(data), count: end - Int64(data), path: path, copy: copy, buffer: buffer)
                offset = end
            }
            guard ftruncate(dst, off_t(size)) == 0 else { throw TreeCopyError(copy, errno: errno) }
        }

        /// `count` bytes at `offset` to the same offset of the copy: copy_file_range, or read and write
        /// where the kernel cannot (other file systems, old kernels). A file that shrank ends early.
        private func copyRange(_ src: Int32, _ dst: Int32, from offset: Int64, count: Int64, path: String, copy: String,
                               buffer: UnsafeMutableRawBufferPointer) throws(TreeCopyError) {
            var inOffset = offset
            var outOffset = offset
            var left = count
            while left > 0 {
                if ranging.load(ordering: .relaxed) {
                    let n = sentinel_copy_file_range(src, &inOffset, dst, &outOffset, Int(min(left, 1 << 30)))
                    if n > 0 { left -= Int64(n); continue }
                    if n == 0 { return }
                    if errno == EINTR { continue }
                    guard [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP, ENOTSUP].contains(errno) else {
                        throw TreeCopyError(path, "cannot copy to \(copy): \(String(cString: strerror(errno)))")
                    }
                    ranging.store(false, ordering: .relaxed)
                }
                let n = pread(src, buffer.baseAddress, min(Int(left), buffer.count), off_t(inOffset))
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw TreeCopyError(path, errno: errno) }
                if n == 0 { return }
                try writeAll(dst, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), at: outOffset, path: copy)
                inOffset += Int64(n)
                outOffset += Int64(n)
                left -= Int64(n)
            }
        }

        private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64, path: String) throws(TreeCopyError) {
            var done = 0
            while done < bytes.count {
                let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw TreeCopyError(path, errno: n < 0 ? errno : EIO) }
                done += n
            }
        }

        /// One patch, on the copy: refused (nothing written) unless the copy has `expected` there.
        private func apply(_ patch: Patch, to fd: Int32, size: UInt64, path: String) throws(TreeCopyError) {
            let at = "patch at offset \(patch.offset)"
            guard patch.bytes.count == patch.expected.count else {
                throw TreeCopyError(path, "\(at): \(patch.bytes.count) bytes to write but \(patch.expected.count) expected")
            }
            guard patch.offset <= size, UInt64(patch.bytes.count) <= size - patch.offset else {
                throw TreeCopyError(path, "\(at): \(patch.bytes.count) bytes past the end of the file (\(size) bytes)")
            }
            var found = [UInt8](repeating: 0, count: patch.expected.count)
            var done = 0
            while done < found.count {
                let n = found.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(patch.offset) + off_t(done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw TreeCopyError(path, "\(at): \(String(cString: strerror(n < 0 ? errno : EIO)))") }
                done += n
            }
            guard found == patch.expected else {
                func hex(_ bytes: [UInt8]) -> String {
                    bytes.prefix(32).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ") + (bytes.count > 32 ? " …" : "")
                }
                throw TreeCopyError(path, "\(at): expected \(hex(patch.expected)), found \(hex(found)); not patched")
            }
            let failed: TreeCopyError? = patch.bytes.withUnsafeBytes { bytes in
                do throws(TreeCopyError) { try writeAll(fd, bytes, at: Int64(patch.offset), path: path) } catch { return error }
                return nil
            }
            if let failed { throw failed }
        }

        private func copySymlink(_ item: Item, to copyFolder: Int32) throws(TreeCopyError) {
            let path = sourcePath(item.relativePath)
            let copy = copyPath(item.copyPath)
            guard symlinkat(item.linkText ?? [0], copyFolder, item.copyName) == 0 else { throw TreeCopyError(copy, errno: errno) }
            let st = item.status
            if st.st_uid != uid || st.st_gid != gid, fchownat(copyFolder, item.copyName, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0 {
                try ownerRefused(copy, st)
            }
            // No descriptor of a symlink takes attributes: by path (both folders were just opened
            // without following a link; nothing but the copier writes the copy).
            let sourceName = EscapedBytes.cString(path)
            let copyName = EscapedBytes.cString(copy)
            let attributes = try readAttributes(path: path, list: { llistxattr(sourceName, $0, $1) }, get: { lgetxattr(sourceName, $0, $1, $2) })
            try setAttributes(attributes, path: copy) { lsetxattr(copyName, $0, $1, $2, 0) }
            let times = [st.st_atim, st.st_mtim]
            guard utimensat(copyFolder, item.copyName, times, AT_SYMLINK_NOFOLLOW) == 0 else { throw TreeCopyError(copy, errno: errno) }
        }

        /// Owner, attributes, mode, times, in that order (see the type's comment). `alwaysChown`: for
        /// folders, which may have been made with another group than ours (a setgid parent).
        func restore(_ fd: Int32, _ st: stat, _ attributes: [Attribute], path: String, alwaysChown: Bool) throws(TreeCopyError) {
            if alwaysChown || st.st_uid != uid || st.st_gid != gid, fchown(fd, st.st_uid, st.st_gid) != 0 {
                try ownerRefused(path, st)
                _ = fchown(fd, uid_t.max, st.st_gid)  // the group alone, where we are in it
            }
            try setAttributes(attributes, path: path) { fsetxattr(fd, $0, $1, $2, 0) }
            guard fchmod(fd, st.st_mode & 0o7777) == 0 else { throw TreeCopyError(path, errno: errno) }
            let times = [st.st_atim, st.st_mtim]
            guard futimens(fd, times) == 0 else { throw TreeCopyError(path, errno: errno) }
        }

        /// Not root (EPERM): a warning, once for the whole copy; anything else stops it.
        private func ownerRefused(_ path: String, _ st: stat) throws(TreeCopyError) {
            guard errno == EPERM, uid != 0 else { throw TreeCopyError(path, "cannot set owner \(st.st_uid):\(st.st_gid): \(String(cString: strerror(errno)))") }
            warnOnce("owner", "owners not kept (not running as root), first \(path) (owner \(st.st_uid):\(st.st_gid))")
        }

        /// Attributes the copy's file system or our privileges refuse are a warning, once per name
        /// and reason; anything else stops the copy.
        private func setAttributes(_ attributes: [Attribute], path: String,
                                   set: (UnsafePointer<CChar>, UnsafeRawPointer?, Int) -> Int32) throws(TreeCopyError) {
            for attribute in attributes {
                let rc = attribute.value.withUnsafeBytes { set(attribute.name, $0.baseAddress, $0.count) }
                guard rc != 0 else { continue }
                let code = errno
                let name = attributeName(attribute.name)
                guard [EPERM, EACCES, ENOTSUP, EOPNOTSUPP].contains(code) else {
                    throw TreeCopyError(path, "cannot set extended attribute \(name): \(String(cString: strerror(code)))")
                }
                warnOnce("xattr \(name) \(code)", "extended attribute \(name) not kept: \(String(cString: strerror(code))), first \(path)")
            }
        }

        private func warnOnce(_ key: String, _ line: String) {
            notes.withLock { if $0.said.insert(key).inserted { $0.lines.append(line) } }
        }
    }
}
