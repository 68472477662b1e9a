import Foundation
import Glibc
import SentinelCore
import SentinelTestSupport
import Testing

extension Fixtures {
    /// One service frozen by PyInstaller (onedir, onefile), Nuitka and a plain venv, each with
    /// cryptography, psycopg2-binary and grpcio from PyPI (scripts/fixtures/freezer-bundles.sh).
    static func freezers() throws -> String {
        try FixtureScripts.build("freezer-bundles.sh", out: root + "/freezers")
        return root + "/freezers"
    }
}

/// `scan` against the running process, for every way the service is packaged: the files the bundle
/// verdict names (scan, no --env) are the libcrypto files the process maps (inspect).
@Suite(.serialized) struct FreezerBundleTests {
    /// The libcrypto copies of a report's split finding (scan: split-libcrypto; inspect: process-split-libcrypto).
    static func libcryptoCopies(_ r: Sentinel.Result, _ code: FindingCode) -> [JSONValue] {
        r.findings(code).first { $0.evidence["library"]?.stringValue == "libcrypto" }?.evidence["copies"]?.arrayValue ?? []
    }

    static func strings(_ copies: [JSONValue], _ key: String) -> Set<String> { Set(copies.compactMap { $0[key]?.stringValue }) }

    /// The service, started as nobody (never a bundle program as root); its first line says it imported everything.
    static func serve(_ argv: [String]) throws -> LiveProcess {
        let p = try LiveProcess(argv + ["--serve"], as: "65534")
        #expect(p.firstLine.hasPrefix("ssl: OpenSSL"), "\(p.firstLine)")
        return p
    }

    /// SIGKILL to the processes it started first (the onefile child), then to it; the test runner's
    /// blocked signals are inherited, so SIGTERM would not reach Python. A onefile parent killed so
    /// leaves its /tmp/_MEI… folder: `leftover` is removed.
    static func stop(_ p: LiveProcess, leftover: String? = nil) {
        for child in children(of: p.pid) { kill(child, SIGKILL) }
        p.stop()
        if let leftover { try? FileManager.default.removeItem(atPath: leftover) }
    }

    static func children(of pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// What `scan` says about a bundle that every variant shares: its freezer, a split between the
    /// interpreter's libcrypto and psycopg2-binary's hashed OpenSSL 3.5, no orphan, cryptography's static copy.
    static func expectSharedVerdict(_ r: Sentinel.Result, freezer: Freezer) throws -> [JSONValue] {
        let bundle = try #require(r.report?.targets.first?.bundle)
        #expect(bundle["freezer"]?.stringValue == freezer.rawValue, "\(bundle)")
        let copies = libcryptoCopies(r, .splitLibcrypto)
        #expect(copies.count == 2, "\(r.codes())")
        #expect(strings(copies, "version").contains { $0.hasPrefix("3.5.") }, "\(copies)")
        #expect(r.findings(.orphanOpenSSLCopy).isEmpty, "\(r.findings(.orphanOpenSSLCopy).map(\.summary))")
        #expect(r.findings(.opensslUnresolved).isEmpty, "\(r.findings(.opensslUnresolved).map(\.summary))")
        let statics = r.findings(.staticOpenSSLCopy).compactMap { $0.evidence["path"]?.stringValue }
        #expect(statics.contains { $0.contains("cryptography/hazmat/bindings/_rust.") }, "\(statics)")
        return copies
    }

    /// onedir: the bootloader's LD_LIBRARY_PATH=<bundle>/_internal makes _ssl map _internal/libcrypto.so.3.
    @Test func pyinstallerOnedirMatchesTheRunningProcess() throws {
        let root = try Fixtures.freezers() + "/pyinstaller-onedir"
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        let copies = try Self.expectSharedVerdict(r, freezer: .pyinstallerOnedir)
        #expect(r.report?.targets.first?.environment["LD_LIBRARY_PATH"] == root + "/_internal")
        #expect(Self.strings(copies, "path").contains("_internal/libcrypto.so.3"), "\(copies)")
        #expect(!Self.strings(copies, "path").contains { $0.hasPrefix("/") }, "no host libcrypto: \(copies)")
        let text = try Sentinel.run(["scan", root])
        #expect(text.stdout.contains("  bundle: PyInstaller onedir, launcher app (sets LD_LIBRARY_PATH=\(root)/_internal)"), "\(text.stdout)")

        let service = try Self.serve([root + "/app"])
        defer { Self.stop(service) }
        let live = try Sentinel.run(["inspect", "--pid", "\(service.pid)", "--format", "json"])
        let mapped = Self.libcryptoCopies(live, .processSplitLibcrypto)
        #expect(Self.strings(mapped, "device_inode") == Self.strings(copies, "device_inode"), "scan \(copies)\nmaps \(mapped)")
        // --env replaces what the launcher sets: the host's libcrypto is back, as without the bootloader.
        let bare = try Sentinel.run(["scan", root, "--format", "json", "--env", "LD_LIBRARY_PATH="])
        #expect(Self.strings(Self.libcryptoCopies(bare, .splitLibcrypto), "path").contains { $0.hasPrefix("/") })
        #expect(bare.report?.targets.first?.bundle?["overridden_by_env"] == .array([.string("LD_LIBRARY_PATH")]))
    }

    /// onefile: `scan FILE` reads the archive in memory before the program ever ran; the child the
    /// bootloader starts maps the same two files from its /tmp/_MEI… folder.
    @Test func pyinstallerOnefileScannedBeforeItRuns() throws {
        let exe = try Fixtures.freezers() + "/pyinstaller-onefile/app"
        // As nobody with nowhere to write: nothing is extracted, not even to a temporary folder.
        let empty = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let r = try Sentinel.shell(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                    "env", "TMPDIR=\(empty)/none", Sentinel.binary, "scan", exe, "--format", "json"])
        let copies = try Self.expectSharedVerdict(r, freezer: .pyinstallerOnefile)
        let paths = Self.strings(copies, "path")
        #expect(paths.contains("app!/libcrypto.so.3"), "\(paths)")
        #expect(paths.contains { $0.hasPrefix("app!/psycopg2_binary.libs/libcrypto-") }, "\(paths)")
        #expect(r.report?.targets.first?.environment["LD_LIBRARY_PATH"] == exe + "!")
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty)
        // Inside its folder, the same verdict.
        let folder = try Sentinel.run(["scan", URL(fileURLWithPath: exe).deletingLastPathComponent().path, "--format", "json"])
        #expect(Self.strings(Self.libcryptoCopies(folder, .splitLibcrypto), "path") == paths)

        let service = try Self.serve([exe])
        var extracted = ""
        defer { Self.stop(service, leftover: extracted.hasPrefix("/tmp/_MEI") ? extracted : nil) }
        // The parent maps no OpenSSL; its child runs the app from the extracted folder.
        let parent = try Sentinel.run(["inspect", "--pid", "\(service.pid)", "--format", "json"])
        #expect(Self.libcryptoCopies(parent, .processSplitLibcrypto).isEmpty)
        let child = try #require(Self.children(of: service.pid).first)
        let live = try Sentinel.run(["inspect", "--pid", "\(child)", "--format", "json", "--with-bundle"])
        let mapped = Self.strings(Self.libcryptoCopies(live, .processSplitLibcrypto), "path")
        let parts = try #require(mapped.first).split(separator: "/")
        extracted = "/" + parts[...(try #require(parts.firstIndex { $0.hasPrefix("_MEI") }))].joined(separator: "/")
        #expect(Set(mapped.map { "app!" + $0.dropFirst(extracted.count) }) == paths, "scan \(paths)\nmaps \(mapped)")
        // --with-bundle scans the extracted tree the child maps, not the executable's folder.
        let bundle = try #require(live.report?.targets.first { $0.kind == "bundle" })
        #expect(bundle.root == extracted, "\(bundle.root ?? "nil")")
        #expect(Self.strings(Self.libcryptoCopies(live, .splitLibcrypto), "device_inode")
                == Self.strings(Self.libcryptoCopies(live, .processSplitLibcrypto), "device_inode"))
        // post --pid on the parent: it maps no libcrypto, so the child's two are POSTed, each by its path.
        let post = try Sentinel.run(["post", "--pid", "\(service.pid)", "--format", "json"])
        let targets = post.report?.targets ?? []
        #expect(targets.first?.warnings.first == "pid \(service.pid) maps no libcrypto; the process(es) it started that do were POSTed instead: pid \(child)",
                "\(targets.map(\.warnings))")
        let posted = Set(targets.compactMap { $0.post?["library"]?["path"]?.stringValue })
        #expect(posted == mapped, "posted \(posted)\nmapped \(mapped)")
    }

    /// A plain venv: _ssl sits in the interpreter's lib-dynload outside the tree, and counts.
    /// Members that do not inflate to what the table of contents declares are one line each, naming
    /// the member; the rest of the archive is still audited (the split is still found).
    @Test func onefileMembersThatDoNotInflateAreOneLineEach() throws {
        let exe = try Fixtures.freezers() + "/pyinstaller-onefile/app"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: exe)))
        func be32(_ at: Int) -> Int { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        func setBE32(_ at: Int, _ value: Int) { for k in 0..<4 { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (24 - 8 * k)) } }
        // The cookie closes the pydata section: its last copy of the magic, as PyInstaller's reader finds it.
        let magic: [UInt8] = [0x4d, 0x45, 0x49, 0x0c, 0x0b, 0x0a, 0x0b, 0x0e]
        let cookieAt = try #require((0...(bytes.count - CArchive.cookieSize)).reversed().first { bytes[$0..<($0 + 8)].elementsEqual(magic) })
        let cookie = try CArchive.cookie(bytes[cookieAt..<(cookieAt + CArchive.cookieSize)], available: UInt64(cookieAt + CArchive.cookieSize))
        let start = cookieAt + CArchive.cookieSize - Int(cookie.archiveLength)
        // Each TOC record: its length, then the member's offset, stored length and inflated length (big-endian).
        var records: [String: Int] = [:]
        var at = start + Int(cookie.tocOffset)
        while at < start + Int(cookie.tocOffset + cookie.tocLength) {
            records[String(decoding: bytes[(at + 18)..<(at + be32(at))].prefix { $0 != 0 }, as: UTF8.self)] = at
            at += be32(at)
        }
        let ssl = try #require(records["libssl.so.3"]), stdcxx = try #require(records["libstdc++.so.6"]),
            lzma = try #require(records["liblzma.so.5"])
        // libssl's Adler-32 (its stream's last four bytes) no longer matches what inflates.
        let sslEnd = start + be32(ssl + 4) + be32(ssl + 8)
        for k in (sslEnd - 4)..<sslEnd { bytes[k] ^= 0xff }
        // libstdc++ declared 4096 bytes shorter than it inflates, liblzma 4096 bytes longer.
        let stdcxxDeclared = be32(stdcxx + 12) - 4096, lzmaLength = be32(lzma + 12)
        setBE32(stdcxx + 12, stdcxxDeclared)
        setBE32(lzma + 12, lzmaLength + 4096)
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let damaged = dir + "/app"
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        let r = try Sentinel.run(["scan", damaged, "--format", "json"])
        let warnings = Set(r.report?.targets.first?.warnings ?? [])
        #expect(warnings.isSuperset(of: ["app!/libssl.so.3: zlib: invalid or truncated stream, or wrong checksum",
                                         "app!/libstdc++.so.6: zlib stream longer than its declared \(stdcxxDeclared) bytes",
                                         "app!/liblzma.so.5: zlib stream gives \(lzmaLength) bytes, \(lzmaLength + 4096) declared"]),
                "\(warnings)")
        let paths = Self.strings(Self.libcryptoCopies(r, .splitLibcrypto), "path")
        #expect(paths.contains("app!/libcrypto.so.3") && paths.contains { $0.hasPrefix("app!/psycopg2_binary.libs/libcrypto-") }, "\(paths)")
    }

    @Test func venvFollowsTheInterpreterOutOfTheTree() throws {
        let root = try Fixtures.freezers() + "/venv"
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        let copies = try Self.expectSharedVerdict(r, freezer: .venv)
        let bundle = try #require(r.report?.targets.first?.bundle)
        #expect(bundle["outside"] == .array([.string("/usr/lib/python3.11/lib-dynload")]), "\(bundle)")
        let system = try #require(copies.first { $0["in_bundle"] == .bool(false) })
        let consumers = system["consumers"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(consumers.contains { $0.hasPrefix("/usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so needs libcrypto.so.3") },
                "\(consumers)")

        let service = try Self.serve([root + "/bin/python3", root + "/app.py"])
        defer { Self.stop(service) }
        let live = try Sentinel.run(["inspect", "--pid", "\(service.pid)", "--format", "json"])
        let mapped = Self.libcryptoCopies(live, .processSplitLibcrypto)
        #expect(Self.strings(mapped, "device_inode") == Self.strings(copies, "device_inode"), "scan \(copies)\nmaps \(mapped)")
    }

    /// Nuitka standalone: the program finds the copied libraries through RPATH $ORIGIN; no launcher variable.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: Fixtures.root + "/freezers/nuitka/app.dist/app"),
                   "Nuitka standalone is built only with NUITKA=1 (scripts/fixtures/freezer-bundles.sh: 27 min on CI's 2 cores)"))
    func nuitkaStandaloneMatchesTheRunningProcess() throws {
        let root = try Fixtures.freezers() + "/nuitka/app.dist"
        let r = try Sentinel.run(["scan", root, "--format", "json"])
        let copies = try Self.expectSharedVerdict(r, freezer: .nuitkaStandalone)
        let paths = Self.strings(copies, "path")
        #expect(paths.contains("libcrypto.so.3") && paths.contains { $0.hasPrefix("libcrypto-") }, "\(paths)")

        let service = try Self.serve([root + "/app"])
        defer { Self.stop(service) }
        let live = try Sentinel.run(["inspect", "--pid", "\(service.pid)", "--format", "json"])
        let mapped = Self.libcryptoCopies(live, .processSplitLibcrypto)
        #expect(Self.strings(mapped, "device_inode") == Self.strings(copies, "device_inode"), "scan \(copies)\nmaps \(mapped)")
    }
}
