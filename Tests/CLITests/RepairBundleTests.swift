import Foundation
import SentinelCore
import SentinelTestSupport
import Testing

/// `crypto-sentinel repair` on the real cx_Freeze bundles: the plan, the native edits byte by byte,
/// the frozen service on the result (as nobody), the glibc loader's own view, in place and back.
@Suite(.serialized) struct RepairBundleTests {
    struct Repaired {
        var doc: [String: Any]
        var out: String
        var status: Int32
        var plan: [[String: Any]] { doc["plan"] as? [[String: Any]] ?? [] }
        var edits: [[String: Any]] { plan.filter { $0["action"] as? String == "rewrite" } }
        var environmentLine: String? { doc["environment_line"] as? String }
        var result: [String: Any] { doc["result"] as? [String: Any] ?? [:] }
    }

    /// Debian's provider folder: the bundled libcrypto's compiled-in one does not exist on the host.
    static let modules = "/usr/lib/x86_64-linux-gnu/ossl-modules"

    static func repair(_ args: [String]) throws -> (Sentinel.Result, [String: Any]) {
        // --verify-command takes the rest of the line: the format goes first.
        let r = try Sentinel.run(["repair", "--format", "json"] + args)
        let doc = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        return (r, doc)
    }

    /// Every file of a tree, by relative path: sha256 for files, "-> text" for symlinks, with mode and owner.
    static func manifest(_ root: String) throws -> [String: String] {
        let r = try Sentinel.shell(["bash", "-c", "cd \"$1\" && find . -printf '%p %y %m %U:%G %l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum", "-", root])
        var out: [String: String] = [:]
        for (i, line) in r.stdout.split(separator: "\n").enumerated() { out["\(i)"] = String(line) }
        return out
    }

    /// Only bytes inside the rewritten strings differ; sizes are equal; the rest of the tree is identical.
    static func expectOnlyStringsChanged(original: String, repaired: String, _ r: Repaired) throws {
        var ranges: [String: [Range<Int>]] = [:]
        for e in r.edits {
            let file = try #require(e["file"] as? String), offset = try #require(e["file_offset"] as? Int)
            let old = try #require(e["old"] as? String)
            ranges[file, default: []].append(offset..<(offset + old.utf8.count + 1))
        }
        let renames = Dictionary(uniqueKeysWithValues: r.plan.filter { $0["action"] as? String == "rename" }
            .map { ($0["from"] as! String, $0["to"] as! String) })
        let removed = Set(r.plan.filter { $0["action"] as? String == "remove" }.map { $0["path"] as! String })
        let files = try Sentinel.shell(["bash", "-c", "cd \"$1\" && find . -type f -printf '%P\\n'", "-", original]).stdout.split(separator: "\n").map(String.init)
        var compared = 0
        for file in files where !removed.contains(file) {
            let a = try Data(contentsOf: URL(fileURLWithPath: original + "/" + file))
            let b = try Data(contentsOf: URL(fileURLWithPath: repaired + "/" + (renames[file] ?? file)))
            #expect(a.count == b.count, "\(file): size changed")
            guard a.count == b.count else { continue }
            let allowed = ranges[file] ?? []
            var outside = 0
            for i in 0..<a.count where a[i] != b[i] && !allowed.contains(where: { $0.contains(i) }) { outside += 1 }
            #expect(outside == 0, "\(file): \(outside) byte(s) changed outside the rewritten strings")
            if !allowed.isEmpty { #expect(a != b, "\(file): planned edit not applied") }
            compared += 1
        }
        #expect(compared == files.count - removed.count)
    }

    /// `env`: the service's own variables (the target environment `repair` verifies under).
    func repairedCopyServes(_ variant: String, env targetEnv: [String] = []) throws {
        let root = try Fixtures.copy(try Fixtures.cxfreeze(variant))
        defer { try? FileManager.default.removeItem(atPath: root) }
        let before = try Self.manifest(root)
        let out = root + ".repaired"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let (r, doc) = try Self.repair([root, "--out", out] + targetEnv.flatMap { ["--env", $0] })
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let repaired = Repaired(doc: doc, out: out, status: r.status)
        #expect(repaired.result["status"] as? String == "repaired")
        #expect(try Self.manifest(root) == before, "ROOT changed")
        #expect(!repaired.edits.isEmpty)
        try Self.expectOnlyStringsChanged(original: root, repaired: out, repaired)

        // The contract's text form, one line per edit.
        let text = try Sentinel.run(["repair", root, "--dry-run"])
        #expect(text.stdout.contains(#"lib/_ssl.cpython-311-x86_64-linux-gnu.so: DT_NEEDED (also .gnu.version_r file) "libcrypto-27e744a7.so.3" -> "libcrypto.so.3" (.dynstr+0x"#), "\(text.stdout)")

        // scan: no split, no hashed name.
        let scan = try Sentinel.run(["scan", out, "--format", "json"])
        #expect(!scan.codes().contains("split-libcrypto") && !scan.codes().contains("mangled-openssl-name"), "\(scan.codes())")
        // readelf and patchelf read the rewritten names.
        for lib in ["lib/_ssl.cpython-311-x86_64-linux-gnu.so", "lib/libssl.so.3"] {
            let needed = try Sentinel.shell(["patchelf", "--print-needed", out + "/" + lib]).stdout
            #expect(needed.contains("libcrypto.so.3\n") && !needed.contains("-27e744a7"), "\(lib): \(needed)")
            let versions = try Sentinel.shell(["readelf", "-d", "-V", out + "/" + lib]).stdout
            #expect(!versions.contains("27e744a7") && versions.contains("File: libcrypto.so.3"), "\(lib): \(versions)")
        }
        #expect(try Sentinel.shell(["readelf", "-d", out + "/lib/libcrypto.so.3"]).stdout.contains("Library soname: [libcrypto.so.3]"))

        // The frozen service as nobody, under the environment the plan names (the verified one, which
        // holds the unit's line when one is needed): ssl and cryptography import.
        let verified = (doc["verification"] as? [String: Any])?["staged"] as? [String: Any]
        var env = (verified?["environment"] as? [String: String]) ?? [:]
        env["PATH"] = "/usr/bin:/bin"
        // cx_Freeze's executable has DT_RPATH $ORIGIN/lib, which every extension inherits: no line is needed.
        #expect(repaired.environmentLine == nil)
        #expect(env["LD_LIBRARY_PATH"] == nil)
        let service = try LiveProcess([out + "/app", "--serve"], environment: env, as: "65534")
        defer { service.stop() }
        #expect(service.firstLine.hasPrefix("ssl: OpenSSL 3.5"), "\(service.firstLine)")
        let inspect = try Sentinel.run(["inspect", "--pid", "\(service.pid)", "--format", "json"])
        #expect(inspect.findings(.processSplitLibcrypto).isEmpty, "\(inspect.stdout)")
        let maps = try Sentinel.shell(["cat", "/proc/\(service.pid)/maps"]).stdout
        let mapped = Set(maps.split(separator: "\n").compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(5).first }
            .map(String.init).filter { $0.contains("libcrypto") || $0.contains("libssl") })
        #expect(mapped == [out + "/lib/libcrypto.so.3", out + "/lib/libssl.so.3"], "\(mapped)")

        // glibc's own loader agrees with the resolution `repair` verified.
        var debugEnv = env
        debugEnv["LD_DEBUG"] = "libs"
        let debug = try Sentinel.shell(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", out + "/app"], environment: debugEnv)
        let loaded = Set(debug.stderr.split(separator: "\n").compactMap { line -> String? in
            guard let r = line.range(of: "calling init: ") else { return nil }
            return String(line[r.upperBound...])
        }.filter { $0.contains("libcrypto") || $0.contains("libssl") })
        #expect(loaded == [out + "/lib/libcrypto.so.3", out + "/lib/libssl.so.3"], "\(debug.stderr.suffix(2000))")
        let resolved = (doc["verification"] as? [String: Any])?["staged"] as? [String: Any]
        let libs = (resolved?["resolved"] as? [String: [String]]) ?? [:]
        #expect(libs["libcrypto"] == ["lib/libcrypto.so.3"] && libs["libssl"] == ["lib/libssl.so.3"], "\(libs)")
    }

    /// Debian's bundle: after the split is gone, cryptography's import needs the legacy provider, which the
    /// bundled libcrypto looks for in its build folder (modules-dir-missing): the service sets OPENSSL_MODULES.
    @Test func repairsTheRealSplitDebianBundle() throws {
        try repairedCopyServes("debian", env: ["OPENSSL_MODULES=\(Self.modules)"])
    }

    @Test func repairsThePyPIBundle() throws { try repairedCopyServes("pip-venv") }

    /// --in-place under a running service: it keeps running (nothing it maps is written), the restarted
    /// service maps one libcrypto, and --rollback restores the exact original tree.
    @Test func inPlaceUnderARunningServiceThenRollback() throws {
        let parent = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let root = parent + "/app"
        #expect(try Sentinel.shell(["cp", "-a", try Fixtures.cxfreeze("debian"), root]).status == 0)
        let original = try Self.manifest(root)
        let old = try LiveProcess([root + "/app", "--serve"], as: "65534")
        defer { old.stop() }

        let (r, doc) = try Self.repair([root, "--in-place", "--env", "OPENSSL_MODULES=\(Self.modules)"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let kept = try #require((doc["result"] as? [String: Any])?["kept_as"] as? String)
        #expect(kept.hasPrefix(root + ".orig-"))
        #expect(kill(old.pid, 0) == 0 && old.process.isRunning, "the old service died")
        #expect(try Self.manifest(kept) == original)

        let restarted = try LiveProcess([root + "/app", "--serve"], environment: ["PATH": "/usr/bin:/bin", "OPENSSL_MODULES": Self.modules], as: "65534")
        defer { restarted.stop() }
        let inspect = try Sentinel.run(["inspect", "--pid", "\(restarted.pid)", "--format", "json"])
        #expect(inspect.findings(.processSplitLibcrypto).isEmpty, "\(inspect.stdout)")
        let oldInspect = try Sentinel.run(["inspect", "--pid", "\(old.pid)", "--format", "json"])
        #expect(!oldInspect.findings(.processSplitLibcrypto).isEmpty, "the old process still runs the old split tree")

        let back = try Sentinel.run(["repair", "--rollback", root])
        #expect(back.status == 0, "\(back.stdout)\(back.stderr)")
        #expect(try Self.manifest(root) == original)
        #expect(FileManager.default.fileExists(atPath: kept) == false)
    }

    /// A failing --verify-command: nothing is swapped, the staged copy is kept and named.
    @Test func aFailingVerifyCommandSwapsNothing() throws {
        let parent = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let root = parent + "/app"
        #expect(try Sentinel.shell(["cp", "-a", try Fixtures.cxfreeze("debian"), root]).status == 0)
        let original = try Self.manifest(root)
        let (r, doc) = try Self.repair([root, "--in-place", "--verify-command", "/bin/sh", "-c", "id -un; exit 3"])
        #expect(r.status == 1)
        let result = doc["result"] as? [String: Any] ?? [:]
        #expect(result["status"] as? String == "verification-failed")
        let staged = try #require(result["path"] as? String)
        #expect(FileManager.default.fileExists(atPath: staged + "/lib/libcrypto.so.3"))
        #expect(try Self.manifest(root) == original)
        let command = (((doc["verification"] as? [String: Any])?["staged"] as? [String: Any])?["command"] as? [String: Any]) ?? [:]
        #expect(command["user"] as? String == "nobody")
        #expect((command["output_tail"] as? String)?.contains("nobody") == true, "\(command)")
        #expect(command["outcome"] as? String == "exit 3")

        // The frozen app's own run as the smoke test: without the provider folder the service needs, it
        // fails where the service would (cryptography cannot load the legacy provider); with it, it passes.
        try? FileManager.default.removeItem(atPath: staged)
        let (bare, bareDoc) = try Self.repair([root, "--out", parent + "/bare", "--verify-command", "app"])
        #expect(bare.status == 1)
        let failed = (((bareDoc["verification"] as? [String: Any])?["staged"] as? [String: Any])?["command"] as? [String: Any]) ?? [:]
        #expect((failed["output_tail"] as? String)?.contains("could not load the shared library") == true, "\(failed)")
        let (ok, okDoc) = try Self.repair([root, "--out", parent + "/out", "--env", "OPENSSL_MODULES=\(Self.modules)", "--verify-command", "app"])
        #expect(ok.status == 0, "\(ok.stdout)")
        let ran = (((okDoc["verification"] as? [String: Any])?["staged"] as? [String: Any])?["command"] as? [String: Any]) ?? [:]
        #expect((ran["output_tail"] as? String)?.contains("ssl: OpenSSL 3.5") == true, "\(ran)")
    }
}
