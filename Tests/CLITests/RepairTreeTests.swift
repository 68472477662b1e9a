import Foundation
import SentinelCore
import SentinelTestSupport
import Testing

/// `repair` on gcc-built trees (scripts/fixtures/elf-trees.sh `hashed`, changed per test): the shapes it keeps,
/// the line it names, and what it must refuse, with the reason, changing nothing (exit 1, no --out written).
@Suite struct RepairTreeTests {
    /// A private copy of the `hashed` tree, in a folder of its own (removed by the caller).
    static func tree() throws -> (parent: String, root: String) {
        let parent = try Fixtures.tempDir()
        let root = parent + "/bundle"
        #expect(try Sentinel.shell(["cp", "-a", try Fixtures.elf("hashed"), root]).status == 0)
        return (parent, root)
    }

    static func gcc(_ args: [String], in dir: String) throws {
        let src = Fixtures.scripts + "/src"
        let r = try Sentinel.shell(["bash", "-c", "cd \"$1\" && shift && gcc -shared -fPIC -O1 -Wl,--no-as-needed \"$@\"", "-", dir]
                                   + args.map { $0.replacingOccurrences(of: "SRC", with: src) })
        #expect(r.status == 0, "gcc: \(r.stderr)")
    }

    /// The plan fails: exit 1, the reason on the refused file, and nothing written.
    static func expectRefused(_ root: String, _ path: String, _ reason: String, extra: [String] = []) throws {
        let out = root + ".out"
        let r = try Sentinel.run(["repair", root, "--out", out, "--format", "json"] + extra)
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        let doc = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        let refused = doc["refused"] as? [[String: String]] ?? []
        #expect(refused.contains { $0["path"] == path && ($0["reason"] ?? "").contains(reason) }, "\(refused)")
        #expect((doc["result"] as? [String: Any])?["status"] as? String == "plan-failed")
        #expect(!FileManager.default.fileExists(atPath: out))
        let text = try Sentinel.run(["repair", root, "--dry-run"] + extra)
        #expect(text.status == 1 && text.stdout.contains("REFUSED \(path): "), "\(text.stdout)")
    }

    @Test func repairsTheHashedTreeAndKeepsMetadata() throws {
        let (parent, root) = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let ssl = root + "/lib/_ssl.cpython-311-x86_64-linux-gnu.so"
        // chown first: a change of owner drops a file's capabilities.
        #expect(try Sentinel.shell(["chown", "65534:65534", ssl]).status == 0)
        #expect(try Sentinel.shell(["setcap", "cap_net_bind_service+ep", ssl]).status == 0)
        #expect(try Sentinel.shell(["touch", "-d", "2024-01-02 03:04:05.123456789", ssl]).status == 0)
        let dry = try Sentinel.run(["repair", root, "--dry-run"])
        #expect(dry.status == 0, "\(dry.stdout)")
        #expect(dry.stdout.contains("rename lib/libcrypto-1a2b3c4d.so.3 -> lib/libcrypto.so.3"))
        #expect(dry.stdout.contains(#"lib/libcrypto-1a2b3c4d.so.3: DT_SONAME "libcrypto-1a2b3c4d.so.3" -> "libcrypto.so.3""#), "\(dry.stdout)")
        #expect(!FileManager.default.fileExists(atPath: root + "/lib/libcrypto.so.3"))

        let out = parent + "/out"
        let r = try Sentinel.run(["repair", root, "--out", out])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let fmt = "%a %u:%g %y %.9Y"
        let a = try Sentinel.shell(["stat", "-c", fmt, ssl]).stdout
        let b = try Sentinel.shell(["stat", "-c", fmt, out + "/lib/_ssl.cpython-311-x86_64-linux-gnu.so"]).stdout
        #expect(a == b && a.contains("65534:65534") && a.contains("1704164645.123456789"), "\(a) vs \(b)")
        let caps = try Sentinel.shell(["getcap", out + "/lib/_ssl.cpython-311-x86_64-linux-gnu.so"]).stdout
        #expect(caps.contains("cap_net_bind_service=ep"), "\(caps)")
        let scan = try Sentinel.run(["scan", out, "--format", "json"])
        #expect(!scan.codes().contains("split-libcrypto") && !scan.codes().contains("mangled-openssl-name"), "\(scan.codes())")
        // A second run has nothing to do.
        let again = try Sentinel.run(["repair", out, "--dry-run"])
        #expect(again.status == 0 && again.stdout.contains("nothing to do"), "\(again.stdout)")
    }

    /// A second, byte-identical copy in a subfolder whose consumer finds it through RUNPATH $ORIGIN: the copy
    /// goes, and the consumer can then reach the canonical one only through the search path, so the plan
    /// names the unit's LD_LIBRARY_PATH line and verifies under it. Symlinks and hard links keep their shape.
    @Test func aDuplicateCopyGoesAndThePlanNamesTheEnvironmentLine() throws {
        let (parent, root) = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        try FileManager.default.createDirectory(atPath: root + "/lib/sub", withIntermediateDirectories: true)
        #expect(try Sentinel.shell(["cp", "-a", root + "/lib/libcrypto-1a2b3c4d.so.3", root + "/lib/sub/"]).status == 0)
        try Self.gcc(["-o", "lib/sub/_sub.abi3.so", "SRC/consumer.c", "-Llib/sub", "-l:libcrypto-1a2b3c4d.so.3",
                      "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN"], in: root)
        #expect(symlink("libcrypto-1a2b3c4d.so.3", root + "/lib/libcrypto.so") == 0)
        #expect(link(root + "/lib/libssl-5e6f7a8b.so.3", root + "/lib/libssl-hardlink.so") == 0)
        let out = parent + "/out"
        let r = try Sentinel.run(["repair", root, "--out", out, "--format", "json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let doc = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        #expect(doc["environment_line"] as? String == "LD_LIBRARY_PATH=\(out)/lib", "\(doc["environment_line"] ?? "nil")")
        let plan = doc["plan"] as? [[String: Any]] ?? []
        #expect(plan.contains { $0["action"] as? String == "remove" && $0["path"] as? String == "lib/sub/libcrypto-1a2b3c4d.so.3"
            && ($0["reason"] as? String)?.hasPrefix("byte-identical copy of") == true }, "\(plan)")
        #expect(!FileManager.default.fileExists(atPath: out + "/lib/sub/libcrypto-1a2b3c4d.so.3"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/lib/libcrypto.so") == "libcrypto.so.3")
        var a = stat(), b = stat()
        #expect(stat(out + "/lib/libssl.so.3", &a) == 0 && stat(out + "/lib/libssl-hardlink.so", &b) == 0 && a.st_ino == b.st_ino)
        let verified = ((doc["verification"] as? [String: Any])?["staged"] as? [String: Any])?["environment"] as? [String: String]
        #expect(verified?["LD_LIBRARY_PATH"] == out + "/lib")
        let scan = try Sentinel.run(["scan", out, "--format", "json", "--env", "LD_LIBRARY_PATH=\(out)/lib"])
        #expect(!scan.codes().contains("split-libcrypto") && !scan.codes().contains("mangled-openssl-name"), "\(scan.codes())")
    }

    /// --in-place verifies the staged copy under the target's variables moved to it (a path under ROOT names
    /// the copy's file), then swaps: ROOT is the repaired tree, the original is kept.
    @Test func inPlaceVerifiesTheCopyUnderItsOwnPaths() throws {
        let (parent, root) = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let r = try Sentinel.run(["repair", root, "--in-place", "--format", "json",
                                  "--env", "OPENSSL_MODULES=\(root)/lib/ossl-modules", "--env", "LD_LIBRARY_PATH=/opt/x:\(root)/lib"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let doc = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        let staged = (doc["verification"] as? [String: Any])?["staged"] as? [String: Any]
        let tree = try #require(staged?["tree"] as? String)
        #expect(tree.hasPrefix(root + ".repair-"))
        let env = staged?["environment"] as? [String: String]
        #expect(env?["OPENSSL_MODULES"] == tree + "/lib/ossl-modules" && env?["LD_LIBRARY_PATH"] == "/opt/x:\(tree)/lib", "\(env ?? [:])")
        #expect(FileManager.default.fileExists(atPath: root + "/lib/libcrypto.so.3"))
        let kept = try #require((doc["result"] as? [String: Any])?["kept_as"] as? String)
        #expect(FileManager.default.fileExists(atPath: kept + "/lib/libcrypto-1a2b3c4d.so.3"))
        #expect(!FileManager.default.fileExists(atPath: tree))
    }

    @Test func refusesATailMergedString() throws {
        let (parent, root) = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        // "4d.so.3" is a suffix of "libcrypto-1a2b3c4d.so.3": GNU ld stores it once, in the longer string.
        try Self.gcc(["-o", "lib/4d.so.3", "SRC/plain.c", "-Wl,-soname,4d.so.3"], in: root)
        try Self.gcc(["-o", "lib/_merged.abi3.so", "SRC/consumer.c", "-Llib", "-l:libcrypto-1a2b3c4d.so.3", "-l:4d.so.3",
                      "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN"], in: root)
        let strings = try Sentinel.shell(["readelf", "-p", ".dynstr", root + "/lib/_merged.abi3.so"]).stdout
        #expect(!strings.contains("]  4d.so.3"), "the fixture's strings were not tail-merged: \(strings)")
        try Self.expectRefused(root, "lib/_merged.abi3.so", "tail-merged")
    }

    @Test func neverTouchesAFIPSModule() throws {
        let (parent, root) = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        try FileManager.default.createDirectory(atPath: root + "/lib/ossl-modules", withIntermediateDirectories: true)
        try Self.gcc(["-o", "lib/ossl-modules/fips.so", "SRC/fakeprovider.c", "-Llib", "-l:libcrypto-1a2b3c4d.so.3"], in: root)
        try Self.expectRefused(root, "lib/ossl-modules/fips.so", "provider")
    }

    @Test func neverTouchesAFileWithAnHMACCompanion() throws {
        let (parent, root) = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        #expect(FileManager.default.createFile(atPath: root + "/lib/.libssl-5e6f7a8b.so.3.hmac", contents: Data("00".utf8)))
        try Self.expectRefused(root, "lib/libssl-5e6f7a8b.so.3", "integrity MAC")
    }

    @Test func refusesAReadOnlyFile() throws {
        let (parent, root) = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        #expect(chmod(root + "/lib/_ssl.cpython-311-x86_64-linux-gnu.so", 0o444) == 0)
        try Self.expectRefused(root, "lib/_ssl.cpython-311-x86_64-linux-gnu.so", "read-only")
    }

    @Test func refusesADanglingHashedName() throws {
        let (parent, root) = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        try Self.gcc(["-o", "lib/libcrypto-deadbeef.so.3", "SRC/fakecrypto.c", "-Wl,-soname,libcrypto-deadbeef.so.3"], in: root)
        try Self.gcc(["-o", "lib/_dangling.abi3.so", "SRC/consumer.c", "-Llib", "-l:libcrypto-deadbeef.so.3"], in: root)
        #expect(unlink(root + "/lib/libcrypto-deadbeef.so.3") == 0)
        try Self.expectRefused(root, "lib/_dangling.abi3.so", "no file in ROOT provides")
    }

    @Test func refusesAHashedCopyNeededFromOutside() throws {
        let (parent, root) = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        // A plugin outside the tree, preloaded into the service, needs the hashed name from the bundle's lib/.
        try Self.gcc(["-o", parent + "/libplugin.so", "SRC/consumer.c", "-L" + root + "/lib", "-l:libcrypto-1a2b3c4d.so.3"], in: parent)
        try Self.expectRefused(root, "lib/libcrypto-1a2b3c4d.so.3", "outside ROOT",
                               extra: ["--env", "LD_LIBRARY_PATH=\(root)/lib", "--env", "LD_PRELOAD=\(parent)/libplugin.so"])
    }

    @Test func usageErrors() throws {
        let (parent, root) = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        #expect(try Sentinel.run(["repair", root]).status == 2)
        #expect(try Sentinel.run(["repair", root, "--out", parent]).status == 2)
        #expect(try Sentinel.run(["repair", root, "--out", root + "/inside"]).status == 2)
        #expect(try Sentinel.run(["repair", root + "/missing", "--dry-run"]).status == 2)
        #expect(symlink(root, parent + "/link") == 0)
        let viaLink = try Sentinel.run(["repair", parent + "/link", "--in-place"])
        #expect(viaLink.status == 2 && viaLink.stderr.contains("a symlink"), "\(viaLink.stderr)")
        let rollback = try Sentinel.run(["repair", "--rollback", root])
        #expect(rollback.status == 2 && rollback.stderr.contains(".orig-"), "\(rollback.stderr)")
    }
}
