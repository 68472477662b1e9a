import CLinux
import Glibc
import SentinelCore

/// Puts a repaired copy of a tree in the tree's place in one atomic step (renameat2 RENAME_EXCHANGE: a
/// reader sees the whole old tree or the whole new one, never a mix or nothing), keeping the old tree
/// beside it, and swaps it back. All the names are siblings of ROOT (same folder, so the same file
/// system, which an exchange needs):
///
///     ROOT.repair-<ts>     the copy while it is written and checked (`stagingPath`)
///     ROOT.orig-<ts>       the tree a repair replaced (`keepName`)
///     ROOT.repaired-<ts>   the repaired tree a rollback took out
///
/// <ts> is UTC as 20261207T153012Z, which sorts as time does. Visible names, not dot-names: a copy
/// left over by an interrupted repair shows up in `ls` beside the tree.
///
/// A process that has a file or folder of the old tree open (or as its cwd) keeps it: the exchange
/// changes names, not inodes.
public enum TreeSwap {
    /// Swaps the two names in one step; both must exist, on one file system.
    public static func exchange(_ a: String, _ b: String) throws(TreeSwapError) {
        guard sentinel_renameat2(AT_FDCWD, EscapedBytes.cString(a), AT_FDCWD, EscapedBytes.cString(b), UInt32(SENTINEL_RENAME_EXCHANGE)) == 0 else {
            let reason = switch errno {
            case EXDEV: "not on the same file system"
            case EINVAL, ENOSYS: "the file system cannot exchange atomically"
            default: String(cString: strerror(errno))
            }
            throw TreeSwapError("cannot exchange \(a) and \(b): \(reason)")
        }
    }

    /// Renames `from` to `to`, refused if `to` exists (where rename(2) would replace it).
    public static func renameNoReplace(_ from: String, _ to: String) throws(TreeSwapError) {
        guard sentinel_renameat2(AT_FDCWD, EscapedBytes.cString(from), AT_FDCWD, EscapedBytes.cString(to), UInt32(SENTINEL_RENAME_NOREPLACE)) == 0 else {
            throw TreeSwapError("cannot rename \(from) to \(to): \(String(cString: strerror(errno)))")
        }
    }

    /// Puts the folder `staged` at `root` and the old tree at `keepAs`: the exchange (the one step a
    /// reader of `root` can see), then a rename of the old tree from the staged name. The staged tree
    /// is written out to disk first (syncfs): a crash just after the exchange must not leave ROOT with
    /// files whose data never reached the disk (a copy is written through the page cache, unsynced).
    public static func swapIn(staged: String, root: String, keepAs: String) throws(TreeSwapError) {
        try requireFolder(staged)
        try requireFolder(root)
        var st = stat()
        if lstat(EscapedBytes.cString(keepAs), &st) == 0 { throw TreeSwapError("cannot keep the old tree as \(keepAs): it exists") }
        let fd = open(EscapedBytes.cString(staged), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0, sentinel_syncfs(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw TreeSwapError("cannot write \(staged) out to disk before the swap: \(reason)")
        }
        close(fd)
        try exchange(staged, root)
        do throws(TreeSwapError) {
            try renameNoReplace(staged, keepAs)
        } catch {
            throw TreeSwapError("\(root) is the repaired tree now; the old tree is at \(staged), not \(keepAs) (\(error))")
        }
        syncFolder(of: root)
    }

    /// Puts back the newest tree kept beside `root` (`ROOT.orig-<ts>`), and keeps the tree it takes out
    /// as `ROOT.repaired-<ts of date>`.
    public static func rollback(root: String, date: Int64 = Int64(time(nil))) throws(TreeSwapError)
        -> (restoredFrom: String, repairedKeptAs: String) {
        let root = TreeCopier.trimmed(root)
        let (parent, base) = split(root)
        let prefix = base + ".orig-"
        guard let dir = opendir(EscapedBytes.cString(parent)) else {
            throw TreeSwapError("cannot look for a kept tree of \(root) in \(parent): \(String(cString: strerror(errno)))")
        }
        var newest: String?
        while let entry = readdir(dir) {
            let name = EscapedBytes.string(directoryEntryBytes(entry))
            guard name.hasPrefix(prefix), isTimestamp(name.dropFirst(prefix.count)) else { continue }
            if newest.map({ name > $0 }) ?? true { newest = name }
        }
        closedir(dir)
        guard let newest else {
            throw TreeSwapError("no kept tree to roll \(root) back to: nothing named \(prefix)YYYYMMDDTHHMMSSZ in \(parent)")
        }
        let kept = parent == "/" ? "/" + newest : parent + "/" + newest
        let repaired = root + ".repaired-" + timestamp(date)
        try requireFolder(kept)
        try requireFolder(root)
        var st = stat()
        if lstat(EscapedBytes.cString(repaired), &st) == 0 { throw TreeSwapError("cannot keep the repaired tree as \(repaired): it exists") }
        try exchange(kept, root)
        do throws(TreeSwapError) {
            try renameNoReplace(kept, repaired)
        } catch {
            throw TreeSwapError("\(root) is the kept tree again; the repaired tree is at \(kept), not \(repaired) (\(error))")
        }
        syncFolder(of: root)
        return (kept, repaired)
    }

    /// `ROOT.orig-20261207T153012Z`: where `swapIn` keeps the tree it replaces.
    public static func keepName(root: String, date: Int64) -> String {
        TreeCopier.trimmed(root) + ".orig-" + timestamp(date)
    }

    /// `ROOT.repair-20261207T153012Z`: where the repaired copy is written, beside ROOT.
    public static func stagingPath(root: String, date: Int64) -> String {
        TreeCopier.trimmed(root) + ".repair-" + timestamp(date)
    }

    /// Seconds since the epoch as 20261207T153012Z: the report's UTC text without its separators.
    public static func timestamp(_ seconds: Int64) -> String {
        String(utcTimestamp(seconds: seconds).filter { $0 != "-" && $0 != ":" })
    }

    /// Whether `text` is what `timestamp` makes: 8 digits, T, 6 digits, Z.
    static func isTimestamp(_ text: Substring) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return false }
        return (bytes[0..<8] + bytes[9..<15]).allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// The folder a path is in and its last name ("app" is in ".", "/app" in "/").
    static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let parent = String(path[..<slash])
        return (parent.isEmpty ? "/" : parent, String(path[path.index(after: slash)...]))
    }

    /// The renames made durable (fsync of the folder holding the names). Best effort: they are done,
    /// and the next journal commit writes them anyway.
    private static func syncFolder(of path: String) {
        let fd = open(EscapedBytes.cString(split(path).parent), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// A folder, not a symlink to one: an exchange would move the link, not the tree.
    private static func requireFolder(_ path: String) throws(TreeSwapError) {
        var st = stat()
        guard lstat(EscapedBytes.cString(path), &st) == 0 else { throw TreeSwapError("\(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw TreeSwapError("\(path): \((st.st_mode & S_IFMT) == S_IFLNK ? "a symlink, not a folder (name the folder itself)" : "not a folder")")
        }
    }
}
