import Foundation
import Glibc
@testable import SentinelSystem
import Testing

/// The in-place repair's swap on real folders: one atomic exchange, the old tree kept beside ROOT and
/// put back by a rollback, inode for inode.
@Suite struct TreeSwapTests {
    func folder(_ path: String, file: String = "f", _ text: String) throws -> UInt64 {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path + "/" + file))
        return inode(path)
    }

    func inode(_ path: String) -> UInt64 {
        var st = stat()
        return lstat(path, &st) == 0 ? UInt64(st.st_ino) : 0
    }

    @Test func exchangeSwapsTheTwoInodes() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-swap")
        defer { try? TreeCopier.removeTree(scratch) }
        let a = try folder(scratch + "/a", "a")
        let b = try folder(scratch + "/b", "b")
        try TreeSwap.exchange(scratch + "/a", scratch + "/b")
        #expect(inode(scratch + "/a") == b && inode(scratch + "/b") == a)
        #expect(FileManager.default.contents(atPath: scratch + "/a/f") == Data("b".utf8))
    }

    @Test func swapInThenRollbackPutsTheOriginalInodeBack() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-swap-in")
        defer { try? TreeCopier.removeTree(scratch) }
        let root = scratch + "/app"
        let original = try folder(root, "old")
        let staged = TreeSwap.stagingPath(root: root, date: 1_796_232_043)
        #expect(staged == root + ".repair-" + TreeSwap.timestamp(1_796_232_043))
        let repaired = try folder(staged, "new")
        let keep = TreeSwap.keepName(root: root, date: 1_796_232_043)

        try TreeSwap.swapIn(staged: staged, root: root, keepAs: keep)
        #expect(inode(root) == repaired && inode(keep) == original)
        #expect(!FileManager.default.fileExists(atPath: staged))

        let back = try TreeSwap.rollback(root: root, date: 1_796_232_100)
        #expect(back.restoredFrom == keep)
        #expect(back.repairedKeptAs == root + ".repaired-" + TreeSwap.timestamp(1_796_232_100))
        #expect(inode(root) == original && inode(back.repairedKeptAs) == repaired)
        #expect(!FileManager.default.fileExists(atPath: keep))
        #expect(FileManager.default.contents(atPath: root + "/f") == Data("old".utf8))
    }

    @Test func processesInTheOldTreeKeepIt() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-swap-busy")
        defer { try? TreeCopier.removeTree(scratch) }
        let root = scratch + "/app"
        _ = try folder(root, "old")
        let lib = try folder(root + "/lib", file: "libssl.so", "old library")
        let staged = TreeSwap.stagingPath(root: root, date: 0)
        _ = try folder(staged, "new")
        _ = try folder(staged + "/lib", file: "libssl.so", "new library")
        // A service with its cwd in the old tree and a library of it open.
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["60"]
        sleeper.currentDirectoryURL = URL(fileURLWithPath: root + "/lib")
        try sleeper.run()
        defer { kill(sleeper.processIdentifier, SIGKILL); sleeper.waitUntilExit() }
        let fd = open(root + "/lib/libssl.so", O_RDONLY)
        defer { close(fd) }

        let keep = TreeSwap.keepName(root: root, date: 0)
        try TreeSwap.swapIn(staged: staged, root: root, keepAs: keep)
        #expect(sleeper.isRunning)
        #expect(inode("/proc/\(sleeper.processIdentifier)/cwd/.") == lib)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(sleeper.processIdentifier)/cwd") == keep + "/lib")
        var bytes = [UInt8](repeating: 0, count: 64)
        let n = pread(fd, &bytes, bytes.count, 0)
        #expect(String(decoding: bytes[0..<max(0, n)], as: UTF8.self) == "old library")
        #expect(FileManager.default.contents(atPath: root + "/lib/libssl.so") == Data("new library".utf8))
    }

    @Test func rollbackTakesTheNewestKeptTree() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-swap-newest")
        defer { try? TreeCopier.removeTree(scratch) }
        let root = scratch + "/app"
        _ = try folder(root, "repaired twice")
        _ = try folder(root + ".orig-20250101T000000Z", "first")
        let newest = try folder(root + ".orig-20260101T000000Z", "second")
        _ = try folder(root + ".orig-20270101T000000Z.bak", "not a kept tree")
        _ = try folder(scratch + "/application.orig-20280101T000000Z", "another root's")
        let back = try TreeSwap.rollback(root: root + "/")
        #expect(back.restoredFrom == root + ".orig-20260101T000000Z")
        #expect(inode(root) == newest)
    }

    @Test func rollbackWithoutAKeptTreeSaysWhatItLookedFor() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-swap-none")
        defer { try? TreeCopier.removeTree(scratch) }
        let root = scratch + "/app"
        let original = try folder(root, "only")
        #expect {
            try TreeSwap.rollback(root: root)
        } throws: { error in
            "\(error)" == "no kept tree to roll \(root) back to: nothing named app.orig-YYYYMMDDTHHMMSSZ in \(scratch)"
        }
        #expect(inode(root) == original)
    }

    @Test func swapInRefusesToOverwriteAKeptTree() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-swap-taken")
        defer { try? TreeCopier.removeTree(scratch) }
        let root = scratch + "/app"
        let original = try folder(root, "old")
        let staged = try folder(root + ".repair-x", "new")
        _ = try folder(root + ".orig-x", "kept before")
        #expect {
            try TreeSwap.swapIn(staged: root + ".repair-x", root: root, keepAs: root + ".orig-x")
        } throws: { error in
            "\(error)" == "cannot keep the old tree as \(root).orig-x: it exists"
        }
        #expect(inode(root) == original && inode(root + ".repair-x") == staged)
    }

    @Test func renameNoReplaceRefusesAnExistingName() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-swap-noreplace")
        defer { try? TreeCopier.removeTree(scratch) }
        let a = try folder(scratch + "/a", "a")
        let b = try folder(scratch + "/b", "b")
        #expect {
            try TreeSwap.renameNoReplace(scratch + "/a", scratch + "/b")
        } throws: { error in
            "\(error)" == "cannot rename \(scratch)/a to \(scratch)/b: File exists"
        }
        #expect(inode(scratch + "/a") == a && inode(scratch + "/b") == b)
        try TreeSwap.renameNoReplace(scratch + "/a", scratch + "/c")
        #expect(inode(scratch + "/c") == a)
    }

    @Test func exchangeAcrossFileSystemsSaysSo() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-swap-xdev")
        defer { try? TreeCopier.removeTree(scratch) }
        var here = stat(), shm = stat()
        guard stat(scratch, &here) == 0, stat("/dev/shm", &shm) == 0, here.st_dev != shm.st_dev else {
            return  // no second file system to try (the fixtures are on /dev/shm's)
        }
        _ = try folder(scratch + "/a", "a")
        var template = Array("/dev/shm/tree-swap-XXXXXX".utf8CString)
        let other = String(cString: try #require(mkdtemp(&template)))
        defer { try? TreeCopier.removeTree(other) }
        #expect {
            try TreeSwap.exchange(scratch + "/a", other)
        } throws: { error in
            "\(error)" == "cannot exchange \(scratch)/a and \(other): not on the same file system"
        }
    }

    @Test func namesAreSiblingsWithSortableUTCStamps() {
        #expect(TreeSwap.timestamp(0) == "19700101T000000Z")
        #expect(TreeSwap.timestamp(1_796_232_043) == utcTimestamp(seconds: 1_796_232_043).filter { $0 != "-" && $0 != ":" })
        #expect(TreeSwap.keepName(root: "/srv/app/", date: 0) == "/srv/app.orig-19700101T000000Z")
        #expect(TreeSwap.stagingPath(root: "app", date: 86_399) == "app.repair-19700101T235959Z")
        #expect(TreeSwap.isTimestamp("20261207T153012Z") && !TreeSwap.isTimestamp("20261207T153012") && !TreeSwap.isTimestamp("2026120XT153012Z"))
    }
}
