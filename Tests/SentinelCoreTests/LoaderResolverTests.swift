import Testing
@testable import SentinelCore

/// An in-memory file system: paths to ELF models, with shared inodes for hard links.
private final class FakeFileSystem: LoaderFileSystem {
    private var files: [String: (inode: UInt64, object: ELFObject)] = [:]
    private var broken: [String: String] = [:]
    private var real: [String: String] = [:]
    private var nextInode: UInt64 = 100
    private(set) var probed: [String] = []

    func add(_ path: String, _ object: ELFObject) {
        files[path] = (nextInode, object)
        nextInode += 1
    }
    func link(_ path: String, to existing: String) { files[path] = files[existing] }
    func corrupt(_ path: String, _ reason: String) { broken[path] = reason }
    func symlink(_ path: String, realPath: String) { real[path] = realPath }

    /// Lexical normalisation ("." and ".." components): the fake has no symlinked folders.
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    func probe(_ path: String) -> LoaderProbe {
        probed.append(path)
        let key = Self.normalize(path)
        if let reason = broken[key] { return .unusable(reason: reason) }
        guard let entry = files[key] else { return .missing }
        return .object(LoadedFile(path: path, identity: FileIdentity(device: 1, inode: entry.inode), object: entry.object))
    }
    func realPath(_ path: String) -> String? {
        let key = Self.normalize(path)
        return real[key] ?? (files[key] != nil ? key : nil)
    }

    func file(_ path: String) -> LoadedFile {
        guard case .object(let file) = probe(path) else { fatalError("no \(path)") }
        return file
    }
}

private func so(_ soname: String? = nil, needed: [String] = [], rpath: String? = nil, runpath: String? = nil,
                nodeflib: Bool = false, elfClass: ELFObject.ELFClass = .elf64, machine: UInt16 = 62) -> ELFObject {
    ELFObject(elfClass: elfClass, machine: machine, type: .sharedObject, soname: soname, needed: needed, rpath: rpath,
              runpath: runpath, noDefaultLib: nodeflib)
}

private func exe(needed: [String], rpath: String? = nil, runpath: String? = nil) -> ELFObject {
    ELFObject(elfClass: .elf64, machine: 62, type: .executable, interpreter: "/lib64/ld-linux-x86-64.so.2",
              needed: needed, rpath: rpath, runpath: runpath)
}

private let plainHost = LoaderHost(libToken: "lib/x86_64-linux-gnu", platform: "x86_64", hwcapsSubdirs: [],
                                   defaultDirs: ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"],
                                   cache: nil, rtldPath: "/lib64/ld-linux-x86-64.so.2")

/// A small system: libc, ld.so and a system libcrypto in the multiarch folder.
private func system() -> FakeFileSystem {
    let fs = FakeFileSystem()
    fs.add("/lib/x86_64-linux-gnu/libc.so.6", so("libc.so.6", needed: ["ld-linux-x86-64.so.2"]))
    fs.add("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", so("ld-linux-x86-64.so.2"))
    fs.link("/lib64/ld-linux-x86-64.so.2", to: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    fs.add("/lib/x86_64-linux-gnu/libcrypto.so.3", so("libcrypto.so.3", needed: ["libc.so.6"]))
    return fs
}

@Suite("loader resolver (in-memory)")
struct LoaderResolverTests {
    @Test("search order: inherited RPATH, LD_LIBRARY_PATH, RUNPATH, defaults; tried lists in order")
    func searchOrder() {
        let fs = system()
        fs.add("/app/bin/app", exe(needed: ["libmid.so", "libc.so.6"], rpath: "$ORIGIN/../r"))
        fs.add("/app/bin/app2", exe(needed: ["libmid.so"], rpath: "/app/r"))
        fs.add("/app/r/libmid.so", so("libmid.so", needed: ["libleaf.so", "libenv.so", "libown.so"], runpath: "/app/own"))
        fs.add("/app/r/libleaf.so", so("libleaf.so"))
        fs.add("/env/libenv.so", so("libenv.so"))
        fs.add("/app/own/libown.so", so("libown.so"))
        fs.add("/env/libown.so", so("libown.so"))  // LD_LIBRARY_PATH comes before RUNPATH
        let resolver = LoaderResolver(host: plainHost, environment: TargetEnvironment(["LD_LIBRARY_PATH": "/env"]),
                                      fileSystem: fs)
        let load = resolver.loadProcess(main: fs.file("/app/bin/app"), dlopen: [])
        let mid = load.edge("app", "libmid.so")
        #expect(mid?.result.via == .rpath && mid?.result.owner == "/app/bin/app")
        #expect(mid?.result.foundPath == "/app/bin/../r/libmid.so")
        // libmid has RUNPATH: the app's RPATH is not searched for its dependencies.
        let leaf = load.edge("libmid.so", "libleaf.so")
        #expect(leaf?.result.tried == ["/env/libleaf.so", "/app/own/libleaf.so", "/lib/x86_64-linux-gnu/libleaf.so",
                                       "/usr/lib/x86_64-linux-gnu/libleaf.so", "/lib/libleaf.so", "/usr/lib/libleaf.so"])
        #expect(load.edge("libmid.so", "libenv.so")?.result.via == .ldLibraryPath)
        #expect(load.edge("libmid.so", "libown.so")?.result.foundPath == "/env/libown.so")
        #expect(load.edge("app", "libc.so.6")?.result.via == .defaultPath)
        #expect(load.edge("libc.so.6", "ld-linux-x86-64.so.2")?.result.via == .alreadyLoaded)
        #expect(load.edge("libc.so.6", "ld-linux-x86-64.so.2")?.result.foundPath == "/lib64/ld-linux-x86-64.so.2")
        // The dynamic loader is listed where it is first needed.
        #expect(load.objects.map(\.file.path) == ["/app/bin/app", "/app/bin/../r/libmid.so", "/lib/x86_64-linux-gnu/libc.so.6",
                                                  "/env/libenv.so", "/env/libown.so", "/lib64/ld-linux-x86-64.so.2"])

        let secure = LoaderResolver(host: plainHost, environment: TargetEnvironment(["LD_LIBRARY_PATH": "/env"], secureExecution: true),
                                    fileSystem: fs)
        let secured = secure.loadProcess(main: fs.file("/app/bin/app2"), dlopen: [])
        #expect(secured.edge("libmid.so", "libenv.so")?.result.tried?.contains("/env/libenv.so") == false)
        #expect(secured.edge("libmid.so", "libown.so")?.result.via == .runpath)
        // Secure mode: $ORIGIN in the executable's RPATH must stay under a system folder.
        #expect(secure.loadProcess(main: fs.file("/app/bin/app"), dlopen: []).edge("app", "libmid.so")?.result.tried != nil)
    }

    @Test("RPATH is inherited up the l_loader chain, past objects with RUNPATH, never from them")
    func rpathInheritance() {
        let fs = system()
        fs.add("/a/app", exe(needed: ["libx.so", "libboth.so"], rpath: "/a/r"))
        fs.add("/a/r/libx.so", so("libx.so", needed: ["liby.so"], runpath: "/a/m"))
        fs.add("/a/m/liby.so", so("liby.so", needed: ["libz.so"]))
        fs.add("/a/r/libz.so", so("libz.so"))
        fs.add("/a/r/libboth.so", so("libboth.so", needed: ["libbmid.so"], rpath: "/a/x", runpath: "/a/m"))
        fs.add("/a/m/libbmid.so", so("libbmid.so", needed: ["libbleaf.so"]))
        fs.add("/a/x/libbleaf.so", so("libbleaf.so"))
        let load = LoaderResolver(host: plainHost, environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: fs.file("/a/app"), dlopen: [])
        let z = load.edge("liby.so", "libz.so")
        #expect(z?.result.via == .rpath && z?.result.owner == "/a/app")
        #expect(load.edge("libbmid.so", "libbleaf.so")?.result.tried?.first == "/a/r/libbleaf.so")
        #expect(load.chain(to: "/a/r/libz.so").map(\.name) == ["libx.so", "liby.so", "libz.so"])
        #expect(load.chain(to: "/a/app").isEmpty)
    }

    @Test("DST expansion and path lists as fillin_rpath builds them")
    func dstExpansion() {
        let fs = system()
        let rpath = "${ORIGIN}/a::/t//:$ORIGIN/a:$LIB/x:$PLATFORM/y:$ORIGINAL/z:${LIB}:$FOO/w:/last$"
        fs.add("/o/bin/user.so", so(needed: ["libq.so", "$ORIGIN/../dir/libslash.so", "lib$PLATFORM.so"], rpath: rpath))
        fs.add("/o/dir/libslash.so", so("libslash.so"))
        fs.add("/o/bin/libq.so", so("libq.so"))  // reached through the empty element: the cwd
        fs.add("/t/libx86_64.so", so("libx86_64.so"))
        let resolver = LoaderResolver(host: plainHost, environment: TargetEnvironment(), fileSystem: fs, cwd: "/o/bin")
        let load = resolver.loadProcess(main: nil, dlopen: [fs.file("/o/bin/user.so")])
        let q = load.edge("user.so", "libq.so")
        #expect(q?.result.tried == nil)
        #expect(q?.result.foundPath == "/o/bin/libq.so")
        let platform = load.edge("user.so", "lib$PLATFORM.so")
        #expect(platform?.result.foundPath == "/t/libx86_64.so")
        #expect(load.edge("user.so", "$ORIGIN/../dir/libslash.so")?.result.via == .path)
        #expect(load.edge("user.so", "$ORIGIN/../dir/libslash.so")?.result.foundPath == "/o/bin/../dir/libslash.so")

        fs.add("/o/bin/missing.so", so(needed: ["libnone.so"], rpath: rpath))
        let missing = resolver.loadProcess(main: nil, dlopen: [fs.file("/o/bin/missing.so")])
        let dirs = ["/o/bin/a/", "", "/t/", "lib/x86_64-linux-gnu/x/", "x86_64/y/", "$ORIGINAL/z/", "lib/x86_64-linux-gnu/",
                    "$FOO/w/", "/last$/"] + plainHost.defaultDirs.map { $0 + "/" }
        #expect(missing.edge("missing.so", "libnone.so")?.result.tried
                == dirs.map { $0.hasPrefix("/") ? $0 + "libnone.so" : "/o/bin/" + $0 + "libnone.so" })
    }

    @Test("already loaded: by SONAME, by name, by file identity; differently named copies both load")
    func reuse() {
        let fs = system()
        fs.add("/b/main", exe(needed: ["libcrypto-1a2b3c4d.so.3"], rpath: "/b/lib"))
        fs.add("/b/lib/libcrypto-1a2b3c4d.so.3", so("libcrypto-1a2b3c4d.so.3", needed: ["libc.so.6"]))
        fs.add("/b/lib/_binding.so", so(needed: ["libcrypto.so.3"]))
        fs.add("/b/lib/_same.so", so(needed: ["libcrypto-1a2b3c4d.so.3"]))
        fs.link("/b/lib/hardlink.so.3", to: "/b/lib/libcrypto-1a2b3c4d.so.3")
        let resolver = LoaderResolver(host: plainHost, environment: TargetEnvironment(), fileSystem: fs)
        let main = fs.file("/b/main")
        let split = resolver.loadProcess(main: main, dlopen: [fs.file("/b/lib/_binding.so")])
        #expect(split.objects.filter { $0.file.object.soname?.hasPrefix("libcrypto") == true }.map(\.file.path)
                == ["/b/lib/libcrypto-1a2b3c4d.so.3", "/lib/x86_64-linux-gnu/libcrypto.so.3"])
        #expect(split.edge("_binding.so", "libcrypto.so.3")?.result.via == .defaultPath)
        #expect(split.objects.last?.loader == "/b/lib/_binding.so")
        #expect(split.objects.first { $0.file.path == "/b/lib/_binding.so" }?.loader == "/b/main")

        let same = resolver.loadProcess(main: main, dlopen: [fs.file("/b/lib/_same.so")])
        #expect(same.edge("_same.so", "libcrypto-1a2b3c4d.so.3")?.result.via == .alreadyLoaded)
        #expect(same.chain(to: "/b/lib/libcrypto-1a2b3c4d.so.3").map(\.consumer) == ["/b/main"])

        let hard = resolver.loadProcess(main: main, dlopen: [fs.file("/b/lib/hardlink.so.3")])
        #expect(hard.objects.count == split.objects.count - 2)
        #expect(hard.objects.first { $0.file.path == "/b/lib/libcrypto-1a2b3c4d.so.3" }?.requestedAs
                == ["libcrypto-1a2b3c4d.so.3", "/b/lib/hardlink.so.3"])
    }

    @Test("LD_PRELOAD loads first, and a later request for its SONAME reuses it")
    func preload() {
        let fs = system()
        fs.add("/v/libcrypto.so.3", so("libcrypto.so.3", needed: ["libc.so.6"]))
        fs.add("/b/_binding.so", so(needed: ["libcrypto.so.3"]))
        let env = TargetEnvironment(["LD_PRELOAD": "/v/libcrypto.so.3 libmissing.so"])
        let load = LoaderResolver(host: plainHost, environment: env, fileSystem: fs)
            .loadProcess(main: fs.file("/b/_binding.so"), dlopen: [])
        #expect(load.objects.map(\.file.path).prefix(2) == ["/b/_binding.so", "/v/libcrypto.so.3"])
        #expect(load.edges.first?.result.via == .preload)
        #expect(load.edges[1].name == "libmissing.so" && load.edges[1].result.tried != nil)
        let crypto = load.edge("_binding.so", "libcrypto.so.3")
        #expect(crypto?.result.via == .alreadyLoaded && crypto?.result.foundPath == "/v/libcrypto.so.3")
        #expect(load.chain(to: "/v/libcrypto.so.3").isEmpty)

        let secure = LoaderResolver(host: plainHost, environment: TargetEnvironment(env.values, secureExecution: true), fileSystem: fs)
            .loadProcess(main: fs.file("/b/_binding.so"), dlopen: [])
        #expect(secure.edge("_binding.so", "libcrypto.so.3")?.result.foundPath == "/lib/x86_64-linux-gnu/libcrypto.so.3")
    }

    @Test("DF_1_NODEFLIB refuses cache answers in system folders and skips the default folders; wrong class, machine and unusable files are skipped")
    func nodeflibAndSkips() throws {
        let fs = system()
        fs.add("/n/withflag.so", so(needed: ["libcrypto.so.3"], nodeflib: true))
        fs.add("/n/skips.so", so(needed: ["libcrypto.so.3"], runpath: "/w32:/warm:/bad"))
        fs.add("/w32/libcrypto.so.3", so("libcrypto.so.3", elfClass: .elf32, machine: 3))
        fs.add("/warm/libcrypto.so.3", so("libcrypto.so.3", machine: 183))
        fs.corrupt("/bad/libcrypto.so.3", "file too short")
        let cacheBytes = LdSoCacheFixture.single(key: "libcrypto.so.3", value: "/lib/x86_64-linux-gnu/libcrypto.so.3")
        var host = plainHost
        host.cache = try LdSoCache(bytes: cacheBytes)
        let resolver = LoaderResolver(host: host, environment: TargetEnvironment(), fileSystem: fs)
        let flagged = resolver.loadProcess(main: nil, dlopen: [fs.file("/n/withflag.so")])
        #expect(flagged.edge("withflag.so", "libcrypto.so.3")?.result.tried
                == ["/lib/x86_64-linux-gnu/libcrypto.so.3 (ld.so.cache entry in a system folder, loader has DF_1_NODEFLIB)"])
        // A cache entry outside the system folders is still taken.
        fs.add("/opt/ssl/libcrypto.so.3", so("libcrypto.so.3"))
        var optHost = plainHost
        optHost.cache = try LdSoCache(bytes: LdSoCacheFixture.single(key: "libcrypto.so.3", value: "/opt/ssl/libcrypto.so.3"))
        let opt = LoaderResolver(host: optHost, environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: nil, dlopen: [fs.file("/n/withflag.so")])
        #expect(opt.edge("withflag.so", "libcrypto.so.3")?.result.foundPath == "/opt/ssl/libcrypto.so.3")
        let skipped = resolver.loadProcess(main: nil, dlopen: [fs.file("/n/skips.so")])
        let edge = try #require(skipped.edge("skips.so", "libcrypto.so.3"))
        #expect(edge.result.via == .ldCache)
        #expect(edge.skipped == ["/w32/libcrypto.so.3 (wrong ELF class elf32, loader is elf64)",
                                 "/warm/libcrypto.so.3 (wrong machine 183, loader is 62)",
                                 "/bad/libcrypto.so.3 (file too short)"])
    }

    @Test("hwcaps subfolders come first in every search folder, legacy ones next")
    func hwcapsCandidates() {
        let fs = system()
        fs.add("/h/user.so", so(needed: ["libhw.so.1"], runpath: "/h"))
        fs.add("/h/libhw.so.1", so("libhw.so.1"))
        fs.add("/h/glibc-hwcaps/x86-64-v2/libhw.so.1", so("libhw.so.1"))
        fs.add("/h/x86_64/libhw.so.1", so("libhw.so.1"))
        var host = plainHost
        host.legacyHwcapsSubdirs = ["tls", "x86_64"]
        host.hwcapsSubdirs = ["x86-64-v3", "x86-64-v2"]
        let v2 = LoaderResolver(host: host, environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: nil, dlopen: [fs.file("/h/user.so")])
        #expect(v2.edge("user.so", "libhw.so.1")?.result.foundPath == "/h/glibc-hwcaps/x86-64-v2/libhw.so.1")
        host.hwcapsSubdirs = []
        let legacy = LoaderResolver(host: host, environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: nil, dlopen: [fs.file("/h/user.so")])
        #expect(legacy.edge("user.so", "libhw.so.1")?.result.foundPath == "/h/x86_64/libhw.so.1")
    }

    @Test("the main program's $ORIGIN is its real path's folder; repeated calls reuse the memo")
    func originAndMemo() {
        let fs = system()
        fs.add("/opt/app/bin/app", exe(needed: ["libown.so"], rpath: "$ORIGIN/../lib"))
        fs.add("/opt/app/lib/libown.so", so("libown.so"))
        fs.link("/usr/local/bin/app", to: "/opt/app/bin/app")
        fs.symlink("/usr/local/bin/app", realPath: "/opt/app/bin/app")
        fs.add("/m/one.so", so(needed: ["libc.so.6"]))
        let resolver = LoaderResolver(host: plainHost, environment: TargetEnvironment(), fileSystem: fs)
        let main = fs.file("/usr/local/bin/app")
        let first = resolver.loadProcess(main: main, dlopen: [fs.file("/m/one.so")])
        #expect(first.edge("app", "libown.so")?.result.foundPath == "/opt/app/bin/../lib/libown.so")
        let probes = fs.probed.count
        let second = resolver.loadProcess(main: main, dlopen: [fs.file("/m/one.so")])
        #expect(fs.probed.count == probes + 1)  // only the test's own fs.file call
        #expect(second.objects == first.objects)
    }

    @Test("resolve's tree: a file's dependencies under the edge that loaded it, each miss with its paths, OpenSSL named")
    func dependencyTree() {
        let fs = system()
        fs.add("/lib/x86_64-linux-gnu/libcrypto.so.3", ELFObject(elfClass: .elf64, machine: 62, type: .sharedObject, soname: "libcrypto.so.3",
            needed: ["libc.so.6"], exports: .libcrypto, embeddedOpenSSL: EmbeddedOpenSSL(versionText: "OpenSSL 3.0.15 3 Sep 2024")))
        fs.add("/app/app", exe(needed: ["libdeep.so", "libcrypto.so.3", "libgone.so"], runpath: "/app/lib"))
        fs.add("/app/lib/libdeep.so", so("libdeep.so", needed: ["libcrypto.so.3", "libgone.so"]))
        let main = fs.file("/app/app")
        let tree = DependencyTree(main: main, load: LoaderResolver(host: plainHost, environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: main, dlopen: []))
        let defaults = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"]
        // libcrypto is loaded by the program's own request (breadth first), not by libdeep's, listed before it.
        #expect(tree.text() == """
            /app/app
            ├── libdeep.so => /app/lib/libdeep.so [runpath of /app/app]
            │   ├── libcrypto.so.3 => /lib/x86_64-linux-gnu/libcrypto.so.3 [already-loaded] (libcrypto, OpenSSL 3.0.15)
            │   └── libgone.so not found
            \(defaults.map { "│           tried \($0)/libgone.so\n" }.joined())├── libcrypto.so.3 => /lib/x86_64-linux-gnu/libcrypto.so.3 [default] (libcrypto, OpenSSL 3.0.15)
            │   └── libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 [default]
            │       └── ld-linux-x86-64.so.2 => /lib64/ld-linux-x86-64.so.2 [already-loaded]
            └── libgone.so not found
                    tried /app/lib/libgone.so
            \(defaults.map { "        tried \($0)/libgone.so\n" }.joined())
            """)
        #expect(tree.missing == ["libgone.so"])
        let json = tree.json()
        let needed = json["root"]?["needed"]?.arrayValue ?? []
        #expect(needed.map { $0["name"]?.stringValue } == ["libdeep.so", "libcrypto.so.3", "libgone.so"])
        #expect(needed[1]["openssl"] == ["role": "libcrypto", "version": "3.0.15"])
        #expect(needed[1]["via"] == "default" && needed[1]["needed"]?.arrayValue?.count == 1)
        #expect(needed[0]["needed"]?.arrayValue?.first?["repeat"] == true)
        #expect(needed[2]["found"] == false && needed[2]["tried"]?.arrayValue?.count == 5)
    }
}

/// A one-entry new-format cache.
enum LdSoCacheFixture {
    static func single(key: String, value: String) -> [UInt8] {
        func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let keyAt = 48 + 24, valueAt = keyAt + key.utf8.count + 1
        var bytes = Array("glibc-ld.so.cache1.1".utf8) + le32(1) + le32(0) + [2, 0, 0, 0] + le32(0) + [UInt8](repeating: 0, count: 12)
        bytes += le32(0x303) + le32(keyAt) + le32(valueAt) + le32(0) + [UInt8](repeating: 0, count: 8)
        bytes += Array(key.utf8) + [0] + Array(value.utf8) + [0]
        return bytes
    }
}
