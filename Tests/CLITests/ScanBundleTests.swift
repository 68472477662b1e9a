import Foundation
import SentinelCore
import Testing

/// `crypto-sentinel scan` on real cx_Freeze bundles frozen from PyPI (scripts/fixtures/cxfreeze-bundles.sh).
@Suite(.serialized) struct ScanBundleTests {
    /// The pip-venv bundle: hashed names from freeze_core, cryptography's static OpenSSL 4.x, no split.
    @Test func pipVenvBundle() throws {
        let root = try Fixtures.cxfreeze("pip-venv")
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        #expect(r.status == 1)
        #expect(r.codes() == ["mangled-openssl-name", "mangled-openssl-name", "modules-dir-missing", "static-openssl-copy"],
                "\(r.codes())")
        let names = r.findings(.mangledOpenSSLName).compactMap { $0.evidence["name"]?.stringValue }
        #expect(names.count == 2 && names.allSatisfy(OpenSSLNames.isMangled))
        let stat = try #require(r.findings(.staticOpenSSLCopy).first)
        #expect(stat.evidence["path"]?.stringValue == "lib/cryptography/hazmat/bindings/_rust.abi3.so")
        #expect(stat.evidence["version"]?.stringValue?.hasPrefix("4.") == true)
        let modules = try #require(r.findings(.modulesDirMissing).first)
        #expect(modules.evidence["modulesdir"]?.stringValue?.hasPrefix("/opt/_internal/openssl-3.5") == true)
        // share/certs.pem is set as SSL_CERT_FILE by cx_Freeze's hook at start-up: not a missing trust store.
        #expect(r.findings(.trustStoreMissing).isEmpty)
    }

    /// The Debian bundle: _ssl on the bundled hashed libcrypto, cryptography's binding on the system's.
    @Test func debianBundleIsTheRealSplit() throws {
        let root = try Fixtures.cxfreeze("debian")
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        #expect(r.status == 1)
        #expect(r.codes() == ["mangled-openssl-name", "mangled-openssl-name", "modules-dir-missing",
                              "split-libcrypto", "split-libcrypto"], "\(r.codes())")
        let split = try #require(r.findings(.splitLibcrypto).first { $0.evidence["library"]?.stringValue == "libcrypto" })
        let copies = split.evidence["copies"]?.arrayValue ?? []
        let inBundle = try #require(copies.first { $0["in_bundle"] == .bool(true) })
        let system = try #require(copies.first { $0["in_bundle"] == .bool(false) })
        #expect(inBundle["version"]?.stringValue?.hasPrefix("3.5.") == true)
        #expect(system["version"]?.stringValue?.hasPrefix("3.0.") == true)
        let systemConsumers = system["consumers"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(systemConsumers.contains { $0.hasPrefix("lib/cryptography/hazmat/bindings/_openssl.abi3.so needs libcrypto.so.3") })
        let bundleConsumers = inBundle["consumers"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(bundleConsumers.contains { $0.hasPrefix("lib/_ssl.cpython-311-x86_64-linux-gnu.so needs libcrypto-") })
        #expect(bundleConsumers.contains { $0.hasPrefix("lib/_hashlib.cpython-311-x86_64-linux-gnu.so needs libcrypto-") })
    }

    /// The canonicalised bundle: one libcrypto for every consumer (the binding reaches lib/ through the
    /// executable's RPATH); only the compiled-in MODULESDIR is missing, and OPENSSL_MODULES clears it.
    @Test func canonicalisedBundleIsClean() throws {
        let root = try Fixtures.cxfreeze("canonical")
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        #expect(r.codes() == ["modules-dir-missing"], "\(r.codes())")
        let withModules = try Sentinel.run(["scan", root, "--format", "json", "--fail-on", "info",
                                            "--env", "OPENSSL_MODULES=/usr/lib/x86_64-linux-gnu/ossl-modules"])
        #expect(withModules.codes() == [], "\(withModules.stdout)")
        #expect(withModules.status == 0)
    }

    /// The fix printed for the real split, applied as printed, gives the canonical bundle's verdict.
    @Test func printedFixRepairsTheRealSplit() throws {
        let root = try Fixtures.copy(try Fixtures.cxfreeze("debian"))
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        // The libcrypto split's fix canonicalises every hashed OpenSSL file (libssl too), in one go.
        let split = try #require(r.findings(.splitLibcrypto).first { $0.evidence["library"]?.stringValue == "libcrypto" })
        let script = split.fix.filter { !$0.hasPrefix("crypto-sentinel ") }.joined(separator: " && ")
        let applied = try Sentinel.shell(["bash", "-c", script])
        #expect(applied.status == 0, "\(applied.stderr)")
        let after = try Sentinel.run(["scan", root, "--format", "json"])
        #expect(after.codes() == ["modules-dir-missing"], "\(after.stdout)")
    }
}
