import Foundation
import SentinelCore
import Testing

/// `crypto-sentinel scan` on the gcc-built fixture trees (scripts/fixtures/elf-trees.sh documents each).
@Suite struct ScanFixtureTests {
    @Test func hashedTreeIsASplitWithTheExactFix() throws {
        let root = try Fixtures.copy(try Fixtures.elf("hashed"))
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        #expect(r.status == 1)
        let splits = r.findings(.splitLibcrypto)
        let crypto = try #require(splits.first { $0.evidence["library"]?.stringValue == "libcrypto" })
        #expect(crypto.severity == .critical)
        let copies = crypto.evidence["copies"]?.arrayValue ?? []
        #expect(copies.count == 2)
        let paths = copies.compactMap { $0["path"]?.stringValue }
        #expect(paths.contains("lib/libcrypto-1a2b3c4d.so.3"))
        #expect(paths.contains { $0.hasPrefix("/") && $0.hasSuffix("/libcrypto.so.3") })
        let consumers = copies.flatMap { $0["consumers"]?.arrayValue ?? [] }.compactMap(\.stringValue)
        #expect(consumers.contains("lib/_ssl.cpython-311-x86_64-linux-gnu.so needs libcrypto-1a2b3c4d.so.3 [runpath of lib/_ssl.cpython-311-x86_64-linux-gnu.so]"))
        #expect(consumers.contains { $0.hasPrefix("lib/pkg/_binding.abi3.so needs libcrypto.so.3 [ld.so.cache]") })
        #expect(crypto.fix.contains("patchelf --replace-needed libcrypto-1a2b3c4d.so.3 libcrypto.so.3 lib/_ssl.cpython-311-x86_64-linux-gnu.so"))
        #expect(crypto.fix.contains("patchelf --replace-needed libcrypto-1a2b3c4d.so.3 libcrypto.so.3 lib/libssl-5e6f7a8b.so.3"))

        let mangled = r.findings(.mangledOpenSSLName).compactMap { $0.evidence["name"]?.stringValue }
        #expect(mangled == ["libcrypto-1a2b3c4d.so.3", "libssl-5e6f7a8b.so.3"])
        #expect(r.findings(.mangledOpenSSLName).first?.evidence["canonical"]?.stringValue == "libcrypto.so.3")

        // The printed fix, applied as printed, leaves one coherent OpenSSL (it renames libssl too).
        #expect(crypto.fix.contains("patchelf --replace-needed libssl-5e6f7a8b.so.3 libssl.so.3 lib/_ssl.cpython-311-x86_64-linux-gnu.so"))
        let script = crypto.fix.filter { !$0.hasPrefix("crypto-sentinel ") }.joined(separator: " && ")
        let applied = try Sentinel.shell(["bash", "-c", script])
        #expect(applied.status == 0, "fix failed: \(applied.stderr)")
        let after = try Sentinel.run(["scan", root, "--format", "json", "--fail-on", "info"])
        #expect(after.codes() == [], "after the fix: \(after.stdout)")
        #expect(after.status == 0)
    }

    @Test func canonicalTreeIsClean() throws {
        let r = try Sentinel.run(["scan", try Fixtures.elf("canonical"), "--format", "json", "--fail-on", "info"])
        #expect(r.codes() == [], "\(r.stdout)")
        #expect(r.status == 0)
        #expect(r.report?.targets.first?.state == .healthy)
    }

    @Test func duplicatesOrphansAndStaticCopies() throws {
        let r = try Sentinel.run(["scan", try Fixtures.elf("duplicate"), "--format", "json"])
        let dup = try #require(r.findings(.duplicateOpenSSLCopy).first)
        #expect(dup.evidence["byte_identical"] == .bool(true))
        let dupPaths = (dup.evidence["copies"]?.arrayValue ?? []).compactMap { $0["path"]?.stringValue }.sorted()
        #expect(dupPaths == ["lib/libcrypto.so.3", "vendor/libcrypto.so.3"])  // the hard link is no duplicate
        let orphans = r.findings(.orphanOpenSSLCopy).compactMap { $0.evidence["path"]?.stringValue }.sorted()
        #expect(orphans == ["orphan/libssl.so.3", "vendor/libcrypto.so.3"])
        let statics = r.findings(.staticOpenSSLCopy)
        #expect(statics.count == 1)
        #expect(statics.first?.evidence["path"]?.stringValue == "lib/_static.abi3.so")
        #expect(statics.first?.evidence["version"]?.stringValue == "4.0.99")
        #expect(statics.first?.evidence["openssldir"]?.stringValue == "/opt/pyca/openssl")
        #expect(r.findings(.splitLibcrypto).isEmpty)
        #expect(r.status == 0)  // warnings and info only, below the default --fail-on error
        let strict = try Sentinel.run(["scan", try Fixtures.elf("duplicate"), "--fail-on", "warning"])
        #expect(strict.status == 1)
    }

    @Test func unresolvedSkewTrustModulesAndMixedABI() throws {
        let root = try Fixtures.elf("problems")
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        #expect(r.status == 1)
        let unresolved = try #require(r.findings(.opensslUnresolved).first)
        #expect(unresolved.evidence["name"]?.stringValue == "libcrypto-deadbeef.so.3")
        let tried = unresolved.evidence["tried"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(tried.contains(root + "/lib/libcrypto-deadbeef.so.3"))
        #expect(unresolved.fix.first?.hasPrefix("patchelf --replace-needed libcrypto-deadbeef.so.3 libcrypto.so.3") == true)
        let skew = try #require(r.findings(.opensslVersionSkew).first)
        #expect(skew.evidence["libssl_version"]?.stringValue == "3.5.99")
        #expect(skew.evidence["libcrypto_version"]?.stringValue == "3.0.99")
        #expect(r.findings(.trustStoreMissing).count == 1)
        #expect(r.findings(.modulesDirMissing).first?.evidence["modulesdir"]?.stringValue == "/nonexistent/ossl-modules")
        let abi = try #require(r.findings(.mixedPythonABI).first)
        #expect(abi.summary.contains("cpython-311") && abi.summary.contains("cpython-39"))
        #expect(r.findings(.fipsModuleMissing).isEmpty)

        // The target's environment decides: SSL_CERT_FILE and OPENSSL_MODULES clear those two.
        let env = try Sentinel.run(["scan", root, "--format", "json",
                                    "--env", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
                                    "--env", "OPENSSL_MODULES=/usr/lib/x86_64-linux-gnu/ossl-modules"])
        #expect(env.findings(.trustStoreMissing).isEmpty)
        #expect(env.findings(.modulesDirMissing).isEmpty)
        #expect(env.report?.targets.first?.environment["OPENSSL_MODULES"] == "/usr/lib/x86_64-linux-gnu/ossl-modules")

        let fips = try Sentinel.run(["scan", root, "--format", "json", "--expect-fips"])
        let missing = try #require(fips.findings(.fipsModuleMissing).first)
        #expect(missing.evidence["looked_in"]?.stringValue == "/nonexistent/ossl-modules")
    }

    /// A consumer built against OpenSSL 3.5 that resolves to a 3.0 libcrypto: its version node is missing.
    @Test func missingVersionNodeIsSkewTheLoaderRefuses() throws {
        let root = try Fixtures.elf("version-nodes")
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        let skew = try #require(r.findings(.opensslVersionSkew).first)
        #expect(skew.evidence["consumer"]?.stringValue == "lib/_new.so")
        #expect(skew.evidence["missing_versions"] == ["OPENSSL_3.5.0"])
        // The real loader agrees (our own gcc fixture, safe to load).
        let load = try Sentinel.shell(["python3", "-c", "import ctypes; ctypes.CDLL('\(root)/lib/_new.so')"])
        #expect(load.status != 0)
        #expect(load.stderr.contains("version `OPENSSL_3.5.0' not found"))
    }

    @Test func brokenFilesAreOneLineWarningsNeverACrash() throws {
        let root = try Fixtures.elf("broken")
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let warnings = r.report?.targets.first?.warnings ?? []
        for name in ["corrupt.so", "truncated.so", "cut-mid-sections.so"] {
            #expect(warnings.contains { $0.hasPrefix(name + ": ") }, "\(name) in \(warnings)")
        }
        #expect(warnings.contains("loop-a: symlink loop"))
        #expect(!warnings.contains { $0.hasPrefix("readme.txt") })  // not ELF: skipped quietly
        #expect(warnings.allSatisfy { !$0.contains("\n") })
        // Each warning is also one line on stderr, for people and logs.
        #expect(r.stderr.split(separator: "\n").filter { $0.contains("corrupt.so") }.count == 1)
    }

    @Test func unreadableFilesAndFoldersAreReportedWhenNotRoot() throws {
        let root = try Fixtures.elf("broken")
        let r = try Sentinel.run(["scan", root, "--format", "json"], as: "65534")
        #expect(r.status == 0, "\(r.stderr)")
        let warnings = r.report?.targets.first?.warnings ?? []
        #expect(warnings.contains("unreadable.so: cannot open: Permission denied"), "\(warnings)")
        #expect(warnings.contains("closed: cannot read directory: Permission denied"), "\(warnings)")
    }

    @Test func usageAndIOErrorsExitTwoWithOneLine() throws {
        let missing = try Sentinel.run(["scan", "/nonexistent/bundle"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("cannot scan /nonexistent/bundle: No such file or directory"))
        #expect(missing.stderr.split(separator: "\n").count == 1)
        #expect(try Sentinel.run(["scan"]).status == 2)
        #expect(try Sentinel.run(["scan", "/tmp", "--env", "NOEQUALS"]).status == 2)
        #expect(try Sentinel.run(["scan", "/tmp", "--fail-on", "fatal"]).status == 2)
        #expect(try Sentinel.run(["scan", "/tmp", "--format", "xml"]).status == 2)
        let help = try Sentinel.run(["scan", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("--expect-fips") && help.stdout.contains("Examples"))
    }

    @Test func environmentFromPidKeepsOnlyOpenSSLAndLoaderVariables() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sleep")
        p.arguments = ["30"]
        p.environment = ["OPENSSL_MODULES": "/usr/lib/x86_64-linux-gnu/ossl-modules",
                         "API_TOKEN": "hunter2-secret", "PATH": "/usr/bin"]
        try p.run()
        defer { p.terminate() }
        let r = try Sentinel.run(["scan", try Fixtures.elf("problems"), "--env-from-pid", "\(p.processIdentifier)",
                                  "--format", "json"])
        #expect(r.report?.targets.first?.environment == ["OPENSSL_MODULES": "/usr/lib/x86_64-linux-gnu/ossl-modules"])
        #expect(r.findings(.modulesDirMissing).isEmpty)
        #expect(!r.stdout.contains("hunter2") && !r.stderr.contains("hunter2") && !r.stdout.contains("API_TOKEN"))
        let gone = try Sentinel.run(["scan", "/tmp", "--env-from-pid", "999999999"])
        #expect(gone.status == 2)
        #expect(gone.stderr == "crypto-sentinel: --env-from-pid 999999999: no such process\n", "\(gone.stderr)")
    }

    @Test func textOutputReadsLikeADiagnostic() throws {
        let r = try Sentinel.run(["scan", try Fixtures.elf("hashed")])
        #expect(r.status == 1)
        #expect(r.stdout.contains("critical[split-libcrypto]: OpenSSL consumers resolve to 2 different libcrypto files"))
        #expect(r.stdout.contains("   = why: two libcrypto (or libssl) files in one process"))
        #expect(r.stdout.contains("   = fix:"))
        #expect(r.stdout.contains("patchelf --replace-needed libcrypto-1a2b3c4d.so.3 libcrypto.so.3"))
    }
}
