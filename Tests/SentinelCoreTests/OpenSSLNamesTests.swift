import SentinelCore
import Testing

/// Names only decide what a DT_NEEDED string asks for; files are recognised by content elsewhere.
@Suite struct OpenSSLNamesTests {
    @Test(arguments: [
        ("libcrypto.so.3", "libcrypto", false, nil),
        ("libcrypto.so", "libcrypto", false, nil),
        ("/opt/x/lib/libssl.so.1.1", "libssl", false, nil),
        ("libcrypto-27e744a7.so.3", "libcrypto", true, "libcrypto.so.3"),
        ("libssl-821e5a28.so.3", "libssl", true, "libssl.so.3"),
        ("libcrypto-ABCDEF01.so.3", "libcrypto", true, "libcrypto.so.3"),
        ("libcrypto-1a2b.so.3", nil, false, nil),          // too short to be a hash
        ("libcrypto-27e744a7.so", "libcrypto", true, "libcrypto.so"),
        ("libcryptopp.so.8", nil, false, nil),
        ("libssl3.so", nil, false, nil),                    // NSS, not OpenSSL
        ("libcrypto-xyz12345.so.3", nil, false, nil),
        ("libgnutls-openssl.so.27", nil, false, nil),
    ] as [(String, String?, Bool, String?)])
    func names(_ name: String, _ family: String?, _ mangled: Bool, _ canonical: String?) {
        #expect(OpenSSLNames.family(of: name) == family)
        #expect(OpenSSLNames.isMangled(name) == mangled)
        #expect(OpenSSLNames.canonical(forMangled: name) == canonical)
    }

    @Test func roleComesFromContentNotTheName() {
        // A file named like a plain library that exports OPENSSL_init_crypto is a libcrypto.
        let disguised = ELFObject(elfClass: .elf64, machine: 62, type: .sharedObject, soname: "libfoo.so.1",
                                  exports: .libcrypto)
        #expect(disguised.openSSLRole == .libcrypto)
        // Version text alone (a consumer compiled against the headers) is no static copy…
        let consumer = ELFObject(elfClass: .elf64, machine: 62, type: .sharedObject,
                                 embeddedOpenSSL: EmbeddedOpenSSL(versionText: "OpenSSL 3.0.14 4 Jun 2024"))
        #expect(consumer.openSSLRole == nil)
        // …with the build directories it is.
        let copy = ELFObject(elfClass: .elf64, machine: 62, type: .sharedObject,
                             embeddedOpenSSL: EmbeddedOpenSSL(versionText: "OpenSSL 4.0.3 29 Sep 2026", openSSLDir: "/opt/pyca"))
        #expect(copy.openSSLRole == .staticCopy)
        #expect(copy.embeddedOpenSSL?.majorMinor == "4.0")
    }

    @Test func whatAFileIsDecidesBeforeItsExports() {
        // A PIE program exporting OpenSSL's API (node, -rdynamic) carries a static copy; it is no library.
        var program = ELFObject(elfClass: .elf64, machine: 62, type: .sharedObject, interpreter: "/lib64/ld-linux-x86-64.so.2",
                                exports: .libcrypto)
        program.entry = 0xbc030
        #expect(program.isProgram && program.openSSLRole == .staticCopy)
        let exec = ELFObject(elfClass: .elf64, machine: 62, type: .executable, exports: [.libcrypto, .libssl])
        #expect(exec.openSSLRole == .staticCopy)
        // A library that also runs (an interpreter, an entry point and a SONAME, as libc.so.6) stays a library.
        var runnable = ELFObject(elfClass: .elf64, machine: 62, type: .sharedObject, interpreter: "/lib64/ld-linux-x86-64.so.2",
                                 soname: "libcrypto.so.3", exports: .libcrypto)
        runnable.entry = 0x1000
        #expect(!runnable.isProgram && runnable.openSSLRole == .libcrypto)
        // LibreSSL exports OpenSSL's entry points under a libcrypto name: another library, not OpenSSL.
        var libre = ELFObject(elfClass: .elf64, machine: 62, type: .sharedObject, soname: "libcrypto.so.52", exports: .libcrypto)
        libre.foreignCrypto = ForeignCrypto(library: .libreSSL, version: "3.8.2")
        #expect(libre.openSSLRole == nil)
        #expect(ForeignCrypto(library: .nettle).stack == "GnuTLS")
    }

    @Test func releaseLineFromVersionNodes() {
        var libssl = ELFObject(elfClass: .elf64, machine: 62, type: .sharedObject, soname: "libssl.so.3", exports: .libssl)
        libssl.definedVersions = ["OPENSSL_3.0.0", "OPENSSL_3.2.0", "OPENSSL_3.5.0"]
        #expect(libssl.opensslVersionNodeLine == "3.5")
        libssl.definedVersions = ["OPENSSL_1_1_0", "OPENSSL_1_1_0d", "OPENSSL_1_1_1", "OPENSSL_1_1_1a"]  // 1.1's spelling
        #expect(libssl.opensslVersionNodeLine == "1.1")
        libssl.definedVersions = ["libssl.so.3"]
        #expect(libssl.opensslVersionNodeLine == nil)
    }
}
