import Foundation
import SentinelTestSupport
import Testing

/// `crypto-sentinel resolve` on libtree's own loader cases (rebuilt by scripts/fixtures/loader-rules.sh)
/// and on /usr/bin/curl, held against the real loader: `LD_TRACE_LOADED_OBJECTS=1 LD_DEBUG=libs`, so
/// ld.so maps the tree and exits before any code of the file runs, started as nobody, never as root.
/// (libtree's own output is compared edge by edge in SentinelCoreTests' LibtreeComparisonTests.)
@Suite struct ResolveTests {
    static func rules() throws -> String {
        let out = FixtureScripts.root + "/loader-rules"
        try FixtureScripts.build("loader-rules.sh", out: out)
        return out
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var file: String
        var libraryPath: String?
        var testDescription: String { file + (libraryPath.map { " with LD_LIBRARY_PATH=\($0)" } ?? "") }
        init(_ file: String, libraryPath: String? = nil) { self.file = file; self.libraryPath = libraryPath }
        func path() throws -> String { file.hasPrefix("/") ? file : try ResolveTests.rules() + "/" + file }
        func env() throws -> String? { try libraryPath.map { try ResolveTests.rules() + "/" + $0 } }
    }

    static let cases: [Case] = [
        Case("origin/exe_rpath"), Case("origin/exe_runpath"),
        Case("rpath-of-parents-parent/exe"), Case("rpath-of-parents-parent/liba.so"),
        Case("rpath-of-parents-parent/liba.so", libraryPath: "rpath-of-parents-parent"),
        Case("direct-and-absolute-rpath/exe_a"), Case("direct-and-absolute-rpath/exe_b"),
        Case("rpath-over-env-over-runpath/exe_rpath"), Case("rpath-over-env-over-runpath/exe_runpath"),
        Case("rpath-over-env-over-runpath/exe_rpath", libraryPath: "rpath-over-env-over-runpath/dir"),
        Case("rpath-over-env-over-runpath/exe_runpath", libraryPath: "rpath-over-env-over-runpath/dir"),
        Case("origin-of-symlink/exe"), Case("origin-of-symlink/exe", libraryPath: "origin-of-symlink/a"),
        Case("nodeflib/exe_a"), Case("nodeflib/exe_b"),
        Case("rpath-order/exe"), Case("rpath-order/liba.so"),
        Case("32-bits/exe64"),
        Case("/usr/bin/curl"),
    ]

    /// One DT_NEEDED edge of the JSON tree.
    struct Edge {
        var consumer: String, name: String
        var path: String?, via: String?, owner: String?, tried: [String]
        var expanded: Bool
    }

    static func edges(_ node: [String: Any]) -> [Edge] {
        let consumer = node["path"] as? String ?? ""
        return (node["needed"] as? [[String: Any]] ?? []).flatMap { e -> [Edge] in
            let found = e["found"] as? Bool == true
            let edge = Edge(consumer: consumer, name: e["name"] as? String ?? "", path: found ? e["path"] as? String : nil,
                            via: e["via"] as? String, owner: e["rpath_owner"] as? String, tried: e["tried"] as? [String] ?? [],
                            expanded: e["needed"] != nil)
            return [edge] + (edge.expanded ? edges(e) : [])
        }
    }

    /// The real loader's trace, as nobody (ld.so runs a library as its main object, as ldd does): each
    /// object it maps and the names it did not find, and LD_DEBUG's searches, each step with the files tried.
    static func realLoader(_ path: String, libraryPath: String?) throws -> (trace: LoaderOutput.Trace, searches: [LoaderOutput.Search]) {
        let env = ["LD_TRACE_LOADED_OBJECTS=1", "LD_DEBUG=libs"] + (libraryPath.map { ["LD_LIBRARY_PATH=\($0)"] } ?? [])
        let program = path.hasSuffix(".so") ? ["/lib64/ld-linux-x86-64.so.2", path] : [path]
        let r = try Sentinel.shell(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "/usr/bin/env", "-i"] + env + program)
        return (LoaderOutput.trace(r.stdout), LoaderOutput.searches(r.stderr))
    }

    @Test("the same files as the real loader, found by the same rule; every path it tried for a missing name", arguments: cases)
    func sameAsTheLoader(_ c: Case) throws {
        let path = try c.path(), libraryPath = try c.env()
        let r = try Sentinel.run(["resolve", path, "--format", "json"] + (libraryPath.map { ["--env", "LD_LIBRARY_PATH=\($0)"] } ?? []))
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        let ours = Self.edges(doc["root"] as? [String: Any] ?? [:])
        let (truth, searches) = try Self.realLoader(path, libraryPath: libraryPath)
        try #require(!truth.loaded.isEmpty || !truth.notFound.isEmpty, "the loader printed nothing")

        // Each object the loader maps is the file of the edge we expand for it, requested by the same name.
        let rtld = "/lib64/ld-linux-x86-64.so.2"
        let loaded = Set(ours.filter(\.expanded).compactMap { e in e.path.map { "\(e.name) => \($0)" } }.filter { !$0.hasSuffix(rtld) })
        #expect(loaded == Set(truth.loaded.filter { $0.path != rtld }.map { "\($0.name) => \($0.path)" }))
        #expect(ours.filter { $0.path == nil }.map(\.name).sorted() == truth.notFound.sorted())
        #expect(r.status == (truth.notFound.isEmpty ? 0 : 1))
        var missing: [String] = []
        for e in ours where e.path == nil && !missing.contains(e.name) { missing.append(e.name) }
        #expect(doc["missing"] as? [String] == missing)

        // Each search that found its file: the loader's last step names our rule, and ended at our file.
        // LD_DEBUG labels a folder by the list that named it first, and LD_LIBRARY_PATH's are named at
        // start-up: an RPATH or RUNPATH search that ends in one of them prints "(LD_LIBRARY_PATH)".
        let envFolders = libraryPath.map { $0.split(separator: ":").map(String.init) } ?? []
        for e in ours where e.expanded && ["rpath", "runpath", "LD_LIBRARY_PATH", "ld.so.cache", "default"].contains(e.via) {
            let search = searches.first { $0.name == e.name && $0.steps.last?.files.last == e.path }
            let folder = e.path.map { String($0[..<$0.lastIndex(of: "/")!]) }
            let label = search?.steps.last?.source == "LD_LIBRARY_PATH" && envFolders.contains(folder ?? "")
                && (e.via == "rpath" || e.via == "runpath") ? e.via : search?.steps.last?.source
            #expect(label == e.via, "\(e.consumer) needs \(e.name): ours \(e.via ?? "-"), loader \(search.map { "\($0.steps.map(\.source))" } ?? "no search")")
        }
        // Each miss: every file the loader tried for that name is in our list, in its order.
        for e in ours where e.path == nil {
            let plain = e.tried.map { $0.components(separatedBy: " (").first ?? $0 }
            let theirs = searches.filter { $0.name == e.name }.map { $0.steps.flatMap(\.files) }
            #expect(theirs.contains { files in
                var rest = plain[...]
                return files.allSatisfy { f in rest.firstIndex(of: f).map { rest = rest[($0 + 1)...]; return true } ?? false }
            }, "\(e.name): the loader tried \(theirs), we list \(plain)")
        }
    }

    @Test func thirtyTwoBitProgramsSkipTheOtherClass() throws {
        // No 32-bit loader on this host (/lib/ld-linux.so.2): compared with the ELF classes instead.
        let exe = try Self.rules() + "/32-bits/exe32"
        let r = try Sentinel.run(["resolve", exe])
        #expect(r.status == 0)
        #expect(r.stdout == """
            \(exe)
            └── libx.so => \(try Self.rules())/32-bits/lib32/libx.so [rpath of \(exe)]
                    skipped \(try Self.rules())/32-bits/lib64/libx.so (wrong ELF class elf64, loader is elf32)

            """)
    }

    @Test func textIsATreeWithTheRuleOfEachEdgeAndTheOpenSSLOfEachFile() throws {
        let d = try Self.rules() + "/rpath-of-parents-parent"
        let r = try Sentinel.run(["resolve", d + "/liba.so", "--env", "LD_LIBRARY_PATH=\(d)"])
        #expect(r.stdout == """
            environment: LD_LIBRARY_PATH=\(d)
            \(d)/liba.so
            └── libb.so => \(d)/libb.so [LD_LIBRARY_PATH]

            """)
        let missing = try Sentinel.run(["resolve", d + "/liba.so"])
        #expect(missing.status == 1)
        #expect(missing.stdout.hasPrefix("\(d)/liba.so\n└── libb.so not found\n        tried /lib/x86_64-linux-gnu/"), "\(missing.stdout)")
        let curl = try Sentinel.run(["resolve", "/usr/bin/curl"])
        #expect(curl.stdout.contains("── libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 [ld.so.cache] (libssl, OpenSSL 3."))
        #expect(curl.stdout.contains("libcrypto.so.3 => /lib/x86_64-linux-gnu/libcrypto.so.3 [ld.so.cache] (libcrypto, OpenSSL 3."))
    }

    @Test func notAnELFFileIsExitTwo() throws {
        let r = try Sentinel.run(["resolve", "/etc/passwd"])
        #expect(r.status == 2 && r.stdout.isEmpty)
        #expect(r.stderr == "crypto-sentinel: /etc/passwd: not an ELF file\n")
        #expect(try Sentinel.run(["resolve", "/nonexistent"]).stderr == "crypto-sentinel: /nonexistent: no such file\n")
    }
}
