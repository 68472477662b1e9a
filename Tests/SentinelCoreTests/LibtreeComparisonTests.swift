/// Comparison with libtree 3.1.1 (`libtree -p -vvv`), edge by edge, matched by file identity.
/// Where libtree is right we must agree, tag for tag ([rpath]/[rpath of N] = .rpath with the same
/// owner, [runpath], [LD_LIBRARY_PATH], [ld.so.conf] = .ldCache, [default path]). Where it is wrong,
/// the difference is asserted exactly. The real loader's behaviour in each case is checked in
/// LoaderGroundTruthTests. libtree's mistakes, as found on the fixtures:
///
/// 1. No glibc-hwcaps: hwcaps/lib/user.so → libtree takes lib/libhw.so.1; glibc takes
///    lib/glibc-hwcaps/x86-64-v2/libhw.so.1 when the CPU supports x86-64-v2.
/// 2. `$LIB` is "lib" in libtree; Debian's glibc expands it to "lib/x86_64-linux-gnu", so
///    origin/opt/bin/user.so finds libtok.so with glibc and "not found" with libtree.
/// 3. A relative DT_NEEDED with a slash ("./up/libup.so" in origin/opt/bin/slash.so): libtree says
///    "is not absolute"; glibc opens it relative to the process's current directory.
/// 4. RPATH of an object that also has RUNPATH: glibc ignores it entirely, libtree still hands it
///    down to grandchildren ([rpath of 2]); extra gb/app: libgleaf.so found by libtree only.
/// 5. Legacy hwcaps subfolders (tls/, x86_64/ …), still searched by glibc 2.36: libtree skips them;
///    extra legacy/lib/user.so → glibc takes lib/x86_64/liblegacy.so, libtree lib/liblegacy.so.
/// 6. libtree reads the folders of /etc/ld.so.conf ([ld.so.conf]), the loader reads
///    /etc/ld.so.cache: when they disagree (stale cache, or libtree's --ldconf) libtree is wrong.
/// 7. libtree's standard paths are /lib, /lib64, /usr/lib, /usr/lib64; Debian's glibc searches
///    /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib, /usr/lib.
/// 8. libtree resolves every edge on its own: no reuse of an already-loaded SONAME, no LD_PRELOAD.
///    On the fixtures this only shows as ld-linux-x86-64.so.2, which libtree finds through
///    ld.so.conf in /lib/x86_64-linux-gnu while glibc reuses the mapped /lib64 path (same file).
import Foundation
import Testing
import SentinelCore
import SentinelSystem

/// One libtree edge: parent path, then the child path and tag, or a name libtree could not place.
private struct LibtreeEdge {
    enum Child { case found(path: String, tag: String, owner: String?), notFound(String), notAbsolute(String) }
    var parent: String
    var child: Child
}

private func libtree(_ path: String, arguments: [String] = [], environment: [String: String] = [:]) throws
    -> (edges: [LibtreeEdge], standardPaths: [String]) {
    var env = ["PATH": "/usr/bin:/bin"]
    env.merge(environment) { $1 }
    let run = try Shell.run(["/usr/bin/libtree", "-p", "-vvv"] + arguments + [path], environment: env)
    var edges: [LibtreeEdge] = []
    var stack: [String] = []
    var standardPaths: [String] = []
    var inStandard = false
    for raw in run.stdout.split(separator: "\n") {
        if raw.contains("┊") {
            let detail = raw.split(separator: "┊", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
            if detail.hasPrefix("5. Standard paths") { inStandard = true; standardPaths = [] }
            else if detail.first?.isNumber == true { inStandard = false }
            else if inStandard { standardPaths.append(detail) }
            continue
        }
        var rest = Substring(raw)
        var depth = 0
        while true {
            if rest.hasPrefix("│   ") || rest.hasPrefix("    ") { depth += 1; rest = rest.dropFirst(4) }
            else if rest.hasPrefix("├── ") || rest.hasPrefix("└── ") { depth += 1; rest = rest.dropFirst(4); break }
            else { break }
        }
        let text = rest.trimmingCharacters(in: .whitespaces)
        if depth == 0 {
            if !text.hasPrefix("Error") { stack = [text] }
            continue
        }
        guard depth <= stack.count else { continue }
        stack.removeLast(stack.count - depth)
        let parent = stack[depth - 1]
        if text.hasSuffix(" not found") {
            edges.append(LibtreeEdge(parent: parent, child: .notFound(String(text.dropLast(" not found".count)))))
            stack.append("?")
        } else if text.hasSuffix(" is not absolute") {
            edges.append(LibtreeEdge(parent: parent, child: .notAbsolute(String(text.dropLast(" is not absolute".count)))))
            stack.append("?")
        } else if let open = text.range(of: " [", options: .backwards) {
            let childPath = String(text[..<open.lowerBound])
            let tag = String(text[open.upperBound...].dropLast())
            var owner: String?
            if tag == "rpath" { owner = parent }
            else if tag.hasPrefix("rpath of "), let n = Int(tag.dropFirst("rpath of ".count)), n >= 1, n <= stack.count {
                owner = stack[n - 1]
            }
            edges.append(LibtreeEdge(parent: parent, child: .found(path: childPath, tag: tag, owner: owner)))
            stack.append(childPath)
        }
    }
    return (edges, standardPaths)
}

private func tag(for via: SearchSource) -> String {
    switch via {
    case .rpath: return "rpath"
    case .runpath: return "runpath"
    case .ldLibraryPath: return "LD_LIBRARY_PATH"
    case .ldCache: return "ld.so.conf"
    case .defaultPath: return "default path"
    case .path: return "direct"
    case .preload: return "LD_PRELOAD"
    case .alreadyLoaded: return "already loaded"
    }
}

/// Every edge on which libtree and our resolver differ, as readable lines (fixture root stripped).
/// Edges below an object only one side loaded are consequences, not separate differences.
private func disagreements(root: String, ours: ProcessLoad, libtree edges: [LibtreeEdge], fs: TestFileSystem) -> [String] {
    func short(_ path: String) -> String { path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path }
    func id(_ path: String) -> FileIdentity? { fs.identity(path) }
    let ourParents = Set(ours.edges.compactMap { id($0.consumer) })
    let theirParents = Set(edges.compactMap { id($0.parent) })
    var lines: [String] = []
    for edge in edges {
        guard let parent = id(edge.parent), ourParents.contains(parent) else { continue }
        let candidates = ours.edges.filter { id($0.consumer) == parent }
        switch edge.child {
        case .found(let path, let libtreeTag, let owner):
            let child = id(path)
            guard let match = candidates.first(where: { $0.result.foundPath.flatMap(id) == child }) else {
                lines.append("libtree: \(short(edge.parent)) -> \(short(path)) [\(libtreeTag)]")
                continue
            }
            guard case .found(_, let via, let ourOwner) = match.result, via != .alreadyLoaded else { continue }
            let expected = libtreeTag.hasPrefix("rpath") ? "rpath" : libtreeTag
            if tag(for: via) != expected || (via == .rpath && ourOwner.flatMap(id) != owner.flatMap(id)) {
                lines.append("tag: \(short(edge.parent)) -> \(short(path)) libtree [\(libtreeTag)] ours \(via.rawValue)")
            }
        case .notFound(let name):
            if !candidates.contains(where: { $0.name == name && $0.result.tried != nil }) {
                lines.append("libtree: \(short(edge.parent)) -> \(name) not found")
            }
        case .notAbsolute(let name):
            lines.append("libtree: \(short(edge.parent)) -> \(name) is not absolute")
        }
    }
    for edge in ours.edges {
        guard let consumer = id(edge.consumer), theirParents.contains(consumer) else { continue }
        let theirs = edges.filter { id($0.parent) == consumer }
        switch edge.result {
        case .found(let file, let via, _):
            let child = id(file.path)
            let seen = theirs.contains { if case .found(let p, _, _) = $0.child { return id(p) == child } else { return false } }
            if !seen { lines.append("ours: \(short(edge.consumer)) -> \(short(file.path)) (\(via.rawValue))") }
        case .missing:
            let seen = theirs.contains { if case .notFound(let n) = $0.child { return n == edge.name } else { return false } }
            if !seen { lines.append("ours: \(short(edge.consumer)) -> \(edge.name) not found") }
        }
    }
    return lines
}

@Suite("comparison with libtree")
struct LibtreeComparisonTests {
    /// Fixture → the differences expected on this host (empty: libtree is right and we agree).
    static func expected(_ spec: String, host: LoaderHost) -> [String] {
        switch spec {
        case "elf:hwcaps/lib/user.so":
            guard host.hwcapsSubdirs.contains("x86-64-v2") else { return [] }
            return ["libtree: hwcaps/lib/user.so -> hwcaps/lib/libhw.so.1 [runpath]",
                    "ours: hwcaps/lib/user.so -> hwcaps/lib/glibc-hwcaps/x86-64-v2/libhw.so.1 (runpath)"]
        case "elf:origin/opt/bin/user.so":
            return ["libtree: origin/opt/bin/user.so -> libtok.so not found",
                    "ours: origin/opt/bin/user.so -> origin/opt/bin/../lib/x86_64-linux-gnu/libtok.so (runpath)"]
        case "elf:origin/opt/bin/slash.so@origin":
            return ["libtree: origin/opt/bin/slash.so -> ./up/libup.so is not absolute",
                    "ours: origin/opt/bin/slash.so -> origin/./up/libup.so (path)"]
        case "extra:gb/app":
            return ["libtree: gb/r/../m/libgmid.so -> gb/r/../x/libgleaf.so [rpath of 2]",
                    "ours: gb/r/../m/libgmid.so -> libgleaf.so not found"]
        case "extra:legacy/lib/user.so":
            guard host.legacyHwcapsSubdirs.contains("x86_64") else { return [] }
            return ["libtree: legacy/lib/user.so -> legacy/lib/liblegacy.so [runpath]",
                    "ours: legacy/lib/user.so -> legacy/lib/x86_64/liblegacy.so (runpath)"]
        default:
            return []
        }
    }

    static let fixtures = (LoaderGroundTruthTests.executables + LoaderGroundTruthTests.modules).map(\.spec)

    @Test("edge by edge: agreement where libtree is right, the documented differences where it is not",
          arguments: fixtures)
    func compare(_ spec: String) throws {
        let fixture = FixtureSpec(spec)
        let root = try fixture.root, path = try fixture.path
        let host = HostLoaderFacts.current()
        let fs = TestFileSystem()
        let ours = LoaderResolver(host: host, environment: TargetEnvironment(), fileSystem: fs, cwd: try fixture.cwd ?? "/")
            .loadProcess(main: try fs.load(path), dlopen: [])
        let tree = try libtree(path)
        #expect(!tree.edges.isEmpty)
        #expect(disagreements(root: root, ours: ours, libtree: tree.edges, fs: fs) == Self.expected(spec, host: host))
    }

    /// libtree's own tests/ folders (scripts/fixtures/loader-rules.sh rebuilds them), with the
    /// LD_LIBRARY_PATH their Makefiles set: folder/file, the variable (relative to the folder), and
    /// the differences expected. (CLITests' ResolveTests holds the same cases against the real loader.)
    static let libtreeCases: [(file: String, libraryPath: String?, expected: [String])] = [
        ("origin/exe_rpath", nil, []), ("origin/exe_runpath", nil, []),
        ("rpath-of-parents-parent/exe", nil, []), ("rpath-of-parents-parent/liba.so", nil, []),
        ("rpath-of-parents-parent/liba.so", "rpath-of-parents-parent", []),
        ("direct-and-absolute-rpath/exe_a", nil, []), ("direct-and-absolute-rpath/exe_b", nil, []),
        ("rpath-over-env-over-runpath/exe_rpath", nil, []), ("rpath-over-env-over-runpath/exe_runpath", nil, []),
        ("rpath-over-env-over-runpath/exe_rpath", "rpath-over-env-over-runpath/dir", []),
        ("rpath-over-env-over-runpath/exe_runpath", "rpath-over-env-over-runpath/dir", []),
        ("32-bits/exe32", nil, []), ("32-bits/exe64", nil, []),
        ("origin-of-symlink/exe", nil, []), ("origin-of-symlink/exe", "origin-of-symlink/a", []),
        ("nodeflib/exe_a", nil, []), ("nodeflib/exe_b", nil, []),
        ("rpath-order/exe", nil, []), ("rpath-order/liba.so", nil, []),
    ]

    @Test("libtree's own test cases: edge by edge, the documented differences where libtree is wrong",
          arguments: libtreeCases.indices)
    func libtreeOwnCases(_ index: Int) throws {
        let c = Self.libtreeCases[index]
        let root = try LoaderFixtures.rules()
        let path = root + "/" + c.file
        let env = TargetEnvironment(c.libraryPath.map { ["LD_LIBRARY_PATH": root + "/" + $0] } ?? [:])
        let fs = TestFileSystem()
        let ours = LoaderResolver(host: HostLoaderFacts.current(), environment: env, fileSystem: fs)
            .loadProcess(main: try fs.load(path), dlopen: [])
        let tree = try libtree(path, environment: env.values)
        #expect(!tree.edges.isEmpty)
        #expect(disagreements(root: root, ours: ours, libtree: tree.edges, fs: fs) == c.expected, "\(c.file) \(c.libraryPath ?? "")")
    }

    @Test("LD_LIBRARY_PATH: same edges and tags")
    func libraryPath() throws {
        let elf = try LoaderFixtures.elf()
        let binding = "\(elf)/hashed/lib/pkg/_binding.abi3.so"
        let env = TargetEnvironment(["LD_LIBRARY_PATH": "\(elf)/canonical/lib"])
        let fs = TestFileSystem()
        let ours = LoaderResolver(host: HostLoaderFacts.current(), environment: env, fileSystem: fs)
            .loadProcess(main: try fs.load(binding), dlopen: [])
        let tree = try libtree(binding, environment: env.values)
        #expect(tree.edges.contains { if case .found(_, "LD_LIBRARY_PATH", _) = $0.child { return true } else { return false } })
        #expect(disagreements(root: elf, ours: ours, libtree: tree.edges, fs: fs) == [])
    }

    @Test("libtree follows ld.so.conf, the loader follows ld.so.cache (here: libtree's --ldconf)")
    func ldconfVersusCache() throws {
        let elf = try LoaderFixtures.elf()
        let binding = "\(elf)/hashed/lib/pkg/_binding.abi3.so"
        // libtree tags with the config file's name: call it ld.so.conf.
        let dir = LoaderFixtures.cacheRoot + "/libtree-ldconf-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let conf = dir + "/ld.so.conf"
        try "\(elf)/canonical/lib\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let fs = TestFileSystem()
        let ours = LoaderResolver(host: HostLoaderFacts.current(), environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: try fs.load(binding), dlopen: [])
        let tree = try libtree(binding, arguments: ["--ldconf", conf])
        #expect(disagreements(root: elf, ours: ours, libtree: tree.edges, fs: fs) == [
            "libtree: hashed/lib/pkg/_binding.abi3.so -> canonical/lib/libcrypto.so.3 [ld.so.conf]",
            "libtree: hashed/lib/pkg/_binding.abi3.so -> canonical/lib/libssl.so.3 [ld.so.conf]",
            // libc is only in the multiarch folder, which is not among libtree's standard paths.
            "libtree: hashed/lib/pkg/_binding.abi3.so -> libc.so.6 not found",
            "ours: hashed/lib/pkg/_binding.abi3.so -> /lib/x86_64-linux-gnu/libcrypto.so.3 (ld.so.cache)",
            "ours: hashed/lib/pkg/_binding.abi3.so -> /lib/x86_64-linux-gnu/libssl.so.3 (ld.so.cache)",
            "ours: hashed/lib/pkg/_binding.abi3.so -> /lib/x86_64-linux-gnu/libc.so.6 (ld.so.cache)",
        ])
        // What the real loader does (the binding is dlopened by a driver with no RPATH).
        let truth = try GroundTruth.dlopen([binding])
        #expect(truth.loaded.contains("/lib/x86_64-linux-gnu/libcrypto.so.3"))
    }

    @Test("libtree's standard paths are not Debian's system search path")
    func standardPaths() throws {
        let elf = try LoaderFixtures.elf()
        let tree = try libtree("\(elf)/problems/lib/_gone.cpython-39-x86_64-linux-gnu.so")
        #expect(tree.standardPaths == ["/lib", "/lib64", "/usr/lib", "/usr/lib64"])
        #expect(HostLoaderFacts.current().defaultDirs == ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"])
    }
}
