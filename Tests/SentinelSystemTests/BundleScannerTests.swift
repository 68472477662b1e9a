import Foundation
import SentinelCore
@testable import SentinelSystem
import Testing

/// The tree walk and the stat-keyed catalog on real files.
@Suite struct BundleScannerTests {
    func scratchTree() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scanner-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
        // libz.so.1 is a symlink: copy the file it names.
        let libz = URL(fileURLWithPath: "/usr/lib/x86_64-linux-gnu/libz.so.1").resolvingSymlinksInPath().path
        for name in ["a.so", "b.so", "c.so"] {
            try FileManager.default.copyItem(atPath: libz, toPath: dir + "/lib/" + name)
        }
        try "print(1)\n".write(toFile: dir + "/lib/app.py", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/lib/alias.so", withDestinationPath: "a.so")
        return dir
    }

    @Test func fileVanishingBetweenWalkAndReadIsOneWarning() throws {
        let root = try scratchTree()
        let walk = try TreeWalker.walk(root: root)
        try FileManager.default.removeItem(atPath: root + "/lib/b.so")
        let inventory = BundleScanner().inventory(root: root, entries: walk.entries, warnings: walk.warnings)
        #expect(inventory.warnings == ["lib/b.so: vanished during the scan"])
        #expect(inventory.elfFiles.map(\.relativePath).sorted() == ["lib/a.so", "lib/c.so"])
    }

    @Test func fileReplacedBetweenWalkAndReadIsOneWarning() throws {
        let root = try scratchTree()
        let walk = try TreeWalker.walk(root: root)
        // A new inode at the same path, as an upgrade's rename() leaves it.
        try FileManager.default.copyItem(atPath: root + "/lib/c.so", toPath: root + "/lib/c.so.new")
        _ = rename(root + "/lib/c.so.new", root + "/lib/c.so")
        let inventory = BundleScanner().inventory(root: root, entries: walk.entries, warnings: walk.warnings)
        #expect(inventory.warnings == ["lib/c.so: replaced during the scan"])
    }

    @Test func symlinkedFilesAreAliasesOfOneFile() throws {
        let root = try scratchTree()
        let inventory = try BundleScanner().inventory(root: root)
        let a = try #require(inventory.elfFiles.first { $0.relativePath == "lib/a.so" })
        #expect(a.aliases == ["lib/alias.so"])
        #expect(inventory.elfFiles.count == 3)
        #expect(inventory.otherFiles == ["lib/app.py"])
        #expect(inventory.fileCount == 5)
    }

    @Test func unchangedFilesAreReadOnceAndChangedOnesAgain() throws {
        let root = try scratchTree()
        let catalog = ELFCatalog()
        let first = try BundleScanner(catalog: catalog).inventory(root: root)
        #expect(catalog.count == 4)  // three ELF files and app.py (not ELF), each by identity
        // Make a.so a different ELF in place (same inode, new size and mtime): it must be read again.
        let libssl = try Data(contentsOf: URL(fileURLWithPath: "/usr/lib/x86_64-linux-gnu/libssl.so.3"))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: root + "/lib/a.so"))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: libssl)
        try handle.close()
        let second = try BundleScanner(catalog: catalog).inventory(root: root)
        let before = first.elfFiles.first { $0.relativePath == "lib/a.so" }?.file.object.soname
        let after = second.elfFiles.first { $0.relativePath == "lib/a.so" }?.file.object.soname
        #expect(before == "libz.so.1")
        #expect(after == "libssl.so.3")
        #expect(catalog.count == 4)
    }

    /// The auditor reuses its loader simulation only while nothing it looked at changed: a rewritten
    /// consumer in the tree, or a library appearing in a folder the loader searched outside it.
    @Test func cachedLinkageFollowsChangesInsideAndOutsideTheTree() throws {
        let trees = try Fixtures.elfTrees()
        let root = try Fixtures.temporaryDirectory("linkage-cache")
        defer { try? FileManager.default.removeItem(atPath: root) }
        _ = try run("/bin/cp", ["-a", trees + "/problems/.", root])
        let outside = try Fixtures.temporaryDirectory("linkage-outside")
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let env = TargetEnvironment(["LD_LIBRARY_PATH": outside])
        let auditor = BundleAuditor(catalog: ELFCatalog())
        func codes() throws -> [String] {
            try auditor.audit(root: root, environment: env, expectFIPS: false).findings.map(\.code.rawValue).sorted()
        }
        #expect(try codes().contains("openssl-unresolved"))
        #expect(try codes().contains("openssl-unresolved"))  // cached, same verdict
        // A copy of the libcrypto under the missing name, in the LD_LIBRARY_PATH folder (outside the tree).
        _ = try run("/bin/cp", [root + "/lib/libcrypto.so.3", outside + "/libcrypto-deadbeef.so.3"])
        let resolved = try codes()
        #expect(!resolved.contains("openssl-unresolved"))
        #expect(resolved.contains("split-libcrypto"))  // the consumer now ends in a second libcrypto
        // Rewrite the consumer in the tree: the split goes away.
        _ = try run("/usr/bin/patchelf", ["--replace-needed", "libcrypto-deadbeef.so.3", "libcrypto.so.3",
                                          root + "/lib/_gone.cpython-39-x86_64-linux-gnu.so"])
        let fixed = try codes()
        #expect(!fixed.contains("split-libcrypto") && !fixed.contains("mangled-openssl-name"))
    }

    /// A cached report also depends on the paths the findings checked (here SSL_CERT_FILE).
    @Test func cachedReportFollowsTheFilesTheFindingsChecked() throws {
        let root = try Fixtures.elfTrees() + "/problems"
        let caDir = try Fixtures.temporaryDirectory("linkage-ca")
        defer { try? FileManager.default.removeItem(atPath: caDir) }
        let caFile = caDir + "/ca.pem"
        let env = TargetEnvironment(["SSL_CERT_FILE": caFile])
        let auditor = BundleAuditor(catalog: ELFCatalog())
        func codes() throws -> [String] {
            try auditor.audit(root: root, environment: env, expectFIPS: false).findings.map(\.code.rawValue)
        }
        #expect(try codes().contains("trust-store-missing"))
        #expect(try codes().contains("trust-store-missing"))
        try "-----BEGIN CERTIFICATE-----\n".write(toFile: caFile, atomically: true, encoding: .utf8)
        #expect(try !codes().contains("trust-store-missing"))
    }

    /// Several threads walk a tree (a rescan) in any order; the result must be the one-thread walk:
    /// the same files, stamps and warnings in the same order. The fixture trees have symlink loops,
    /// dangling links and hard links; the scratch tree a folder split into parts (more than 128 names).
    @Test func walkingOnSeveralThreadsGivesTheOneThreadWalk() throws {
        let root = try Fixtures.temporaryDirectory("walk-threads")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["big", "big/inner", "small", "small/deeper/deepest"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        for i in 0..<300 { try "\(i)".write(toFile: root + "/big/f\(i)", atomically: false, encoding: .utf8) }
        for i in 0..<3 { try "x".write(toFile: root + "/small/deeper/deepest/g\(i)", atomically: false, encoding: .utf8) }
        try FileManager.default.createSymbolicLink(atPath: root + "/big/link", withDestinationPath: "f7")
        try FileManager.default.createSymbolicLink(atPath: root + "/small/loop", withDestinationPath: "loop")
        try FileManager.default.createSymbolicLink(atPath: root + "/small/tree", withDestinationPath: "../big")
        func flat(_ walk: (entries: [WalkEntry], warnings: [String])) -> [String] {
            walk.entries.map { "\($0.relativePath) \($0.path) \($0.stamp)" } + walk.warnings
        }
        #expect(mkfifo(root + "/small/pipe", 0o644) == 0)  // a reading walk must not open it (it would block)
        for tree in [root, try Fixtures.elfTrees()] {
            let one = flat(try TreeWalker.walk(root: tree))
            #expect(one.count > (tree == root ? 300 : 40))
            for threads in [2, 4] {
                #expect(flat(try TreeWalker.walk(root: tree, threads: threads)) == one)
            }
            // A first scan's walk opens and reads each regular file on the way: same walk, and every
            // file it found is in the catalog at the stamp it reported.
            let catalog = ELFCatalog()
            let reading = try TreeWalker.walk(root: tree, threads: 2, reading: catalog)
            #expect(flat(reading) == one)
            for (entry, hit) in zip(reading.entries, catalog.cached(reading.entries)) where hit == nil {
                // Not read on the way: only a symlink (read by path later) or a file that cannot be read.
                let isLink = (try? FileManager.default.destinationOfSymbolicLink(atPath: entry.path)) != nil
                var isUnreadable = false
                if case .unreadable = ELFCatalog().entry(path: entry.path, stamp: entry.stamp) { isUnreadable = true }
                #expect(isLink || isUnreadable, "\(entry.relativePath) was not read by the walk")
            }
        }
        let walk = try TreeWalker.walk(root: root, threads: 4)
        #expect(walk.warnings == ["small/loop: symlink loop"])
        #expect(walk.entries.first?.relativePath == "big/f0")
        #expect(walk.entries.last?.relativePath == "small/deeper/deepest/g2")
    }

    /// A rescan of an unchanged tree reuses the last report without building an inventory; any file
    /// added, removed or touched makes it a real audit again.
    @Test func anUnchangedWalkReusesTheReportAndAnyChangeEndsThat() throws {
        let trees = try Fixtures.elfTrees()
        let root = try Fixtures.temporaryDirectory("walk-digest")
        defer { try? FileManager.default.removeItem(atPath: root) }
        _ = try run("/bin/cp", ["-a", trees + "/canonical/.", root])
        let auditor = BundleAuditor(catalog: ELFCatalog())
        func audit() throws -> TargetReport { try auditor.audit(root: root, environment: TargetEnvironment(), expectFIPS: false) }
        let first = try audit()
        #expect(first.warnings.isEmpty)
        #expect(try audit().stats == first.stats)
        try "notes".write(toFile: root + "/README", atomically: false, encoding: .utf8)
        #expect(try audit().stats["files"] == (first.stats["files"] ?? 0) + 1)
        try FileManager.default.removeItem(atPath: root + "/README")
        #expect(try audit().stats == first.stats)
        // A consumer rewritten in place to need a name nothing provides.
        #expect(!first.findings.contains { $0.code == .opensslUnresolved })
        _ = try run("/usr/bin/patchelf", ["--replace-needed", "libcrypto.so.3", "libcrypto-deadbeef.so.3",
                                          root + "/lib/_ssl.cpython-311-x86_64-linux-gnu.so"])
        #expect(try audit().findings.contains { $0.code == .opensslUnresolved })
    }

    /// A library that only others load (libssl without an RPATH, its libcrypto found through its
    /// consumer's, as in psycopg2-binary 2.8.6) is no `openssl-unresolved` for what it would miss if
    /// dlopen()ed on its own; an extension nothing loads, missing the same name, still is.
    @Test func aDependencyIsJudgedInItsConsumersLoadNotOnItsOwn() throws {
        let trees = try Fixtures.elfTrees()
        let root = try Fixtures.temporaryDirectory("linkage-dependency")
        defer { try? FileManager.default.removeItem(atPath: root) }
        _ = try run("/bin/cp", ["-a", trees + "/canonical/lib", root + "/lib"])
        // No main program, as in a site-packages folder; the binding that needs one goes with it.
        try FileManager.default.removeItem(atPath: root + "/lib/pkg")
        let lib = root + "/lib"
        try FileManager.default.moveItem(atPath: lib + "/libcrypto.so.3", toPath: lib + "/libcrypto-feedface.so.3")
        for argv in [["--set-soname", "libcrypto-feedface.so.3", lib + "/libcrypto-feedface.so.3"],
                     ["--replace-needed", "libcrypto.so.3", "libcrypto-feedface.so.3", lib + "/libssl.so.3"],
                     ["--remove-rpath", lib + "/libssl.so.3"],
                     ["--replace-needed", "libcrypto.so.3", "libcrypto-feedface.so.3", lib + "/_ssl.cpython-311-x86_64-linux-gnu.so"]] {
            #expect(try run("/usr/bin/patchelf", argv).status == 0, "\(argv)")
        }
        func unresolved() throws -> [String] {
            try BundleAuditor(catalog: ELFCatalog()).audit(root: root, environment: TargetEnvironment(), expectFIPS: false)
                .findings.filter { $0.code == .opensslUnresolved }.flatMap { $0.evidence["consumers"]?.arrayValue ?? [] }
                .compactMap(\.stringValue)
        }
        #expect(try unresolved() == [])
        // The same libssl as an extension of its own, which Python would dlopen: its miss is real.
        _ = try run("/bin/cp", [lib + "/libssl.so.3", lib + "/_other.abi3.so"])
        #expect(try run("/usr/bin/patchelf", ["--set-soname", "_other.abi3.so", lib + "/_other.abi3.so"]).status == 0)
        #expect(try unresolved() == ["lib/_other.abi3.so"])
    }

    @Test func rootErrorsAreOneLine() throws {
        #expect(throws: ScanError.self) { try TreeWalker.walk(root: "/nonexistent") }
        do {
            _ = try TreeWalker.walk(root: "/etc/hostname")
            Issue.record("a file is not a tree")
        } catch {
            #expect(error.description == "cannot scan /etc/hostname: not a directory")
        }
    }

    @Test func environFiltersToOpenSSLAndLoaderVariables() throws {
        let bytes = Array("API_TOKEN=secret\0OPENSSL_CONF=/etc/fips.cnf\0LD_LIBRARY_PATH=/opt/a:/opt/b\0OPENSSL_CONF=/later\0garbage\0=x\0".utf8)
        let env = TargetEnvironment(environ: bytes)
        #expect(env.values == ["OPENSSL_CONF": "/etc/fips.cnf", "LD_LIBRARY_PATH": "/opt/a:/opt/b"])
        #expect(env.libraryPath == ["/opt/a", "/opt/b"])
        #expect(TargetEnvironment(environ: bytes, secureExecution: true).libraryPath == [])
        let own = try #require(ProcReader().snapshot(pid: getpid()).environment)
        #expect(Set(own.values.keys).isSubset(of: Set(TargetEnvironment.keptKeys)))
    }
}
