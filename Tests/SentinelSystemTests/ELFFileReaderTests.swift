import Dispatch
import Foundation
import Glibc
import SentinelCore
import SentinelSystem
import SentinelTestSupport
import Testing
import CLibElf

private let systemLibDir = "/usr/lib/x86_64-linux-gnu"
private let systemLibcrypto = systemLibDir + "/libcrypto.so.3"
private let systemLibssl = systemLibDir + "/libssl.so.3"
private let hasSystemOpenSSL = FileManager.default.fileExists(atPath: systemLibcrypto)
    && FileManager.default.fileExists(atPath: systemLibssl)

private func read(_ path: String) throws -> ELFObject {
    try #require(try ELFFileReader.read(path: path), "\(path) is not read as ELF")
}

private func readError(_ path: String) -> ELFReadError? {
    do {
        _ = try ELFFileReader.read(path: path)
        return nil
    } catch {
        return error
    }
}

/// DT_NEEDED names as `readelf -d` prints them: "(NEEDED)  Shared library: [libc.so.6]".
private func readelfNeeded(_ path: String) throws -> [String] {
    try run("/usr/bin/readelf", ["-d", "-W", path]).output.split(separator: "\n")
        .filter { $0.contains("(NEEDED)") }
        .compactMap { line in line.split(separator: "[").last?.split(separator: "]").first.map(String.init) }
}

/// Version-need file names as `readelf -V` prints them: "000000: Version: 1  File: libc.so.6  Cnt: 5".
private func readelfVersionNeedFiles(_ path: String) throws -> [String] {
    try run("/usr/bin/readelf", ["-V", "-W", path]).output.split(separator: "\n")
        .compactMap { line in
            guard let range = line.range(of: "File: ") else { return nil }
            return line[range.upperBound...].split(separator: " ").first.map(String.init)
        }
}

private func fixture(_ relative: String) throws -> String {
    try Fixtures.elfTrees() + "/" + relative
}

@Suite("ELFFileReader on the system OpenSSL", .enabled(if: hasSystemOpenSSL))
struct SystemOpenSSLTests {
    @Test func libcrypto() throws {
        let object = try read(systemLibcrypto)
        #expect(object.elfClass == .elf64)
        #expect(object.machine == 62)
        #expect(object.type == .sharedObject)
        #expect(object.soname == "libcrypto.so.3")
        #expect(object.exports == .libcrypto)
        #expect(object.openSSLRole == .libcrypto)
        #expect(object.interpreter == nil)
        #expect(object.needed == (try readelfNeeded(systemLibcrypto)))
        let embedded = try #require(object.embeddedOpenSSL)
        #expect(embedded.versionText?.hasPrefix("OpenSSL 3.0.") == true, "\(embedded)")
        #expect(embedded.majorMinor == "3.0")
        #expect(embedded.openSSLDir == "/usr/lib/ssl")
        #expect(embedded.modulesDir == "/usr/lib/x86_64-linux-gnu/ossl-modules")
        #expect(embedded.enginesDir == "/usr/lib/x86_64-linux-gnu/engines-3")
        #expect(embedded.certFile == "/usr/lib/ssl/cert.pem")
        #expect(embedded.certDir == "/usr/lib/ssl/certs")
    }

    @Test func libssl() throws {
        let object = try read(systemLibssl)
        #expect(object.soname == "libssl.so.3")
        #expect(object.exports == .libssl)
        #expect(object.openSSLRole == .libssl)
        #expect(object.needed.contains("libcrypto.so.3"))
        #expect(object.needed == (try readelfNeeded(systemLibssl)))
        #expect(object.versionNeedFiles.contains("libcrypto.so.3"))
        #expect(object.versionNeedFiles == (try readelfVersionNeedFiles(systemLibssl)))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: systemLibDir + "/ossl-modules/legacy.so")))
    func providerModule() throws {
        let legacy = try read(systemLibDir + "/ossl-modules/legacy.so")
        #expect(legacy.exports == .provider)
        #expect(legacy.soname == nil)
        #expect(legacy.openSSLRole == .provider)
    }

    @Test func concurrentReadsAgree() async throws {
        let expected = try [systemLibcrypto, systemLibssl].map(read)
        try await withThrowingTaskGroup(of: [ELFObject].self) { group in
            for _ in 0..<8 {
                group.addTask { try [systemLibcrypto, systemLibssl].map { try #require(try ELFFileReader.read(path: $0)) } }
            }
            for try await objects in group { #expect(objects == expected) }
        }
    }

    @Test func readFromOpenDescriptorLeavesItOpen() throws {
        let fd = open(systemLibssl, O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        let object = try #require(try ELFFileReader.read(fd: fd, path: systemLibssl))
        #expect(object.soname == "libssl.so.3")
        #expect(fcntl(fd, F_GETFD) >= 0, "the reader must not close the caller's descriptor")
        #expect(try ELFFileReader.read(fd: fd, path: systemLibssl) == object)
    }
}

@Suite("ELFFileReader on the gcc fixture trees")
struct FixtureTreeTests {
    @Test func mangledBindingNeedsAndRunpath() throws {
        let path = try fixture("hashed/lib/_ssl.cpython-311-x86_64-linux-gnu.so")
        let object = try read(path)
        #expect(Array(object.needed.prefix(2)) == ["libssl-5e6f7a8b.so.3", "libcrypto-1a2b3c4d.so.3"])
        #expect(object.needed == (try readelfNeeded(path)))
        #expect(object.runpath == "$ORIGIN")
        #expect(object.rpath == nil)
        #expect(object.soname == nil)
        #expect(object.exports.isEmpty)
        #expect(object.openSSLRole == nil)
        #expect(object.embeddedOpenSSL == nil)
        #expect(!object.isMainProgram)
    }

    @Test func mangledLibsslAndLibcrypto() throws {
        let ssl = try read(try fixture("hashed/lib/libssl-5e6f7a8b.so.3"))
        #expect(ssl.soname == "libssl-5e6f7a8b.so.3")
        #expect(ssl.rpath == "$ORIGIN")
        #expect(ssl.runpath == nil)
        #expect(ssl.effectiveRPath == "$ORIGIN")
        #expect(ssl.needed.first == "libcrypto-1a2b3c4d.so.3")
        #expect(ssl.exports == .libssl)
        #expect(ssl.openSSLRole == .libssl)
        #expect(ssl.embeddedOpenSSL == EmbeddedOpenSSL(versionText: "OpenSSL 3.5.99 1 Jan 2026"))

        let crypto = try read(try fixture("hashed/lib/libcrypto-1a2b3c4d.so.3"))
        #expect(crypto.soname == "libcrypto-1a2b3c4d.so.3")
        #expect(crypto.exports == .libcrypto)
        #expect(crypto.openSSLRole == .libcrypto)
        #expect(crypto.embeddedOpenSSL == EmbeddedOpenSSL(
            versionText: "OpenSSL 3.5.99 1 Jan 2026", openSSLDir: "/usr/lib/ssl",
            modulesDir: "/usr/lib/x86_64-linux-gnu/ossl-modules", enginesDir: "/usr/lib/ssl/engines-3",
            certFile: "/usr/lib/ssl/cert.pem", certDir: "/usr/lib/ssl/certs"))
    }

    @Test func rpathAndRunpathTogether() throws {
        let both = try read(try fixture("rpath-inherit/r/libboth.so"))
        #expect(both.rpath == "$ORIGIN/../x")
        #expect(both.runpath == "$ORIGIN/m")
        #expect(both.effectiveRPath == nil)
        #expect(both.needed.contains("libleaf3.so"))

        let mid = try read(try fixture("rpath-inherit/r/libmid.so"))
        #expect(mid.rpath == nil && mid.runpath == "$ORIGIN/m")
        let mid2 = try read(try fixture("rpath-inherit/r/libmid2.so"))
        #expect(mid2.rpath == nil && mid2.runpath == nil)
        #expect(mid2.needed.first == "libleaf2.so")

        let app = try read(try fixture("rpath-inherit/app"))
        #expect(app.rpath == "$ORIGIN/r")
        #expect(Array(app.needed.prefix(3)) == ["libmid.so", "libmid2.so", "libboth.so"])
    }

    @Test func noDefaultLibFlag() throws {
        #expect(try read(try fixture("nodeflib/lib/withflag.so")).noDefaultLib)
        #expect(try !read(try fixture("nodeflib/lib/without.so")).noDefaultLib)
    }

    @Test func mainProgram() throws {
        let app = try read(try fixture("hashed/app"))
        #expect(app.interpreter == "/lib64/ld-linux-x86-64.so.2")
        #expect(app.isMainProgram)
        #expect(app.type == .sharedObject || app.type == .executable)  // PIE or not, per gcc's default
        #expect(app.rpath == "$ORIGIN/lib:$ORIGIN/../lib")
        #expect(app.needed == ["libc.so.6"])
        #expect(app.versionNeedFiles == ["libc.so.6"])
    }

    @Test func staticOpenSSLCopy() throws {
        let object = try read(try fixture("duplicate/lib/_static.abi3.so"))
        #expect(object.exports.isEmpty)
        #expect(object.soname == nil)
        let embedded = try #require(object.embeddedOpenSSL)
        #expect(embedded.versionText == "OpenSSL 4.0.99 1 Jan 2026")
        #expect(embedded.version == "4.0.99")
        #expect(embedded.openSSLDir == "/opt/pyca/openssl")
        #expect(embedded.modulesDir == "/opt/pyca/openssl/lib64/ossl-modules")
        #expect(embedded.certFile == "/opt/pyca/openssl/cert.pem")
        #expect(embedded.certDir == "/opt/pyca/openssl/certs")
        #expect(object.openSSLRole == .staticCopy)
    }

    @Test func compiledInDirectoriesAreReadAsWritten() throws {
        let embedded = try #require(try read(try fixture("problems/lib/libcrypto.so.3")).embeddedOpenSSL)
        #expect(embedded.versionText == "OpenSSL 3.0.99 1 Jan 2026")
        #expect(embedded.openSSLDir == "/nonexistent/ssl")
        #expect(embedded.modulesDir == "/nonexistent/ossl-modules")
    }

    @Test func neededWithSlashAndRewrittenNames() throws {
        let slash = try read(try fixture("origin/opt/bin/slash.so"))
        #expect(slash.needed.contains("./up/libup.so"))
        // patchelf --replace-needed rewrites DT_NEEDED and the matching .gnu.version_r file name.
        let gonePath = try fixture("problems/lib/_gone.cpython-39-x86_64-linux-gnu.so")
        let gone = try read(gonePath)
        #expect(gone.needed.contains("libcrypto-deadbeef.so.3"))
        #expect(gone.versionNeedFiles == (try readelfVersionNeedFiles(gonePath)))
    }

    @Test func sectionTableStrippedFallsBackToPTDynamic() throws {
        let original = try fixture("hashed/lib/libssl-5e6f7a8b.so.3")
        let dir = try Fixtures.temporaryDirectory("elf-nosections")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: original)))
        // Like sstrip: e_shoff = 0, e_shnum = 0, e_shstrndx = 0 (ELF64 little-endian offsets).
        for i in 0x28..<0x30 { bytes[i] = 0 }
        bytes[0x3c] = 0; bytes[0x3d] = 0; bytes[0x3e] = 0; bytes[0x3f] = 0
        let path = dir + "/libssl-nosections.so.3"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let stripped = try read(path)
        let full = try read(original)
        #expect(stripped.soname == full.soname)
        #expect(stripped.needed == full.needed)
        #expect(stripped.rpath == "$ORIGIN")
        #expect(stripped.exports.isEmpty && stripped.embeddedOpenSSL == nil)  // both come from sections
    }
}

@Suite("ELFFileReader on broken and odd inputs")
struct BrokenInputTests {
    @Test(arguments: ["broken/corrupt.so", "broken/truncated.so", "broken/cut-mid-sections.so"])
    func corruptFilesThrowOneLine(_ relative: String) throws {
        let error = try #require(readError(try fixture(relative)), "\(relative) must throw")
        #expect(!error.description.isEmpty)
        #expect(!error.description.contains("\n"))
    }

    @Test func specificReasons() throws {
        #expect(readError(try fixture("broken/corrupt.so"))?.description == "truncated ELF header")
        #expect(readError(try fixture("broken/cut-mid-sections.so"))?.description.hasPrefix("truncated: section table") == true)
        #expect(readError(try fixture("broken/truncated.so"))?.description.hasPrefix("truncated: ") == true)
    }

    @Test func notELFAndNotRegularGiveNil() throws {
        #expect(try ELFFileReader.read(path: try fixture("broken/readme.txt")) == nil)
        #expect(try ELFFileReader.read(path: try fixture("broken/self-dir")) == nil)
        #expect(try ELFFileReader.read(path: "/dev/null") == nil)
        #expect(try ELFFileReader.read(path: try fixture("broken/libok.so"))?.soname == "libok.so")
    }

    @Test func openErrorsAreOneLine() throws {
        let loop = try #require(readError(try fixture("broken/loop-a")))
        #expect(loop == .cannotOpen(errno: ELOOP))
        #expect(loop.description == "cannot open: Too many levels of symbolic links")
        #expect(readError("/nonexistent/libcrypto.so.3")?.description == "cannot open: No such file or directory")
    }

    @Test func fifoReturnsNilWithoutBlocking() throws {
        let dir = try Fixtures.temporaryDirectory("elf-fifo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fifo = dir + "/pipe.so"
        try #require(mkfifo(fifo, 0o644) == 0)
        // On another thread, so a regression that blocks fails this test instead of hanging the run.
        final class Outcome: @unchecked Sendable { var value: String = "not finished" }  // handed over by the semaphore
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            do {
                let byPath = try ELFFileReader.read(path: fifo)
                let fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
                defer { if fd >= 0 { close(fd) } }
                let byFD = fd >= 0 ? try ELFFileReader.read(fd: fd, path: fifo) : nil
                outcome.value = byPath == nil && byFD == nil ? "nil" : "parsed"
            } catch {
                outcome.value = "threw \(error)"
            }
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 10) == .success, "reading a FIFO blocked")
        #expect(outcome.value == "nil")
    }

    @Test func unreadableFile() throws {
        let path = try fixture("broken/unreadable.so")
        if getuid() != 0 {
            let error = try #require(readError(path))
            #expect(error.description == "cannot open: Permission denied")
            return
        }
        // Root ignores the 000 mode, so the assertion runs in a child of this test binary as nobody.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
              let binary = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return }
        var environment = ProcessInfo.processInfo.environment
        environment[UnprivilegedChild.variable] = path
        let child = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", binary,
                                                 "--testing-library", "swift-testing", "--filter", "unprivilegedChildProbe"],
                            environment: environment)
        // 126/127: nobody cannot execute the test binary here (e.g. a private build directory).
        guard child.status != 126, child.status != 127 else { return }
        #expect(child.output.contains(UnprivilegedChild.marker + "cannot open: Permission denied"), "\(child.output)")
        #expect(child.status == 0)
    }

    /// Runs only in the unprivileged child started by `unreadableFile`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment[UnprivilegedChild.variable] != nil))
    func unprivilegedChildProbe() throws {
        let path = try #require(ProcessInfo.processInfo.environment[UnprivilegedChild.variable])
        let error = try #require(readError(path))
        print(UnprivilegedChild.marker + error.description)
    }
}

private enum UnprivilegedChild {
    static let variable = "CRYPTO_SENTINEL_UNPRIVILEGED_READ"
    static let marker = "UNPRIVILEGED-READ: "
}

/// Compiles C source into a shared object with gcc (used for string-recognition cases).
private func compile(_ source: String, in dir: String, name: String, flags: [String] = ["-shared", "-fPIC"]) throws -> String {
    let sourcePath = dir + "/" + name + ".c"
    try source.write(toFile: sourcePath, atomically: true, encoding: .utf8)
    let output = dir + "/" + name + (flags.contains("-c") ? ".o" : ".so")
    let result = try run("/usr/bin/gcc", flags + ["-O1", "-o", output, sourcePath])
    try #require(result.status == 0, "gcc failed for \(name)")
    return output
}

private func cString(_ text: String) -> String {
    "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

@Suite("OpenSSL build strings")
struct EmbeddedStringTests {
    @Test(arguments: [
        ("OpenSSL 3.5.9 29 Sep 2026", "OpenSSL 3.5.9 29 Sep 2026"),
        ("OpenSSL 1.1.1w  11 Sep 2023", "OpenSSL 1.1.1w  11 Sep 2023"),
        ("OpenSSL 1.0.2k-fips  26 Jan 2017", "OpenSSL 1.0.2k-fips  26 Jan 2017"),
        ("OpenSSL 3.2.0-alpha2 xx XXX xxxx", "OpenSSL 3.2.0-alpha2 xx XXX xxxx"),
        ("OpenSSL 3.5.9 29 Sep 2026 (Library: something)", nil),  // not NUL-terminated after the year
        ("OpenSSL 3.5 29 Sep 2026", nil),
        ("OpenSSL 3.5.9 29 Foo 2026", nil),
        ("OpenSSL 3.5.9", nil),
        ("Built with OpenSSL 3.5.9 29 Sep 2026", "OpenSSL 3.5.9 29 Sep 2026"),  // tail-merged strings share bytes
    ] as [(String, String?)])
    func versionText(_ text: String, _ expected: String?) throws {
        let dir = try Fixtures.temporaryDirectory("elf-version")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // With an OPENSSLDIR build string beside it, as in every libcrypto and static copy.
        let so = try compile("const char *const strings[] = { \(cString(text)), \"OPENSSLDIR: \\\"/x\\\"\" };\n",
                             in: dir, name: "v")
        #expect(try read(so).embeddedOpenSSL?.versionText == expected)
    }

    /// The other searches run only where the `DIR: "` build strings are (or OpenSSL is exported):
    /// a consumer compiled against OpenSSL's headers carries the version text alone, and is no copy.
    @Test func versionTextAloneIsNotSearchedFor() throws {
        let dir = try Fixtures.temporaryDirectory("elf-version-alone")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let so = try compile("const char *const v = \"OpenSSL 3.0.14 4 Jun 2024\";\n", in: dir, name: "alone")
        #expect(try read(so).embeddedOpenSSL == nil)
        let withDir = try compile("const char *const v[] = { \"OpenSSL 3.0.14 4 Jun 2024\", \"MODULESDIR: \\\"/m\\\"\" };\n",
                                  in: dir, name: "withdir")
        #expect(try read(withDir).embeddedOpenSSL?.modulesDir == "/m")
    }

    @Test func directoriesAndCertDefaults() throws {
        let dir = try Fixtures.temporaryDirectory("elf-dirs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // ENGINESDIR N/A, and only the cert file (no certs dir) compiled in.
        let so = try compile("""
            const char *const strings[] = { "OpenSSL 3.6.1 1 Feb 2027", "OPENSSLDIR: \\"/etc/pki/tls\\"",
              "MODULESDIR: \\"/usr/lib64/ossl-modules\\"", "ENGINESDIR: N/A", "/etc/pki/tls/cert.pem",
              "/etc/pki/tls/certs-but-longer" };
            """, in: dir, name: "dirs")
        #expect(try read(so).embeddedOpenSSL == EmbeddedOpenSSL(
            versionText: "OpenSSL 3.6.1 1 Feb 2027", openSSLDir: "/etc/pki/tls", modulesDir: "/usr/lib64/ossl-modules",
            enginesDir: nil, certFile: "/etc/pki/tls/cert.pem", certDir: nil))
    }

    @Test func onlyReadOnlyDataIsSearched() throws {
        let dir = try Fixtures.temporaryDirectory("elf-writable")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A writable array lands in .data, which a real OpenSSL never uses for these strings.
        let so = try compile("char version[] = \"OpenSSL 3.5.9 29 Sep 2026\";\nchar dir[] = \"OPENSSLDIR: \\\"/x\\\"\";\n",
                             in: dir, name: "writable")
        #expect(try read(so).embeddedOpenSSL == nil)
    }

    /// The search reads windows: strings across a window boundary and past holes are found as when
    /// the section was read whole, and a section declared past the file's end is refused.
    @Test func windowedSearchAcrossBoundariesAndHoles() throws {
        let dir = try Fixtures.temporaryDirectory("elf-windows")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/sparse.so"
        // 128 KiB windows: with data from the start (no hole to skip), the key starts 5 bytes before the
        // first window's end; the version text and the cert defaults sit beyond holes.
        try SparseELF.write(path, declared: 64 << 20, strings: [
            (0, String(repeating: "a", count: (128 << 10) - 6)), ((128 << 10) - 5, "OPENSSLDIR: \"/straddle\""),
            (40 << 20, "OpenSSL 3.5.9 29 Sep 2026"),
            ((16 << 20) - 3, "/straddle/certs"), ((64 << 20) - 32, "/straddle/cert.pem"),
        ])
        #expect(try read(path).embeddedOpenSSL == EmbeddedOpenSSL(
            versionText: "OpenSSL 3.5.9 29 Sep 2026", openSSLDir: "/straddle", certFile: "/straddle/cert.pem",
            certDir: "/straddle/certs"))
        #expect(try read(path).unsearchedReadOnlyData == nil)

        try SparseELF.write(path, declared: 64 << 20, strings: [(0, "OPENSSLDIR: \"/x\"")], sized: false)
        #expect(readError(path)?.description.hasPrefix("truncated: section 1 ends at byte \(0x1000 + (64 << 20))") == true,
                "\(String(describing: readError(path)))")
    }

    /// More read-only data than the search reads per file: not searched, and said so.
    @Test func readOnlyDataOverTheLimitIsNotSearched() throws {
        let dir = try Fixtures.temporaryDirectory("elf-limit")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/huge.so"
        try SparseELF.write(path, declared: (1 << 30) + 1, strings: [(0, "OpenSSL 3.5.9 29 Sep 2026"), (26, "OPENSSLDIR: \"/x\"")])
        let object = try read(path)
        #expect(object.embeddedOpenSSL == nil)
        #expect(object.unsearchedReadOnlyData == (1 << 30) + 1)
        #expect(object.searchWarning?.hasPrefix("declares 1024 MiB of read-only data") == true)
        try SparseELF.write(path, declared: 1 << 30, strings: [(0, "OpenSSL 3.5.9 29 Sep 2026"), (26, "OPENSSLDIR: \"/x\"")])
        #expect(try read(path).embeddedOpenSSL?.openSSLDir == "/x")
    }

    @Test func relocatable32BitObject() throws {
        let dir = try Fixtures.temporaryDirectory("elf-32")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sourcePath = dir + "/m32.c"
        try "const char *const v[] = { \"OpenSSL 3.0.1 14 Dec 2021\", \"OPENSSLDIR: \\\"/x\\\"\" };\n"
            .write(toFile: sourcePath, atomically: true, encoding: .utf8)
        // Needs only the compiler (no 32-bit libc), which may still be missing: then there is nothing to test.
        guard try run("/usr/bin/gcc", ["-m32", "-c", "-O1", "-o", dir + "/m32.o", sourcePath]).status == 0 else { return }
        let object = try read(dir + "/m32.o")
        #expect(object.elfClass == .elf32)
        #expect(object.machine == 3)  // EM_386
        #expect(object.type == .relocatable)
        #expect(object.embeddedOpenSSL?.versionText == "OpenSSL 3.0.1 14 Dec 2021")
    }
}


/// The build-string filter's candidate search (SSE2, and AVX2 where the CPU has it) against a plain loop,
/// with `D....\"` planted around the 64-byte steps and the buffer ends.
@Suite("build-string candidate search")
struct CandidateSearchTests {
    @Test func simdSearchesAgreeWithPlainLoop() {
        var rng = SplitMix64(state: 0xD1_5EED)
        for round in 0..<2000 {
            let count = Int.random(in: 0..<300, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0x41...0x44, using: &rng) }  // A-D: many lone D's
            for _ in 0..<Int.random(in: 0...2, using: &rng) where count >= 6 {
                let at = Int.random(in: 0...(count - 6), using: &rng)
                bytes[at] = UInt8(ascii: "D"); bytes[at + 5] = UInt8(ascii: "\"")
            }
            let expected = count < 6 ? count : ((0..<(count - 5)).first { bytes[$0] == UInt8(ascii: "D") && bytes[$0 + 5] == UInt8(ascii: "\"") } ?? count)
            bytes.withUnsafeBufferPointer { p in
                let base = p.baseAddress ?? UnsafePointer(bitPattern: 1)!
                #expect(clibelf_next_dir_candidate(base, count) == expected, "round \(round)")
                #if arch(x86_64)
                if clibelf_have_avx2() != 0 {
                    #expect(clibelf_next_dir_candidate_avx2(base, count) == expected, "round \(round)")
                }
                #endif
            }
        }
    }
}

/// The exports are looked up through .gnu.hash where a file has one; the full .dynsym scan must agree.
@Suite("ELFFileReader exports through .gnu.hash")
struct GnuHashExportTests {
    private func both(_ path: String) -> (Result<ELFObject?, ELFReadError>, Result<ELFObject?, ELFReadError>) {
        func one(_ lookup: ELFFileReader.ExportLookup) -> Result<ELFObject?, ELFReadError> {
            do { return .success(try ELFFileReader.read(path: path, exportLookup: lookup)) } catch { return .failure(error) }
        }
        return (one(.hashTable), one(.fullScan))
    }

    @Test func compiledVariantsAgree() throws {
        let dir = try Fixtures.temporaryDirectory("elf-gnuhash")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Defined, weak, and only referenced (undefined: not an export) names.
        let source = """
            int OPENSSL_init_ssl(void) { return 1; }
            __attribute__((weak)) int ERR_get_error(void) { return 0; }
            int CRYPTO_malloc(void) { return 0; }
            extern int OSSL_provider_init(void);
            extern int OPENSSL_init_crypto(void);
            int use(void) { return OSSL_provider_init() + OPENSSL_init_crypto(); }
            """
        var paths = [try compile(source, in: dir, name: "gnu", flags: ["-shared", "-fPIC", "-Wl,--hash-style=gnu"]),
                     try compile(source, in: dir, name: "sysv", flags: ["-shared", "-fPIC", "-Wl,--hash-style=sysv"])]
        // A 32-bit table (32-bit Bloom words), where the compiler can make one without a 32-bit libc.
        let sourcePath = dir + "/gnu.c"
        if try run("/usr/bin/gcc", ["-m32", "-shared", "-fPIC", "-nostdlib", "-Wl,--hash-style=gnu", "-o", dir + "/g32.so", sourcePath]).status == 0 {
            paths.append(dir + "/g32.so")
        }
        for path in paths {
            let (viaHash, full) = both(path)
            #expect(viaHash == full, "\(path)")
            let object = try #require(try viaHash.get())
            #expect(object.exports == [.libssl, .libcrypto], "\(path)")
        }
    }

    @Test func fixtureTreesAndSystemOpenSSLAgree() throws {
        var paths = [systemLibcrypto, systemLibssl, systemLibDir + "/ossl-modules/legacy.so", systemLibDir + "/libc.so.6"]
        let root = try Fixtures.elfTrees()
        if let walker = FileManager.default.enumerator(atPath: root) {
            while let relative = walker.nextObject() as? String { paths.append(root + "/" + relative) }
        }
        var withExports = 0
        for path in paths where FileManager.default.fileExists(atPath: path) {
            let (viaHash, full) = both(path)
            #expect(viaHash == full, "\(path)")
            if case .success(let object?) = viaHash, !object.exports.isEmpty { withExports += 1 }
        }
        #expect(withExports > 0)
    }
}

@Suite("ELFFileReader robustness", .enabled(if: hasSystemOpenSSL))
struct RobustnessTests {
    @Test func truncatedAndBitFlippedLibssl() throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: systemLibssl)))
        let dir = try Fixtures.temporaryDirectory("elf-fuzz")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SplitMix64(state: 0x5EED_CAFE)
        var parsed = 0
        var thrown = 0
        var notELF = 0  // cut inside the magic, or a flip in it
        func check(_ bytes: [UInt8], _ label: String) throws {
            let path = dir + "/" + label
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            defer { unlink(path) }
            do {
                if try ELFFileReader.read(path: path) != nil { parsed += 1 } else { notELF += 1 }
            } catch {
                thrown += 1
                #expect(!error.description.isEmpty && !error.description.contains("\n"), "\(label): \(error)")
            }
        }

        var lengths = [0, 3, 4, 16, 52, 63, 64, 65, original.count - 1]
        while lengths.count < 50 { lengths.append(Int.random(in: 0..<original.count, using: &rng)) }
        for length in lengths { try check(Array(original.prefix(length)), "cut-\(length).so") }

        // Flips where the structures are: headers, the dynamic-linking sections, the section table.
        let shoff = original[0x28..<0x30].reversed().reduce(0) { $0 << 8 | Int($1) }
        let regions = [0..<0x1000, 0..<min(original.count, 0x10000), min(shoff, original.count - 1)..<original.count,
                       0..<original.count]
        for flip in 0..<200 {
            var bytes = original
            let offset = Int.random(in: regions[flip % regions.count], using: &rng)
            bytes[offset] ^= UInt8.random(in: 1...255, using: &rng)
            try check(bytes, "flip-\(flip)-\(offset).so")
        }
        #expect(parsed + thrown + notELF == 250)
        #expect(parsed > 0 && thrown > 0)
    }
}
