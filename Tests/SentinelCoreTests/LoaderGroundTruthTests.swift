import Foundation
import Testing
import SentinelCore
import SentinelSystem

/// A fixture file: "elf:" (scripts/fixtures/elf-trees.sh) or "extra:" (LoaderFixtures.extraScript),
/// optionally "@folder" for the process's cwd (relative to the same tree).
struct FixtureSpec: CustomTestStringConvertible, Sendable {
    let spec: String
    init(_ spec: String) { self.spec = spec }
    var testDescription: String { spec }

    var root: String {
        get throws { spec.hasPrefix("extra:") ? try LoaderFixtures.extra() : try LoaderFixtures.elf() }
    }
    var relative: String { String(spec.split(separator: ":", maxSplits: 1)[1].split(separator: "@")[0]) }
    var path: String { get throws { try root + "/" + relative } }
    var cwd: String? {
        get throws {
            let parts = spec.split(separator: "@")
            return parts.count > 1 ? try root + "/" + parts[1] : nil
        }
    }
}

/// Our simulation against the real glibc loader, run on our own gcc-built fixtures: the trace mode
/// (`LD_TRACE_LOADED_OBJECTS=1`, through the kernel or ld.so), a dlopen driver, and LD_DEBUG=libs.
@Suite("loader resolver vs the real glibc loader")
struct LoaderGroundTruthTests {
    static let executables = ["elf:rpath-inherit/app", "elf:hashed/app", "elf:canonical/app", "extra:gb/app", "extra:tr/app"]
        .map(FixtureSpec.init)
    static let modules = [
        "elf:hwcaps/lib/user.so", "elf:origin/opt/bin/user.so", "elf:origin/opt/bin/slash.so@origin",
        "elf:nodeflib/lib/withflag.so", "elf:nodeflib/lib/without.so",
        "elf:hashed/lib/_ssl.cpython-311-x86_64-linux-gnu.so", "elf:hashed/lib/pkg/_binding.abi3.so",
        "elf:canonical/lib/_ssl.cpython-311-x86_64-linux-gnu.so", "elf:canonical/lib/pkg/_binding.abi3.so",
        "elf:problems/lib/_ssl.cpython-311-x86_64-linux-gnu.so", "elf:problems/lib/_gone.cpython-39-x86_64-linux-gnu.so",
        "elf:duplicate/lib/_user.so", "elf:duplicate/orphan/libssl.so.3",
        "extra:legacy/lib/user.so", "extra:skip/machine.so",
    ].map(FixtureSpec.init)

    static func absolute(_ path: String, cwd: String?) -> String {
        path.hasPrefix("/") ? path : (cwd ?? "/") + "/" + path
    }

    /// Same objects in the same order with the same first names; the same names not found.
    static func expectSame(_ ours: ProcessLoad, main: LoadedFile?, _ truth: GroundTruth.Trace, cwd: String?,
                           sourceLocation: SourceLocation = #_sourceLocation) {
        let pairs = ours.loadedPairs(excludingMain: main)
        #expect(pairs.map(\.path) == truth.loaded.map { absolute($0.path, cwd: cwd) }, sourceLocation: sourceLocation)
        #expect(pairs.map(\.name) == truth.loaded.map(\.name), sourceLocation: sourceLocation)
        #expect(ours.missingNames.sorted() == truth.notFound.sorted(), sourceLocation: sourceLocation)
    }

    /// For every missing edge, what LD_DEBUG shows glibc trying is, in order, part of our tried list
    /// (glibc leaves out folders it already found missing; we list every candidate).
    static func expectTriedCovers(_ ours: ProcessLoad, debug: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let blocks = GroundTruth.tried(in: debug)
        for edge in ours.edges {
            guard let tried = edge.result.tried else { continue }
            let plain = tried.map { $0.components(separatedBy: " (").first ?? $0 }
            let theirs = blocks.filter { $0.name == edge.name }
            #expect(!theirs.isEmpty, "no LD_DEBUG block for \(edge.name)", sourceLocation: sourceLocation)
            #expect(theirs.contains { isSubsequence($0.files, of: plain) },
                    "\(edge.name): glibc tried \(theirs.map(\.files)), we list \(plain)", sourceLocation: sourceLocation)
        }
    }

    @Test("executables: same objects, order and not-found as the kernel-started loader", arguments: executables)
    func executable(_ spec: FixtureSpec) throws {
        let path = try spec.path
        let fs = TestFileSystem()
        let main = try fs.load(path)
        let ours = LoaderResolver(host: HostLoaderFacts.current(), environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: main, dlopen: [])
        Self.expectSame(ours, main: main, try GroundTruth.trace(path, executable: true), cwd: nil)
        let debug = try Shell.run([path], environment: ["LD_TRACE_LOADED_OBJECTS": "1", "LD_DEBUG": "libs"])
        Self.expectTriedCovers(ours, debug: debug.stderr)
    }

    @Test("modules loaded as ld.so's main object: same objects, order and not-found", arguments: modules)
    func moduleAsMain(_ spec: FixtureSpec) throws {
        let path = try spec.path, cwd = try spec.cwd
        let fs = TestFileSystem()
        let main = try fs.load(path)
        let ours = LoaderResolver(host: HostLoaderFacts.current(), environment: TargetEnvironment(), fileSystem: fs,
                                  cwd: cwd ?? "/")
            .loadProcess(main: main, dlopen: [])
        Self.expectSame(ours, main: main, try GroundTruth.trace(path, executable: false, cwd: cwd), cwd: cwd)
        let debug = try Shell.run([GroundTruth.rtld, path], environment: ["LD_TRACE_LOADED_OBJECTS": "1", "LD_DEBUG": "libs"],
                                  cwd: cwd)
        Self.expectTriedCovers(ours, debug: debug.stderr)
    }

    @Test("modules dlopened by a driver program: same link map, or the same first missing name", arguments: modules)
    func moduleViaDlopen(_ spec: FixtureSpec) throws {
        let path = try spec.path, cwd = try spec.cwd
        let fs = TestFileSystem()
        let driver = try fs.load(try LoaderFixtures.extra() + "/driver")
        let resolver = LoaderResolver(host: HostLoaderFacts.current(), environment: TargetEnvironment(), fileSystem: fs,
                                      cwd: cwd ?? "/")
        let ours = resolver.loadProcess(main: driver, dlopen: [try fs.load(path)])
        let driverOnly = resolver.loadProcess(main: driver, dlopen: [])
        let truth = try GroundTruth.dlopen([path], cwd: cwd)
        let opened = ours.edges.dropFirst(driverOnly.edges.count)
        if let firstMissing = opened.first(where: { $0.result.tried != nil }) {
            // A real dlopen stops at the first missing dependency and unloads what it mapped.
            #expect(truth.errors.count == 1)
            #expect(truth.errors.first?.hasPrefix(firstMissing.name + ":") == true, "\(truth.errors)")
            #expect(truth.loaded == driverOnly.objects.dropFirst().map(\.file.path))
        } else {
            #expect(truth.errors.isEmpty)
            #expect(ours.objects.dropFirst().map(\.file.path) == truth.loaded.map { Self.absolute($0, cwd: cwd) })
        }
    }

    @Test("LD_LIBRARY_PATH (absolute, empty and relative elements) is honoured; ignored under secure execution")
    func libraryPath() throws {
        let elf = try LoaderFixtures.elf()
        let binding = "\(elf)/hashed/lib/pkg/_binding.abi3.so"
        for (value, cwd) in [("\(elf)/canonical/lib", "/"), (":lib", "\(elf)/canonical")] {
            let fs = TestFileSystem()
            let main = try fs.load(binding)
            let env = TargetEnvironment(["LD_LIBRARY_PATH": value])
            let ours = LoaderResolver(host: HostLoaderFacts.current(), environment: env, fileSystem: fs, cwd: cwd)
                .loadProcess(main: main, dlopen: [])
            Self.expectSame(ours, main: main, try GroundTruth.trace(binding, executable: false, environment: env.values, cwd: cwd),
                            cwd: cwd)
            let crypto = ours.edge("_binding.abi3.so", "libcrypto.so.3")
            #expect(crypto?.result.via == .ldLibraryPath)
            #expect(crypto?.result.foundPath == "\(elf)/canonical/lib/libcrypto.so.3")

            let secure = LoaderResolver(host: HostLoaderFacts.current(),
                                        environment: TargetEnvironment(env.values, secureExecution: true), fileSystem: fs, cwd: cwd)
                .loadProcess(main: main, dlopen: [])
            #expect(secure.edge("_binding.abi3.so", "libcrypto.so.3")?.result.via == .ldCache)
        }
    }

    @Test("LD_PRELOAD of a libcrypto loads first; later requests for its SONAME reuse it (system libssl included)")
    func preload() throws {
        let elf = try LoaderFixtures.elf()
        let vendor = "\(elf)/duplicate/vendor/libcrypto.so.3"
        let binding = "\(elf)/hashed/lib/pkg/_binding.abi3.so"
        let env = TargetEnvironment(["LD_PRELOAD": vendor])
        let fs = TestFileSystem()
        let main = try fs.load(binding)
        let ours = LoaderResolver(host: HostLoaderFacts.current(), environment: env, fileSystem: fs)
            .loadProcess(main: main, dlopen: [])
        Self.expectSame(ours, main: main, try GroundTruth.trace(binding, executable: false, environment: env.values), cwd: nil)
        #expect(ours.objects.dropFirst().first?.file.path == vendor)
        #expect(ours.edges.first?.result.via == .preload)
        let reuses = ours.edges.filter { $0.name == "libcrypto.so.3" }
        #expect(reuses.count == 2 && reuses.allSatisfy { $0.result.via == .alreadyLoaded && $0.result.foundPath == vendor })
        #expect(reuses.map(\.consumer).contains("/lib/x86_64-linux-gnu/libssl.so.3"))
    }

    @Test("a module loaded on behalf of the main program inherits its RPATH (canonical: binding finds lib/libcrypto.so.3)")
    func inheritedFromMain() throws {
        let elf = try LoaderFixtures.elf()
        let app = "\(elf)/canonical/app", binding = "\(elf)/canonical/lib/pkg/_binding.abi3.so"
        let fs = TestFileSystem()
        let main = try fs.load(app)
        // LD_PRELOAD's l_loader is the main program, as dlopen's is: the real loader can trace it.
        let env = TargetEnvironment(["LD_PRELOAD": binding])
        let ours = LoaderResolver(host: HostLoaderFacts.current(), environment: env, fileSystem: fs)
            .loadProcess(main: main, dlopen: [])
        Self.expectSame(ours, main: main, try GroundTruth.trace(app, executable: true, environment: env.values), cwd: nil)
        let crypto = ours.edge("_binding.abi3.so", "libcrypto.so.3")
        #expect(crypto?.result.via == .rpath && crypto?.result.owner == app)
        #expect(crypto?.result.foundPath == "\(elf)/canonical/lib/libcrypto.so.3")

        let viaDlopen = LoaderResolver(host: HostLoaderFacts.current(), environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: main, dlopen: [try fs.load(binding)])
        #expect(viaDlopen.edge("_binding.abi3.so", "libcrypto.so.3")?.result == crypto?.result)
        #expect(viaDlopen.chain(to: "\(elf)/canonical/lib/libcrypto.so.3").map(\.consumer) == [binding])
    }

    @Test("hashed tree: _ssl and the binding end up in two differently named libcrypto files")
    func differentlyNamedCopies() throws {
        let elf = try LoaderFixtures.elf()
        let ssl = "\(elf)/hashed/lib/_ssl.cpython-311-x86_64-linux-gnu.so", binding = "\(elf)/hashed/lib/pkg/_binding.abi3.so"
        let fs = TestFileSystem()
        let ours = LoaderResolver(host: HostLoaderFacts.current(), environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: try fs.load(try LoaderFixtures.extra() + "/driver"), dlopen: [try fs.load(ssl), try fs.load(binding)])
        let truth = try GroundTruth.dlopen([ssl, binding])
        #expect(truth.errors.isEmpty)
        #expect(ours.objects.dropFirst().map(\.file.path) == truth.loaded)
        let cryptos = ours.objects.filter { $0.file.object.soname?.hasPrefix("libcrypto") == true }.map(\.file.path)
        #expect(cryptos == ["\(elf)/hashed/lib/libcrypto-1a2b3c4d.so.3", "/lib/x86_64-linux-gnu/libcrypto.so.3"])
        #expect(ours.chain(to: "/lib/x86_64-linux-gnu/libcrypto.so.3").map(\.consumer) == [binding])
    }

    @Test("edge sources: rpath (with owner), runpath, ld.so.cache, default path, path, already loaded; missing lists every candidate")
    func edgeSources() throws {
        let elf = try LoaderFixtures.elf()
        let host = HostLoaderFacts.current()
        let fs = TestFileSystem()
        func load(_ relative: String, host: LoaderHost = host, cwd: String = "/") throws -> ProcessLoad {
            LoaderResolver(host: host, environment: TargetEnvironment(), fileSystem: fs, cwd: cwd)
                .loadProcess(main: try fs.load("\(elf)/\(relative)"), dlopen: [])
        }
        let app = "\(elf)/rpath-inherit/app"
        let inherit = try load("rpath-inherit/app")
        #expect(inherit.edge("app", "libmid.so")?.result.via == .rpath)
        #expect(inherit.edge("app", "libmid.so")?.result.owner == app)
        #expect(inherit.edge("libmid2.so", "libleaf2.so")?.result.via == .rpath)
        #expect(inherit.edge("libmid2.so", "libleaf2.so")?.result.owner == app)
        #expect(inherit.chain(to: "\(elf)/rpath-inherit/r/libleaf2.so").map(\.name) == ["libmid2.so", "libleaf2.so"])
        let capabilities = host.hwcapsSubdirs.map { "glibc-hwcaps/\($0)/" } + host.legacyHwcapsSubdirs.map { $0 + "/" } + [""]
        let folders = ["\(elf)/rpath-inherit/r/m/"] + host.defaultDirs.map { $0 + "/" }
        #expect(inherit.edge("libmid.so", "libleaf.so")?.result.tried
                == folders.flatMap { folder in capabilities.map { folder + $0 + "libleaf.so" } })
        #expect(inherit.edge("libboth.so", "libleaf3.so")?.result.tried?.contains { $0.contains("/x/") } == false)

        let hw = try load("hwcaps/lib/user.so")
        #expect(hw.edge("user.so", "libhw.so.1")?.result.via == .runpath)
        #expect(hw.edge("user.so", "libhw.so.1")?.result.owner == "\(elf)/hwcaps/lib/user.so")

        #expect(try load("hashed/lib/pkg/_binding.abi3.so").edge("_binding.abi3.so", "libcrypto.so.3")?.result.via == .ldCache)
        var noCache = host
        noCache.cache = nil
        noCache.defaultDirs = ["\(elf)/canonical/lib"]
        let defaults = try load("hashed/lib/pkg/_binding.abi3.so", host: noCache)
        #expect(defaults.edge("_binding.abi3.so", "libcrypto.so.3")?.result.via == .defaultPath)
        #expect(defaults.edge("_binding.abi3.so", "libcrypto.so.3")?.result.foundPath == "\(elf)/canonical/lib/libcrypto.so.3")

        let slash = try load("origin/opt/bin/slash.so", cwd: "\(elf)/origin")
        #expect(slash.edge("slash.so", "./up/libup.so")?.result.via == .path)
        #expect(slash.edge("slash.so", "./up/libup.so")?.result.foundPath == "\(elf)/origin/./up/libup.so")

        let canonical = try load("canonical/lib/_ssl.cpython-311-x86_64-linux-gnu.so")
        #expect(canonical.edge("libssl.so.3", "libcrypto.so.3")?.result.via == .alreadyLoaded)
        #expect(canonical.edge("libssl.so.3", "libcrypto.so.3")?.result.foundPath == "\(elf)/canonical/lib/libcrypto.so.3")
    }

    @Test("known deviation: a corrupt candidate is skipped here, while glibc stops the load on it")
    func corruptCandidate() throws {
        let extra = try LoaderFixtures.extra()
        let module = "\(extra)/skip/corrupt.so"
        let run = try Shell.run([GroundTruth.rtld, module], environment: ["LD_TRACE_LOADED_OBJECTS": "1"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("\(extra)/skip/cut/libcut.so"))
        let fs = TestFileSystem()
        let ours = LoaderResolver(host: HostLoaderFacts.current(), environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: try fs.load(module), dlopen: [])
        let edge = try #require(ours.edge("corrupt.so", "libcut.so"))
        #expect(edge.result.foundPath == "\(extra)/skip/good/libcut.so")
        #expect(edge.skipped.count == 1 && edge.skipped[0].hasPrefix("\(extra)/skip/cut/libcut.so ("))

        let machine = try #require(LoaderResolver(host: HostLoaderFacts.current(), environment: TargetEnvironment(), fileSystem: fs)
            .loadProcess(main: try fs.load("\(extra)/skip/machine.so"), dlopen: []).edge("machine.so", "libwm.so"))
        #expect(machine.skipped == ["\(extra)/skip/bad/libwm.so (wrong machine 183, loader is 62)"])
    }
}
