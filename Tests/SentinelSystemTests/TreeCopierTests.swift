import CLinux
import Foundation
import Glibc
import SentinelCore
@testable import SentinelSystem
import SentinelTestSupport
import Testing

/// The repair's copy on real files: every kind of entry a bundle can hold, every piece of metadata,
/// compared field by field with the source, which must not change at all (ctime included).
@Suite struct TreeCopierTests {
    static let asRoot = geteuid() == 0

    @Test(.enabled(if: asRoot, "owners, setuid and security.capability need root"), arguments: [1, 3])
    func copyKeepsEverythingButWhatThePlanChanges(threads: Int) throws {
        let scratch = try Fixtures.temporaryDirectory("tree-copy")
        defer { try? TreeCopier.removeTree(scratch) }
        let src = scratch + "/src"
        let dst = scratch + "/dst"
        let originals = try TreeFixture.build(src)

        let crypto = originals["lib/libcrypto.so.1.1"]!
        let ssl = originals["lib/libssl.so.1.1"]!
        let cryptoPatch = TreeCopier.Patch(offset: 100, bytes: [0x41, 0x42, 0x43], expected: Array(crypto[100..<103]))
        let hardPatch = TreeCopier.Patch(offset: 4000, bytes: [0xff], expected: [crypto[4000]])
        let sslPatch = TreeCopier.Patch(offset: 0, bytes: Array("LIBSSL".utf8), expected: Array(ssl[0..<6]))
        let plan = TreeCopier.Plan(
            renames: ["lib/libssl.so.1.1": "lib/libssl.so.3", "a/b/c/deep.txt": "bin/deep-moved.txt"],
            omit: ["tests", "share/omit-me.txt"],
            // Both names of one inode: the shared patch once, and each name's own.
            patches: ["lib/libcrypto.so.1.1": [cryptoPatch], "lib/crypto-hard": [cryptoPatch, hardPatch], "lib/libssl.so.1.1": [sslPatch]])

        _ = try Manifest(src)  // readlink sets a fresh link's atime once: settled before the "before"
        let before = try Manifest(src)
        let warnings = try TreeCopier(threads: threads).copy(from: src, to: dst, plan: plan)
        let after = try Manifest(src)
        let copy = try Manifest(dst)

        #expect(Set(warnings) == [
            "run/fifo: not copied: a FIFO",
            "lib/libssl.so: symlink to libssl.so.1.1 names nothing in the copy: lib/libssl.so.1.1 is renamed to lib/libssl.so.3 (link text kept)",
        ])
        // The source: not one byte, not one time (ctime too: nothing was set on it).
        #expect(Set(after.records.keys) == Set(before.records.keys))
        for (path, was) in before.records.sorted(by: { $0.key < $1.key }) {
            let differences = after.records[path].map { $0.differences(from: was) } ?? []
            #expect(differences.isEmpty, "source \(path) changed: \(differences)")
        }

        var expected = before.records
        for gone in ["tests", "tests/t1.py", "share/omit-me.txt", "run/fifo"] { #expect(expected.removeValue(forKey: gone) != nil) }
        expected["lib/libssl.so.3"] = expected.removeValue(forKey: "lib/libssl.so.1.1")
        expected["bin/deep-moved.txt"] = expected.removeValue(forKey: "a/b/c/deep.txt")
        expected[""]!.nlink -= 1  // one folder fewer in the root: tests/
        var patchedCrypto = crypto
        patchedCrypto.replaceSubrange(100..<103, with: [0x41, 0x42, 0x43])
        patchedCrypto[4000] = 0xff
        expected["lib/libcrypto.so.1.1"]!.content = patchedCrypto
        expected["lib/crypto-hard"]!.content = patchedCrypto
        var patchedSSL = ssl
        patchedSSL.replaceSubrange(0..<6, with: Array("LIBSSL".utf8))
        expected["lib/libssl.so.3"]!.content = patchedSSL
        expected["lib/hard-ssl"]!.content = patchedSSL

        #expect(Set(copy.records.keys) == Set(expected.keys))
        for (path, want) in expected.sorted(by: { $0.key < $1.key }) {
            let differences = copy.records[path].map { $0.comparable.differences(from: want.comparable) } ?? []
            #expect(differences.isEmpty, "copy of \(path) differs: \(differences)")
        }
        // The things the comparison above leaves out on purpose, checked one by one.
        #expect(copy.records["bin/suid"]?.mode == 0o4755 && copy.records["bin/suid"]?.uid == 0)
        #expect(copy.records["bin/cap"]?.xattrs["security.capability"] == TreeFixture.capability)
        #expect(copy.records["bin/suid-nobody"]?.mode == 0o6755 && copy.records["bin/suid-nobody"]?.uid == 65534)
        #expect(copy.records["bin/suid-nobody"]?.xattrs["security.capability"] == TreeFixture.capability)
        #expect(copy.records["lib/nobody.dat"]?.uid == 65534 && copy.records["lib/nobody.dat"]?.gid == 65534)
        #expect(copy.records["lib/libcrypto.so"]?.xattrs["trusted.sentinel"] == Array("on a link".utf8))
        #expect(copy.records["lib/caf\\xe9.py"]?.xattrs["user.test"] == Array("value".utf8))
        #expect(copy.records["lib/libcrypto.so.1.1"]?.inode == copy.records["lib/crypto-hard"]?.inode)
        #expect(copy.records["lib/libssl.so.3"]?.inode == copy.records["lib/hard-ssl"]?.inode)
        #expect(copy.records["lib/libcrypto.so.1.1"]?.inode != before.records["lib/libcrypto.so.1.1"]?.inode)
        #expect(copy.records["lib/libcrypto.so.1.1"]?.nlink == 2)
        #expect(copy.records["lib/libssl.so"]?.link == Array("libssl.so.1.1".utf8))
        #expect(copy.records["bin/sh"]?.link == Array("/bin/sh".utf8))
        let sparse = try #require(copy.records["data/sparse.bin"])
        #expect(sparse.size == 8 << 20)
        #expect(sparse.blocks <= before.records["data/sparse.bin"]!.blocks)  // the holes stayed holes
        #expect(sparse.blocks * 512 < 1 << 20)
    }

    @Test func patchOnOtherBytesIsRefusedAndThePartialCopyRemoved() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-copy-refuse")
        defer { try? TreeCopier.removeTree(scratch) }
        try FileManager.default.createDirectory(atPath: scratch + "/src/lib", withIntermediateDirectories: true)
        try Data("0123456789".utf8).write(to: URL(fileURLWithPath: scratch + "/src/lib/a.so"))
        let plan = TreeCopier.Plan(patches: ["lib/a.so": [TreeCopier.Patch(offset: 2, bytes: [0x78], expected: [0x39])]])
        #expect {
            try TreeCopier().copy(from: scratch + "/src", to: scratch + "/dst", plan: plan)
        } throws: { error in
            "\(error)" == "\(scratch)/src/lib/a.so: patch at offset 2: expected 39, found 32; not patched"
        }
        #expect(!FileManager.default.fileExists(atPath: scratch + "/dst"))
    }

    @Test func destinationThatExistsIsRefusedAndLeftAlone() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-copy-exists")
        defer { try? TreeCopier.removeTree(scratch) }
        try FileManager.default.createDirectory(atPath: scratch + "/src", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scratch + "/dst", withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: scratch + "/dst/keep"))
        #expect {
            try TreeCopier().copy(from: scratch + "/src", to: scratch + "/dst")
        } throws: { error in
            "\(error)" == "\(scratch)/dst: already exists"
        }
        #expect(FileManager.default.contents(atPath: scratch + "/dst/keep") == Data("mine".utf8))
    }

    @Test func planNamingNothingInTheTreeIsRefused() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-copy-plan")
        defer { try? TreeCopier.removeTree(scratch) }
        try FileManager.default.createDirectory(atPath: scratch + "/src/lib", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: scratch + "/src/lib/a.so"))
        #expect {
            try TreeCopier().copy(from: scratch + "/src", to: scratch + "/dst", plan: .init(renames: ["lib/b.so": "lib/c.so"]))
        } throws: { error in
            "\(error)" == "\(scratch)/src/lib/b.so: the plan changes it, but it is not in the tree"
        }
        #expect {
            try TreeCopier().copy(from: scratch + "/src", to: scratch + "/dst", plan: .init(renames: ["lib/a.so": "nowhere/a.so"]))
        } throws: { error in
            "\(error)" == "\(scratch)/src/lib/a.so: the plan renames it to nowhere/a.so, which is not a name in a folder of the copy"
        }
        #expect(!FileManager.default.fileExists(atPath: scratch + "/dst"))
    }

    @Test func destinationInsideTheSourceIsRefused() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-copy-inside")
        defer { try? TreeCopier.removeTree(scratch) }
        try FileManager.default.createDirectory(atPath: scratch + "/src/lib", withIntermediateDirectories: true)
        #expect {
            try TreeCopier().copy(from: scratch + "/src", to: scratch + "/src/lib/copy")
        } throws: { error in
            "\(error)".hasSuffix("the destination must not be inside the source")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch + "/src/lib/copy"))
    }

    @Test func symlinkTargetFromThePlanReplacesTheLinkText() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-copy-relink")
        defer { try? TreeCopier.removeTree(scratch) }
        try FileManager.default.createDirectory(atPath: scratch + "/src/lib", withIntermediateDirectories: true)
        try Data("ssl".utf8).write(to: URL(fileURLWithPath: scratch + "/src/lib/libssl.so.1.1"))
        try FileManager.default.createSymbolicLink(atPath: scratch + "/src/lib/libssl.so", withDestinationPath: "libssl.so.1.1")
        let plan = TreeCopier.Plan(renames: ["lib/libssl.so.1.1": "lib/libssl.so.3"], symlinkTargets: ["lib/libssl.so": "libssl.so.3"])
        let warnings = try TreeCopier().copy(from: scratch + "/src", to: scratch + "/dst", plan: plan)
        #expect(warnings.isEmpty)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: scratch + "/dst/lib/libssl.so") == "libssl.so.3")
        #expect(FileManager.default.contents(atPath: scratch + "/dst/lib/libssl.so") == Data("ssl".utf8))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: scratch + "/src/lib/libssl.so") == "libssl.so.1.1")
    }

    @Test func removeTreeRemovesLinksNotWhatTheyName() throws {
        let scratch = try Fixtures.temporaryDirectory("tree-remove")
        defer { try? TreeCopier.removeTree(scratch) }
        try FileManager.default.createDirectory(atPath: scratch + "/outside", withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: scratch + "/outside/file"))
        try FileManager.default.createDirectory(atPath: scratch + "/tree/a/b", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: scratch + "/tree/a/b/f"))
        try FileManager.default.createSymbolicLink(atPath: scratch + "/tree/a/out", withDestinationPath: scratch + "/outside")
        try FileManager.default.createSymbolicLink(atPath: scratch + "/tree/a/rel", withDestinationPath: "../../outside")
        // A folder nobody may write into still goes (rm -rf as root does the same).
        #expect(chmod(scratch + "/tree/a/b", 0o500) == 0)
        try TreeCopier.removeTree(scratch + "/tree/")
        #expect(!FileManager.default.fileExists(atPath: scratch + "/tree"))
        #expect(FileManager.default.contents(atPath: scratch + "/outside/file") == Data("keep".utf8))
        try TreeCopier.removeTree(scratch + "/tree")  // nothing there: nothing to do
    }
}

extension TreeCopierTests {
    /// The test tree: one of each kind of entry and metadata a bundle can carry. Returns the initial
    /// contents of the files the test patches.
    enum TreeFixture {
        /// security.capability for cap_net_bind_service+ep, as setcap writes it (VFS_CAP_REVISION_2).
        static let capability: [UInt8] = [0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]

        static func build(_ root: String) throws -> [String: [UInt8]] {
            for dir in ["bin", "lib", "a/b/c", "empty", "acl-dir", "data", "run", "tests", "share"] {
                try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
            }
            var generator = SplitMix64(state: 7)
            let crypto = (0..<8192).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let ssl = Array("\u{7f}ELF libssl 1.1 stand-in".utf8) + [UInt8](repeating: 0x5a, count: 200)
            try write(root + "/bin/tool", Array("tool".utf8), mode: 0o750)
            try write(root + "/bin/suid", Array("suid".utf8), mode: 0o4755)
            try write(root + "/bin/cap", Array("cap".utf8), mode: 0o755)
            try xattr(root + "/bin/cap", "security.capability", capability)
            // Owned by someone else, so the copy is chown()ed: which clears setuid, setgid and the capability.
            try write(root + "/bin/suid-nobody", Array("suid nobody".utf8), mode: 0o755)
            #expect(chown(root + "/bin/suid-nobody", 65534, 65534) == 0 && chmod(root + "/bin/suid-nobody", 0o6755) == 0)
            try xattr(root + "/bin/suid-nobody", "security.capability", capability)
            try link(root + "/bin/sh", "/bin/sh")
            try write(root + "/lib/libssl.so.1.1", ssl, mode: 0o644)
            #expect(Glibc.link(root + "/lib/libssl.so.1.1", root + "/lib/hard-ssl") == 0)
            try link(root + "/lib/libssl.so", "libssl.so.1.1")
            try write(root + "/lib/libcrypto.so.1.1", crypto, mode: 0o755)
            #expect(Glibc.link(root + "/lib/libcrypto.so.1.1", root + "/lib/crypto-hard") == 0)
            try link(root + "/lib/libcrypto.so", "libcrypto.so.1.1")
            try xattr(root + "/lib/libcrypto.so", "trusted.sentinel", Array("on a link".utf8))
            try link(root + "/lib/gone", "nothing-here")
            let latin1 = Array((root + "/lib/caf").utf8) + [0xe9] + Array(".py".utf8)
            let fd = open(latin1.map { CChar(bitPattern: $0) } + [0], O_WRONLY | O_CREAT | O_EXCL, 0o644)
            guard fd >= 0 else { throw FixtureError("non-UTF-8 name: \(String(cString: strerror(errno)))") }
            close(fd)
            try xattr(EscapedBytes.string(latin1), "user.test", Array("value".utf8))
            try write(root + "/lib/nobody.dat", Array("nobody".utf8), mode: 0o640)
            #expect(chown(root + "/lib/nobody.dat", 65534, 65534) == 0)
            // An ACL with a named user (1000: r) and mask r: the mode's group bits are the mask.
            try write(root + "/lib/acl.txt", Array("acl".utf8), mode: 0o640)
            try xattr(root + "/lib/acl.txt", "system.posix_acl_access", acl([(0x01, 6, nil), (0x02, 4, 1000), (0x04, 4, nil), (0x10, 4, nil), (0x20, 0, nil)]))
            try xattr(root + "/acl-dir", "system.posix_acl_default", acl([(0x01, 7, nil), (0x04, 5, nil), (0x20, 5, nil)]))
            try write(root + "/a/b/c/deep.txt", Array("deep".utf8), mode: 0o600)
            try write(root + "/tests/t1.py", Array("t1".utf8), mode: 0o644)
            try write(root + "/share/omit-me.txt", Array("omit".utf8), mode: 0o644)
            #expect(mkfifo(root + "/run/fifo", 0o600) == 0)
            // 8 MiB with two 4 KiB pieces of data: 1 MiB in and at the end.
            let sparse = open(root + "/data/sparse.bin", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            #expect(pwrite(sparse, [UInt8](repeating: 0xab, count: 4096), 4096, 1 << 20) == 4096)
            #expect(pwrite(sparse, [UInt8](repeating: 0xcd, count: 4096), 4096, (8 << 20) - 4096) == 4096)
            close(sparse)
            try xattr(root, "user.root", Array("top".utf8))
            #expect(chmod(root + "/empty", 0o700) == 0)
            #expect(chmod(root + "/acl-dir", 0o2775) == 0)
            #expect(chmod(root + "/data", 0o1777) == 0)
            #expect(chmod(root, 0o751) == 0)
            // Times last, deepest first (every name made in a folder sets its mtime), each its own
            // nanoseconds.
            let all = try Manifest(root).records.keys.sorted { $0.count > $1.count }  // a name is longer than its folder's
            for (i, path) in all.enumerated() {
                let full = path.isEmpty ? root : root + "/" + path
                let times = [timespec(tv_sec: 1_650_000_000 + i, tv_nsec: 987_654_321 - i), timespec(tv_sec: 1_600_000_000 + i, tv_nsec: 123_456_789 + i)]
                #expect(utimensat(AT_FDCWD, EscapedBytes.cString(full), times, AT_SYMLINK_NOFOLLOW) == 0, "\(path)")
            }
            return ["lib/libcrypto.so.1.1": crypto, "lib/libssl.so.1.1": ssl]
        }

        static func write(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
            guard fd >= 0, Glibc.write(fd, bytes, bytes.count) == bytes.count, fchmod(fd, mode) == 0 else {
                throw FixtureError("\(path): \(String(cString: strerror(errno)))")
            }
            close(fd)
        }

        static func link(_ path: String, _ text: String) throws {
            guard symlink(text, path) == 0 else { throw FixtureError("\(path): \(String(cString: strerror(errno)))") }
        }

        /// Set on the name itself (a symlink's own attributes), byte-exact.
        static func xattr(_ path: String, _ name: String, _ value: [UInt8]) throws {
            guard lsetxattr(EscapedBytes.cString(path), name, value, value.count, 0) == 0 else {
                throw FixtureError("\(path): \(name): \(String(cString: strerror(errno)))")
            }
        }

        /// The kernel's binary ACL (POSIX_ACL_XATTR_VERSION 2): (tag, permissions, id) entries.
        static func acl(_ entries: [(tag: UInt16, perm: UInt16, id: UInt32?)]) -> [UInt8] {
            func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
            return le(UInt32(2)) + entries.flatMap { le($0.tag) + le($0.perm) + le($0.id ?? UInt32.max) }
        }
    }

    /// Everything about every name of a tree, read without changing it: stat first, then the data (with
    /// O_NOATIME), since a read sets the atime a copy's metadata was restored to.
    struct Manifest {
        struct Record: Equatable {
            var type: mode_t
            var mode: mode_t
            var uid: uid_t
            var gid: gid_t
            var size: Int64
            var atime: [Int]
            var mtime: [Int]
            var ctime: [Int]
            var nlink: Int
            var inode: UInt64
            var blocks: Int64
            var xattrs: [String: [UInt8]]
            var link: [UInt8]?
            var content: [UInt8]?

            /// What a copy must have equal: all but ctime, inode and allocation (and a folder's size,
            /// which is the file system's business).
            var comparable: Record {
                var record = self
                record.ctime = []
                record.inode = 0
                record.blocks = 0
                if type == S_IFDIR { record.size = 0 }
                return record
            }

            /// The fields that differ, each as "name: this vs other" (content by size and first difference).
            func differences(from other: Record) -> [String] {
                var out: [String] = []
                func check<T: Equatable>(_ name: String, _ a: T, _ b: T) { if a != b { out.append("\(name): \(a) vs \(b)") } }
                check("type", type, other.type)
                check("mode", String(mode, radix: 8), String(other.mode, radix: 8))
                check("uid", uid, other.uid)
                check("gid", gid, other.gid)
                check("size", size, other.size)
                check("atime", atime, other.atime)
                check("mtime", mtime, other.mtime)
                check("ctime", ctime, other.ctime)
                check("nlink", nlink, other.nlink)
                check("inode", inode, other.inode)
                check("blocks", blocks, other.blocks)
                check("xattrs", xattrs, other.xattrs)
                check("link", link, other.link)
                if content != other.content {
                    let a = content ?? [], b = other.content ?? []
                    let at = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
                    out.append("content: \(a.count) vs \(b.count) bytes, first difference at \(at)")
                }
                return out
            }
        }

        var records: [String: Record] = [:]

        init(_ root: String) throws {
            var st = stat()
            guard lstat(root, &st) == 0 else { throw FixtureError("\(root): \(String(cString: strerror(errno)))") }
            try add("", root, st)
        }

        private mutating func add(_ relativePath: String, _ path: String, _ st: stat) throws {
            let cPath = EscapedBytes.cString(path)
            var record = Record(type: st.st_mode & S_IFMT, mode: st.st_mode & 0o7777, uid: st.st_uid, gid: st.st_gid, size: Int64(st.st_size),
                                atime: [st.st_atim.tv_sec, st.st_atim.tv_nsec], mtime: [st.st_mtim.tv_sec, st.st_mtim.tv_nsec],
                                ctime: [st.st_ctim.tv_sec, st.st_ctim.tv_nsec], nlink: Int(st.st_nlink), inode: UInt64(st.st_ino),
                                blocks: Int64(st.st_blocks), xattrs: [:], link: nil, content: nil)
            var names = [CChar](repeating: 0, count: 4096)
            let n = llistxattr(cPath, &names, names.count)
            for name in names[0..<max(0, n)].split(separator: 0) {
                var value = [UInt8](repeating: 0, count: 65536)
                let size = lgetxattr(cPath, Array(name) + [0], &value, value.count)
                record.xattrs[String(decoding: name.map { UInt8(bitPattern: $0) }, as: UTF8.self)] = Array(value[0..<max(0, size)])
            }
            switch record.type {
            case S_IFLNK:
                var text = [CChar](repeating: 0, count: 4096)
                let n = readlink(cPath, &text, text.count)
                record.link = text[0..<max(0, n)].map { UInt8(bitPattern: $0) }
            case S_IFREG:
                let fd = open(cPath, O_RDONLY | SENTINEL_O_NOATIME)
                guard fd >= 0 else { throw FixtureError("\(path): \(String(cString: strerror(errno)))") }
                var data = [UInt8](repeating: 0, count: Int(st.st_size))
                let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                close(fd)
                record.content = Array(data[0..<max(0, n)])
            case S_IFDIR:
                let fd = open(cPath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | SENTINEL_O_NOATIME)
                guard fd >= 0, let dir = fdopendir(fd) else { throw FixtureError("\(path): \(String(cString: strerror(errno)))") }
                var children: [(String, stat)] = []
                while let entry = readdir(dir) {
                    let name = EscapedBytes.string(directoryEntryBytes(entry))
                    if name == "." || name == ".." { continue }
                    var child = stat()
                    guard fstatat(fd, EscapedBytes.cString(name), &child, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                    children.append((name, child))
                }
                closedir(dir)
                records[relativePath] = record
                for (name, child) in children {
                    try add(relativePath.isEmpty ? name : relativePath + "/" + name, path + "/" + name, child)
                }
                return
            default:
                break
            }
            records[relativePath] = record
        }
    }
}
