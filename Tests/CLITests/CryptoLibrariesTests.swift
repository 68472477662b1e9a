import Foundation
import SentinelCore
import SentinelTestSupport
import Testing

extension Fixtures {
    /// scripts/fixtures/crypto-libs.sh: real wheels with BoringSSL, AWS-LC and OpenSSL 1.1 (PyPI), a venv
    /// with grpcio, a program with a static OpenSSL, a stand-in LibreSSL.
    static func cryptoLibs() throws -> String {
        try FixtureScripts.build("crypto-libs.sh", out: root + "/cryptolibs")
        return root + "/cryptolibs"
    }

    /// psycopg2-binary 2.8.6's shared OpenSSL 1.1.1g and the zlib it needs (no RUNPATH: loaded by path first).
    static func openSSL11() throws -> (libs: String, libcrypto: String, libz: String) {
        let libs = try cryptoLibs() + "/site/psycopg2_binary.libs"
        return (libs, libs + "/libcrypto-e62d380e.so.1.1.1g", libs + "/libz-a147dcb0.so.1.2.3")
    }
}

/// TLS stacks beside OpenSSL 3 (BoringSSL, AWS-LC, LibreSSL, GnuTLS), OpenSSL 1.1 next to 3, and programs
/// with a static OpenSSL, on real binaries: PyPI wheels, Debian's libraries, gcc-built programs.
@Suite struct CryptoLibrariesTests {
    /// grpcio's cygrpc (static BoringSSL) and awscrt's _awscrt (static AWS-LC) beside Debian's _ssl.
    @Test func boringSSLAndAWSLCInRealWheels() throws {
        let site = try Fixtures.cryptoLibs() + "/site"
        let r = try Sentinel.run(["scan", site, "--format", "json", "--fail-on", "info"])
        let foreign = r.findings(.foreignCryptoLibrary)
        let byPath = Dictionary(foreign.map { ($0.evidence["path"]?.stringValue ?? "", $0) }) { a, _ in a }
        #expect(byPath.keys.sorted() == ["_awscrt.abi3.so", "grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so"], "\(r.stdout)")
        let boring = try #require(byPath["grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so"])
        #expect(boring.evidence["library"] == "BoringSSL")
        #expect(boring.evidence["version"] == .null)  // BoringSSL has no releases
        #expect(boring.evidence["linkage"] == "statically linked")
        #expect(boring.evidence["other_stacks"] == ["AWS-LC", "OpenSSL"])
        #expect(boring.severity == .info)
        let aws = try #require(byPath["_awscrt.abi3.so"])
        #expect(aws.evidence["library"] == "AWS-LC")
        #expect(aws.evidence["version"] == "5.12.0")
        // Neither is taken for an OpenSSL: no static-openssl-copy for them.
        #expect(r.findings(.staticOpenSSLCopy).isEmpty, "\(r.findings(.staticOpenSSLCopy).map(\.summary))")

        // Outside the FIPS boundary when FIPS is expected.
        let fips = try Sentinel.run(["scan", site, "--expect-fips", "--format", "json"])
        #expect(fips.findings(.foreignCryptoLibrary).map(\.severity) == [.warning, .warning])
        #expect(fips.findings(.foreignCryptoLibrary).allSatisfy { $0.summary.hasSuffix(": outside the FIPS boundary") })
        let v11 = fips.findings(.fipsModuleMissing).first { $0.subject == "psycopg2_binary.libs/libcrypto-e62d380e.so.1.1.1g" }
        #expect(v11?.summary.hasSuffix("is OpenSSL 1.1.1g, which has no FIPS provider") == true, "\(fips.findings(.fipsModuleMissing).map(\.summary))")
    }

    /// psycopg2-binary 2.8.6's hashed OpenSSL 1.1.1g and Debian's _ssl (libcrypto.so.3) in one tree: a split.
    @Test func openSSL11NextTo3IsASplitInABundle() throws {
        let site = try Fixtures.cryptoLibs() + "/site"
        let r = try Sentinel.run(["scan", site, "--format", "json"])
        #expect(r.status == 1)
        let split = try #require(r.findings(.splitLibcrypto).first { $0.evidence["library"] == "libcrypto" }, "\(r.codes())")
        let copies = split.evidence["copies"]?.arrayValue ?? []
        let versions = Dictionary(copies.map { ($0["path"]?.stringValue ?? "", $0["version"]?.stringValue ?? "") }) { a, _ in a }
        #expect(versions["psycopg2_binary.libs/libcrypto-e62d380e.so.1.1.1g"] == "1.1.1g", "\(versions)")
        #expect(versions.contains { $0.key.hasSuffix("/libcrypto.so.3") && $0.value.hasPrefix("3.0.") }, "\(versions)")
        // No renaming joins 1.1 and 3: the fix says so instead of printing the canonical-soname recipe.
        #expect(split.fix.first?.contains("(1 and 3), which are not ABI-compatible") == true, "\(split.fix)")
        #expect(!split.fix.contains { $0.hasPrefix("patchelf ") })
        #expect(r.findings(.orphanOpenSSLCopy).isEmpty)
        // Its libssl has no RPATH: it finds its libcrypto through libpq's, which is how it is ever loaded.
        #expect(r.findings(.opensslUnresolved).isEmpty, "\(r.findings(.opensslUnresolved).map(\.summary))")
        // repair plans nothing it could not verify: it refuses at once, with the two lines named.
        try RepairTreeTests.expectRefused(site, "psycopg2_binary.libs/libcrypto-e62d380e.so.1.1.1g",
                                          "the split is between /lib/x86_64-linux-gnu/libcrypto.so.3 (OpenSSL 3.0.")
        try RepairTreeTests.expectRefused(site, "psycopg2_binary.libs/libcrypto-e62d380e.so.1.1.1g",
                                          "OpenSSL 1 and 3 are not ABI-compatible, and no rewrite joins them")
    }

    /// A stand-in LibreSSL libcrypto.so.52 is another stack, never a second OpenSSL libcrypto.
    @Test func libreSSLIsForeignNotASplit() throws {
        let root = try Fixtures.cryptoLibs() + "/libressl"
        let r = try Sentinel.run(["scan", root, "--format", "json", "--fail-on", "info"])
        #expect(r.findings(.splitLibcrypto).isEmpty, "\(r.codes())")
        #expect(r.findings(.orphanOpenSSLCopy).isEmpty)
        let libre = try #require(r.findings(.foreignCryptoLibrary).first, "\(r.codes())")
        #expect(libre.evidence["path"] == "lib/libcrypto.so.52")
        #expect(libre.evidence["library"] == "LibreSSL" && libre.evidence["version"] == "3.8.2")
        #expect(libre.evidence["linkage"] == .null)  // a shared library of its own
        #expect(libre.evidence["other_stacks"] == ["OpenSSL"])
    }

    /// A program linking libcrypto.a with -rdynamic (as node does): a static copy, never an orphan library.
    @Test func staticOpenSSLProgramInABundleAndRunning() throws {
        let root = try Fixtures.cryptoLibs() + "/static-program"
        let r = try Sentinel.run(["scan", root, "--format", "json", "--fail-on", "info"])
        #expect(r.codes() == ["static-openssl-copy"], "\(r.stdout)")
        let copy = try #require(r.findings(.staticOpenSSLCopy).first)
        #expect(copy.evidence["path"] == "bin/app")
        #expect(copy.evidence["program"] == true && copy.evidence["exports_openssl_api"] == true)
        #expect(copy.evidence["version"]?.stringValue?.hasPrefix("3.0.") == true)
        #expect(copy.summary.contains("Node addons"))

        // Running (as nobody) with its addon, which resolves OpenSSL from the program.
        let p = try LiveProcess([root + "/bin/app", "--serve", root + "/lib/addon.node"], as: "65534")
        defer { p.stop() }
        #expect(p.firstLine.hasPrefix("OpenSSL 3.0."))  // what the addon got from the program
        let live = try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--format", "json", "--fail-on", "info"])
        #expect(live.codes() == ["process-static-openssl"], "\(live.stdout)")
        let f = try #require(live.findings(.processStaticOpenSSL).first)
        #expect(f.evidence["path"]?.stringValue == root + "/bin/app")
        #expect(f.evidence["program"] == true)
    }

    /// A python in a venv importing ssl and grpc maps Debian's libcrypto.so.3 and BoringSSL in cygrpc.
    @Test func grpcNextToSSLInALivePython() throws {
        let venv = try Fixtures.cryptoLibs() + "/venv"
        let p = try LiveProcess([venv + "/bin/python", "-c", "import ssl, grpc, time; print('ready', flush=True); time.sleep(3600)"],
                                as: "65534")
        defer { p.stop() }
        #expect(p.firstLine == "ready")
        let r = try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--format", "json", "--fail-on", "info"])
        let f = try #require(r.findings(.processForeignCrypto).first, "\(r.stdout)")
        #expect(r.findings(.processForeignCrypto).count == 1)
        #expect(f.evidence["path"]?.stringValue?.hasSuffix("/grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so") == true)
        #expect(f.evidence["library"] == "BoringSSL" && f.evidence["other_stacks"] == ["OpenSSL"])
        #expect(f.severity == .info)
        #expect(r.status == 1)  // info counts at --fail-on info
        #expect(try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--format", "json"]).status == 0)
        let fips = try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--expect-fips", "--format", "json"])
        #expect(fips.findings(.processForeignCrypto).first?.severity == .warning)
    }

    /// Debian's GnuTLS (and its Nettle) mapped next to libcrypto.so.3; GnuTLS alone is no second stack.
    @Test func gnuTLSNextToOpenSSLInAProcess() throws {
        let fx = try Fixtures.proc()
        let gnutls = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30"
        let p = try LiveProcess([fx + "/holdlibs", gnutls, Fixtures.systemLibcrypto], as: "65534")
        defer { p.stop() }
        let r = try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--format", "json", "--fail-on", "info"])
        let found = Dictionary(r.findings(.processForeignCrypto).map { ($0.evidence["library"]?.stringValue ?? "", $0) }) { a, _ in a }
        #expect(found.keys.sorted() == ["GnuTLS", "Nettle"], "\(r.stdout)")
        #expect(found["GnuTLS"]?.evidence["version"]?.stringValue?.hasPrefix("3.") == true)
        #expect(found["GnuTLS"]?.evidence["other_stacks"] == ["OpenSSL"])

        let alone = try LiveProcess([fx + "/holdlibs", gnutls], as: "65534")
        defer { alone.stop() }
        let quiet = try Sentinel.run(["inspect", "--pid", "\(alone.pid)", "--format", "json", "--fail-on", "info"])
        #expect(quiet.findings(.processForeignCrypto).isEmpty, "\(quiet.stdout)")
    }

    /// OpenSSL 1.1.1g (psycopg2-binary 2.8.6) and 3.0 in one process: a split; the POST runs on 1.1
    /// with what 1.1 has.
    @Test func openSSL11NextTo3InAProcessAndItsPOST() throws {
        let fx = try Fixtures.proc()
        let v11 = try Fixtures.openSSL11()
        let p = try LiveProcess([fx + "/holdlibs", v11.libz, v11.libcrypto, Fixtures.systemLibcrypto], as: "65534")
        defer { p.stop() }
        let r = try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--format", "json"])
        let split = try #require(r.findings(.processSplitLibcrypto).first, "\(r.stdout)")
        let versions = (split.evidence["copies"]?.arrayValue ?? []).compactMap { $0["version"]?.stringValue }.sorted()
        #expect(versions.count == 2 && versions[0] == "1.1.1g" && versions[1].hasPrefix("3.0."), "\(versions)")

        let post = try Sentinel.run(["post", "--libcrypto", v11.libcrypto, "--env", "LD_LIBRARY_PATH=\(v11.libs)",
                                     "--format", "json", "--fail-on", "warning"], as: "65534")
        let checks = Dictionary(((post.report?.targets.first?.post?["checks"]?.arrayValue) ?? []).map {
            ($0["name"]?.stringValue ?? "", $0)
        }) { a, _ in a }
        #expect(checks["identity"]?["summary"]?.stringValue?.hasPrefix("OpenSSL 1.1.1g") == true, "\(post.stdout)")
        #expect(checks["providers"]?["status"] == "skip")
        #expect(checks["providers"]?["summary"] == "OpenSSL 1.1 has no providers; FIPS_mode() returned 0")
        #expect(checks["self-test callback"]?["status"] == "skip")
        for name in ["load", "config (service)", "sha-256 known answer", "drbg"] {
            #expect(checks[name]?["status"] == "pass", "\(name): \(checks[name] ?? .null)")
        }
        #expect(post.findings.filter { $0.code.rawValue.hasPrefix("post-") }.isEmpty, "\(post.codes())")
        #expect(post.report?.targets.first?.post?["library"]?["fips_mode"] == 0)

        // FIPS expected: 1.1 has no FIPS provider, and the report says so.
        let fips = try Sentinel.run(["post", "--libcrypto", v11.libcrypto, "--env", "LD_LIBRARY_PATH=\(v11.libs)",
                                     "--expect-fips", "--format", "json"], as: "65534")
        let notActive = try #require(fips.findings(.postFIPSNotActive).first, "\(fips.codes())")
        #expect(notActive.summary.hasSuffix("OpenSSL 1.1 has no FIPS provider (FIPS_mode() returned 0)"), "\(notActive.summary)")
    }
}
