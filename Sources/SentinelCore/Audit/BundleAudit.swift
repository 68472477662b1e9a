/// The bundle linkage audit: every bundle finding code, from an inventory and the
/// loader's view of it under the target's environment. Pure: all I/O goes through `AuditFileSystem`.
public struct BundleAudit {
    public var name: String
    public var inventory: BundleInventory
    public var environment: TargetEnvironment
    public var expectFIPS: Bool
    public var host: LoaderHost
    public var fileSystem: any AuditFileSystem

    public init(name: String, inventory: BundleInventory, environment: TargetEnvironment, expectFIPS: Bool,
                host: LoaderHost, fileSystem: any AuditFileSystem) {
        self.name = name; self.inventory = inventory; self.environment = environment
        self.expectFIPS = expectFIPS; self.host = host; self.fileSystem = fileSystem
    }

    /// One resolved OpenSSL DT_NEEDED edge: who needs what, and where it ends.
    struct Use: Hashable, Sendable {
        var consumer: String
        var name: String
        var via: SearchSource
        var rpathOwner: String?
        var target: LoadedFile
    }

    struct Missing: Hashable, Sendable {
        var consumer: String
        var name: String
        var tried: [String]
        /// The library dlopen()ed on its own in the load that missed it (nil: a main program's closure).
        var root: FileIdentity?
    }

    public func run(linkage precomputed: Linkage? = nil) -> TargetReport {
        let linkage = precomputed ?? resolveLinkage()
        var findings: [Finding] = []
        let fixInputs = FixInputs(inventory: inventory, mainRPathDirs: mainRPathDirs())
        findings += splitFindings(linkage, fixInputs)
        findings += mangledFindings(linkage, fixInputs)
        findings += duplicateFindings()
        findings += orphanFindings(linkage)
        findings += staticCopyFindings()
        findings += foreignFindings(linkage)
        findings += unresolvedFindings(linkage)
        findings += skewFindings(linkage)
        findings += libcryptoEnvironmentFindings(linkage)
        findings += mixedABIFindings()
        let opensslFiles = inventory.elfFiles.filter { $0.file.object.openSSLRole != nil }.count
        return TargetReport(
            name: name, kind: "bundle", root: inventory.root, environment: environment.values,
            stats: ["files": inventory.fileCount, "elf_files": inventory.elfFiles.count,
                    "openssl_files": opensslFiles, "openssl_edges": linkage.uses.count],
            findings: findings, warnings: inventory.warnings)
    }

    // MARK: - Linkage

    /// What the loader simulation found: the only expensive part of an audit, and a pure function of
    /// the inventory, the environment and the files probed, so an adapter may reuse it for an unchanged tree.
    public struct Linkage: Sendable {
        var uses: [Use] = []
        var missing: [Missing] = []
        /// Every file any load reached through a DT_NEEDED edge.
        var reached: Set<FileIdentity> = []
        /// The crypto libraries other than OpenSSL that a load reached, in the tree or outside it.
        var foreign: [FileIdentity: LoadedFile] = [:]
    }

    /// Each shared object of the tree dlopen()ed into a process started from each distinct main program
    /// (a Python extension is loaded that way, and inherits the program's DT_RPATH).
    public func resolveLinkage() -> Linkage { Self.merge([resolveLinkage(part: 0, of: 1)]) }

    /// The main programs, one per distinct loading context (folder, RPATH, RUNPATH, needs).
    func mainPrograms() -> [LoadedFile] {
        var mains: [LoadedFile] = []
        var seenContexts = Set<String>()
        for f in inventory.elfFiles where f.file.object.isMainProgram {
            let o = f.file.object
            let key = [dirOf(f.file.path), o.effectiveRPath ?? "", o.runpath ?? "", o.needed.joined(separator: ",")].joined(separator: "|")
            if seenContexts.insert(key).inserted { mains.append(f.file) }
        }
        return mains
    }

    /// Every `parts`-th root from `part` on, so an adapter can run the parts on separate cores (each
    /// with its own resolver and file system) and `merge` them.
    public func resolveLinkage(part: Int, of parts: Int) -> Linkage {
        let resolver = LoaderResolver(host: host, environment: environment, fileSystem: fileSystem,
                                      cwd: inventory.root)
        var linkage = Linkage()
        // A main program's DT_RPATH is inherited by everything it dlopens, so each distinct one is a
        // context of its own. Programs without one search like no program at all (the rest of their
        // influence, names they already loaded, is left out); their own closures still load once.
        let mains = mainPrograms()
        let rpathMains = mains.filter { $0.object.effectiveRPath != nil }
        let contexts: [LoadedFile?] = rpathMains + (rpathMains.count < mains.count || mains.isEmpty ? [nil] : [])
        let allRoots = inventory.elfFiles.filter { !$0.file.object.isMainProgram && $0.file.object.type == .sharedObject }
        let roots: [BundleFile?] = allRoots.isEmpty
            ? (part == 0 ? [nil] : [])
            : stride(from: part, to: allRoots.count, by: max(parts, 1)).map { allRoots[$0] }
        let ownClosures: [LoadedFile] = part == 0 ? mains.filter { $0.object.effectiveRPath == nil } : []
        var uses = Set<Use>(), missing = Set<Missing>()
        // Most edges (the main program's closure, system libraries) repeat in every root's load:
        // look at each (consumer, name, outcome) once, and at each file's role once.
        // A reuse and a search of the same edge are both kept: the merge prefers the search, and a consumer
        // whose own search was never seen is one `repair` must not trust to a load order.
        struct EdgeKey: Hashable { var consumer: String; var name: String; var target: FileIdentity?; var reused = false; var root: FileIdentity? }
        var seenEdges = Set<EdgeKey>()
        var isOpenSSL: [FileIdentity: Bool] = [:]
        let loads = contexts.flatMap { main in roots.map { (main, $0?.file) } } + ownClosures.map { ($0, nil) }
        for (main, root) in loads {
            let edges = resolver.loadEdges(main: main, dlopen: root.map { [$0] } ?? [])
            // Only OpenSSL edges go through the (consumer, name, outcome) check, the first of each
            // kept: the others only add their target to `reached`, which any repeat leaves as it is,
            // and hashing two strings for each of them was a tenth of the resolution's time.
            for edge in edges {
                switch edge.result {
                case .found(let target, let via, let owner):
                    linkage.reached.insert(target.identity)
                    let openssl = isOpenSSL[target.identity] ?? {
                        let role = target.object.openSSLRole
                        let yes = role == .libcrypto || role == .libssl
                        isOpenSSL[target.identity] = yes
                        if target.object.foreignCrypto != nil { linkage.foreign[target.identity] = target }
                        return yes
                    }()
                    if openssl, seenEdges.insert(EdgeKey(consumer: edge.consumer, name: edge.name, target: target.identity,
                                                         reused: via == .alreadyLoaded)).inserted {
                        uses.insert(Use(consumer: edge.consumer, name: edge.name, via: via, rpathOwner: owner, target: target))
                    }
                case .missing(let tried):
                    if OpenSSLNames.isOpenSSLName(edge.name),
                       seenEdges.insert(EdgeKey(consumer: edge.consumer, name: edge.name, target: nil, root: root?.identity)).inserted {
                        missing.insert(Missing(consumer: edge.consumer, name: edge.name, tried: tried, root: root?.identity))
                    }
                }
            }
        }
        linkage.uses = Array(uses)
        linkage.missing = Array(missing)
        return linkage
    }

    /// Joins partial linkages into the one the findings read, in a stable order.
    public static func merge(_ parts: [Linkage]) -> Linkage {
        var merged = Linkage()
        let uses = Set(parts.flatMap(\.uses))
        merged.reached = parts.reduce(into: Set<FileIdentity>()) { $0.formUnion($1.reached) }
        // A library other files need, dlopen()ed on its own, can miss what its consumers' loads give it
        // (psycopg2-binary 2.8.6's libssl finds its libcrypto only through libpq's RPATH): that miss counts
        // only where no load resolves the same edge. One record per edge, the first in a stable order.
        let resolved = Set(uses.map { [$0.consumer, $0.name] })
        var reported = Set<[String]>()
        merged.missing = parts.flatMap(\.missing)
            .filter { m in
                guard let root = m.root, merged.reached.contains(root) else { return true }
                return !resolved.contains([m.consumer, m.name])
            }
            .sorted { ($0.consumer, $0.name, $0.tried.count, $0.tried.joined(separator: ":")) < ($1.consumer, $1.name, $1.tried.count, $1.tried.joined(separator: ":")) }
            .filter { reported.insert([$0.consumer, $0.name]).inserted }
        merged.foreign = parts.reduce(into: [FileIdentity: LoadedFile]()) { $0.merge($1.foreign) { a, _ in a } }
        // A reuse of an already loaded object says less than the search that first found it.
        let searched = Set(uses.filter { $0.via != .alreadyLoaded }.map { [$0.consumer, $0.name, $0.target.path] })
        merged.uses = uses.filter { $0.via != .alreadyLoaded || !searched.contains([$0.consumer, $0.name, $0.target.path]) }
            .sorted { ($0.consumer, $0.name, $0.via.rawValue) < ($1.consumer, $1.name, $1.via.rawValue) }
        return merged
    }

    // MARK: - Findings

    func splitFindings(_ linkage: Linkage, _ fixInputs: FixInputs) -> [Finding] {
        var out: [Finding] = []
        for role in [OpenSSLRole.libcrypto, .libssl] {
            let uses = linkage.uses.filter { $0.target.object.openSSLRole == role }
            let byFile = Dictionary(grouping: uses, by: \.target.identity)
            guard byFile.count > 1 else { continue }
            let copies = byFile.values
                .map { group in (group[0].target, group) }
                .sorted { display($0.0.path) < display($1.0.path) }
            let list = copies.map { "\(display($0.0.path)) (\(describeVersion($0.0)))" }.joined(separator: " and ")
            let evidence: JSONValue = .object([
                "library": .string(role.rawValue),
                "copies": .array(copies.map { file, group in
                    .object([
                        "path": .string(display(file.path)),
                        "device_inode": .string(file.identity.description),
                        "soname": JSONValue(file.object.soname),
                        "version": JSONValue(file.object.opensslVersion),
                        "in_bundle": .bool(isInTree(file.path)),
                        "consumers": .array(group.map { .string(describe($0)) }),
                    ])
                }),
            ])
            // 1.1 and 3 differ in ABI: no renaming joins them, only consumers rebuilt for one line do.
            let majors = Set(copies.compactMap { releaseLine($0.0.object)?.split(separator: ".").first })
            let fix = majors.count > 1
                ? ["the copies come from different OpenSSL major releases (\(majors.sorted().joined(separator: " and "))), which are not ABI-compatible: renaming cannot join them",
                   "upgrade or rebuild the modules that reach the older copy (its consumers above) against the newer OpenSSL, e.g. a wheel release built with OpenSSL 3",
                   "crypto-sentinel scan \(shellQuote(inventory.root))   # every consumer must then end in one file"]
                : canonicalFix(linkage, role: role, inputs: fixInputs)
            out.append(Finding(
                code: .splitLibcrypto, target: name, subject: Finding.subject(role.rawValue, copies: copies.map(\.0.identity)),
                summary: "OpenSSL consumers resolve to \(copies.count) different \(role.rawValue) files: \(list)",
                evidence: evidence, fix: fix))
        }
        return out
    }

    func mangledFindings(_ linkage: Linkage, _ fixInputs: FixInputs) -> [Finding] {
        var names: [String: (needers: Set<String>, files: Set<String>, versionNeeds: Set<String>)] = [:]
        for f in inventory.elfFiles {
            let o = f.file.object
            for n in o.needed where OpenSSLNames.isMangled(n) { names[n, default: ([], [], [])].needers.insert(f.relativePath) }
            for n in o.versionNeedFiles where OpenSSLNames.isMangled(n) {
                names[n, default: ([], [], [])].versionNeeds.insert(f.relativePath)
            }
            let base = lastComponent(f.relativePath)
            if let soname = o.soname, OpenSSLNames.isMangled(soname) { names[soname, default: ([], [], [])].files.insert(f.relativePath) }
            else if OpenSSLNames.isMangled(base), o.openSSLRole != nil { names[base, default: ([], [], [])].files.insert(f.relativePath) }
        }
        return names.keys.sorted().map { mangled in
            let entry = names[mangled]!
            let canonical = OpenSSLNames.canonical(forMangled: mangled)!
            // A .gnu.version_r entry that still names the hashed file after DT_NEEDED was rewritten
            // means a half-done patchelf run: the loader will reject the symbol versions.
            let stale = entry.versionNeeds.subtracting(entry.needers).sorted()
            var parts = ["\(mangled) stands for \(canonical)"]
            if !entry.needers.isEmpty { parts.append("needed by \(entry.needers.count) file(s)") }
            if !entry.files.isEmpty { parts.append("shipped as \(entry.files.sorted().joined(separator: ", "))") }
            if !stale.isEmpty { parts.append(".gnu.version_r still names it in \(stale.joined(separator: ", "))") }
            return Finding(
                code: .mangledOpenSSLName, target: name, subject: mangled, summary: parts.joined(separator: "; "),
                evidence: ["name": .string(mangled), "canonical": .string(canonical),
                           "needed_by": JSONValue(entry.needers.sorted()), "files": JSONValue(entry.files.sorted()),
                           "stale_version_needs": JSONValue(stale)],
                fix: canonicalFix(linkage, role: OpenSSLNames.isLibcryptoName(mangled) ? .libcrypto : .libssl,
                                  only: mangled, inputs: fixInputs))
        }
    }

    /// The copies of each OpenSSL library, when there is more than one.
    func duplicateCopies() -> [(role: OpenSSLRole, copies: [BundleFile])] {
        [OpenSSLRole.libcrypto, .libssl].compactMap { role in
            let copies = inventory.elfFiles.filter { $0.file.object.openSSLRole == role }
            return copies.count > 1 ? (role, copies) : nil
        }
    }

    /// The byte comparisons `duplicateFindings` will ask the file system for (copies of one size only),
    /// so an adapter can start them early, beside the loader simulation.
    public func duplicateComparisons() -> [(first: String, others: [String])] {
        duplicateCopies().compactMap { _, copies in
            copies.allSatisfy { $0.size == copies[0].size }
                ? (copies[0].file.path, copies.dropFirst().map(\.file.path)) : nil
        }
    }

    func duplicateFindings() -> [Finding] {
        var out: [Finding] = []
        for (role, copies) in duplicateCopies() {
            let first = copies[0]
            let identical = copies.allSatisfy { $0.size == first.size }
                && fileSystem.allContentsEqual(first.file.path, copies.dropFirst().map(\.file.path))
            let paths = copies.map(\.relativePath)
            out.append(Finding(
                code: .duplicateOpenSSLCopy, target: name, subject: Finding.subject(role.rawValue, copies: copies.map(\.file.identity)),
                summary: "\(copies.count) \(role.rawValue) files with distinct inodes: \(paths.joined(separator: ", "))"
                    + (identical ? " (byte-identical)" : " (contents differ)"),
                evidence: ["library": .string(role.rawValue), "byte_identical": .bool(identical),
                           "copies": .array(copies.map {
                               ["path": .string($0.relativePath), "device_inode": .string($0.file.identity.description),
                                "size": .int(Int64($0.size)), "version": JSONValue($0.file.object.embeddedOpenSSL?.version),
                                "aliases": JSONValue($0.aliases)]
                           })],
                fix: ["keep one copy and make every other path a symlink to it, e.g. ln -sf \(lastComponent(paths[0])) <other path>",
                      "or remove the copies nothing needs (see orphan-openssl-copy)"]))
        }
        return out
    }

    func orphanFindings(_ linkage: Linkage) -> [Finding] {
        inventory.elfFiles
            .filter { ($0.file.object.openSSLRole == .libcrypto || $0.file.object.openSSLRole == .libssl)
                && !linkage.reached.contains($0.file.identity) }
            .map { f in
                Finding(code: .orphanOpenSSLCopy, target: name, subject: f.relativePath,
                        summary: "\(f.relativePath) (\(describeVersion(f.file))) is an OpenSSL library no ELF file in the tree needs",
                        evidence: ["path": .string(f.relativePath), "device_inode": .string(f.file.identity.description),
                                   "soname": JSONValue(f.file.object.soname), "version": JSONValue(f.file.object.embeddedOpenSSL?.version)],
                        fix: ["remove \(f.relativePath) unless the product loads it by path at run time"])
            }
    }

    func staticCopyFindings() -> [Finding] {
        inventory.elfFiles.filter { $0.file.object.openSSLRole == .staticCopy }.map { f in
            let o = f.file.object, e = o.embeddedOpenSSL
            let exporting = o.isProgram && !o.exports.isEmpty
            return Finding(
                code: .staticOpenSSLCopy, target: name, subject: f.relativePath,
                summary: o.isProgram
                    ? "\(f.relativePath) is a program with a statically linked \(e?.versionText ?? "OpenSSL")"
                        + (exporting ? " that exports its API: the modules it loads (Node addons) resolve OpenSSL symbols from it" : "")
                    : "\(f.relativePath) embeds a statically linked \(e?.versionText ?? "OpenSSL")",
                evidence: ["path": .string(f.relativePath), "version_text": JSONValue(e?.versionText),
                           "version": JSONValue(e?.version), "openssldir": JSONValue(e?.openSSLDir),
                           "modulesdir": JSONValue(e?.modulesDir), "program": .bool(o.isProgram),
                           "exports_openssl_api": .bool(exporting)],
                fix: [o.isProgram
                      ? "use a build of this program linked against the shared libcrypto (node: ./configure --shared-openssl) so one OpenSSL serves it and what it loads"
                      : "build this extension against the bundle's shared libcrypto (e.g. cryptography from source with OPENSSL_DIR, or the distribution's package) so one OpenSSL serves the process",
                      "if it must stay, configure and test its FIPS state separately: it does not read the shared libcrypto's providers"])
        }
    }

    /// A second TLS stack beside OpenSSL: each library of another family the tree holds or its loads reach,
    /// when the tree's consumers also use an OpenSSL (or another such family).
    func foreignFindings(_ linkage: Linkage) -> [Finding] {
        var objects = linkage.foreign
        for f in inventory.elfFiles where f.file.object.foreignCrypto != nil { objects[f.file.identity] = f.file }
        guard !objects.isEmpty else { return [] }
        let openSSL = !linkage.uses.isEmpty || inventory.elfFiles.contains {
            [.libcrypto, .libssl, .staticCopy].contains($0.file.object.openSSLRole)
        }
        guard let stacks = ForeignCrypto.stacks(objects.values.compactMap(\.object.foreignCrypto), besideOpenSSL: openSSL) else { return [] }
        return objects.values.sorted { display($0.path) < display($1.path) }.map { file in
            let foreign = file.object.foreignCrypto!
            let (phrase, others) = foreign.secondStack(among: stacks, linkage: foreignLinkage(file.object), expectFIPS: expectFIPS)
            return Finding(
                code: .foreignCryptoLibrary, target: name, subject: display(file.path),
                summary: "\(display(file.path)) carries \(phrase)",
                evidence: ["path": .string(display(file.path)), "device_inode": .string(file.identity.description),
                           "library": .string(foreign.library.rawValue), "version": JSONValue(foreign.version),
                           "linkage": JSONValue(foreignLinkage(file.object)), "in_bundle": .bool(isInTree(file.path)),
                           "other_stacks": JSONValue(others), "fips_expected": .bool(expectFIPS)],
                fix: ["build the module that brings \(foreign.library.rawValue) in against the bundle's OpenSSL if one TLS stack (and one FIPS boundary) is required",
                      "otherwise configure and test it on its own: it reads neither OPENSSL_CONF nor the FIPS provider"],
                severity: expectFIPS ? .warning : nil)
        }
    }

    func unresolvedFindings(_ linkage: Linkage) -> [Finding] {
        Dictionary(grouping: linkage.missing, by: \.name).sorted { $0.key < $1.key }.map { name, misses in
            let consumers = Array(Set(misses.map { display($0.consumer) })).sorted()
            return Finding(
                code: .opensslUnresolved, target: self.name, subject: name,
                summary: "\(name) needed by \(consumers.joined(separator: ", ")) resolves to nothing under this environment",
                evidence: ["name": .string(name), "consumers": JSONValue(consumers),
                           "tried": JSONValue(misses[0].tried)],
                fix: OpenSSLNames.canonical(forMangled: name).map {
                    ["patchelf --replace-needed \(name) \($0) " + consumers.joined(separator: " ")]
                } ?? ["ship \(name) in the bundle next to its consumer, or set a RUNPATH ($ORIGIN/…) that reaches it"])
        }
    }

    /// libssl and libcrypto from different release lines, and consumers whose symbol versions the
    /// libcrypto they resolve to does not define (the loader then refuses to load them).
    func skewFindings(_ linkage: Linkage) -> [Finding] {
        var out: [Finding] = []
        var seen = Set<[String]>()
        let objects = Dictionary(inventory.elfFiles.map { ($0.file.path, $0.file.object) }, uniquingKeysWith: { a, _ in a })
            .merging(linkage.uses.map { ($0.target.path, $0.target.object) }, uniquingKeysWith: { a, _ in a })
        for use in linkage.uses where use.target.object.openSSLRole == .libcrypto {
            guard let consumer = objects[use.consumer] else { continue }
            let needed = consumer.neededVersions[use.name] ?? []
            let defined = Set(use.target.object.definedVersions)
            let missing = defined.isEmpty ? [] : needed.filter { !defined.contains($0) }
            if !missing.isEmpty, seen.insert([use.consumer, use.target.path]).inserted {
                out.append(Finding(
                    code: .opensslVersionSkew, target: name, subject: "\(display(use.consumer)) -> \(display(use.target.path))",
                    summary: "\(display(use.consumer)) needs \(missing.joined(separator: ", ")) from \(use.name), which \(display(use.target.path)) (\(describeVersion(use.target))) does not define: the loader will refuse it",
                    evidence: ["consumer": .string(display(use.consumer)), "libcrypto": .string(display(use.target.path)),
                               "missing_versions": JSONValue(missing), "libcrypto_versions": JSONValue(use.target.object.definedVersions)],
                    fix: ["make \(display(use.consumer)) resolve \(use.name) to the libcrypto it was built against (ship it in the bundle and reach it by RUNPATH $ORIGIN)"]))
                continue
            }
            guard consumer.openSSLRole == .libssl,
                  let a = releaseLine(consumer), let b = releaseLine(use.target.object), a != b,
                  seen.insert([use.consumer, use.target.path]).inserted else { continue }
            out.append(Finding(
                code: .opensslVersionSkew, target: name, subject: "\(display(use.consumer)) -> \(display(use.target.path))",
                summary: "\(display(use.consumer)) is OpenSSL \(a) but resolves \(use.name) to \(display(use.target.path)), OpenSSL \(b)",
                evidence: ["libssl": .string(display(use.consumer)), "libssl_version": .string(consumer.embeddedOpenSSL?.version ?? a),
                           "libcrypto": .string(display(use.target.path)),
                           "libcrypto_version": .string(use.target.object.embeddedOpenSSL?.version ?? b)],
                fix: ["ship libssl and libcrypto from the same OpenSSL build and make libssl's RUNPATH ($ORIGIN) reach its own libcrypto"]))
        }
        return out
    }

    /// "3.5": from the version text, else from the newest OPENSSL_x.y version node.
    func releaseLine(_ o: ELFObject) -> String? { o.embeddedOpenSSL?.majorMinor ?? o.opensslVersionNodeLine }

    /// Trust store, modules folder, FIPS module and provider skew, per libcrypto the bundle uses or ships.
    func libcryptoEnvironmentFindings(_ linkage: Linkage) -> [Finding] {
        var libs: [LoadedFile] = []
        var seen = Set<FileIdentity>()
        for f in linkage.uses.map(\.target) + inventory.elfFiles.map(\.file)
        where f.object.openSSLRole == .libcrypto && seen.insert(f.identity).inserted { libs.append(f) }
        var out: [Finding] = []
        let envModules = environment["OPENSSL_MODULES"]
        for lib in libs {
            let e = lib.object.embeddedOpenSSL
            let where_ = display(lib.path)
            // Trust store: any one source that exists is enough.
            let sources: [(String, String?)] = [
                ("SSL_CERT_FILE", environment["SSL_CERT_FILE"]), ("SSL_CERT_DIR", environment["SSL_CERT_DIR"]),
                ("compiled-in cert file", e?.certFile ?? e?.openSSLDir.map { $0 + "/cert.pem" }),
                ("compiled-in cert dir", e?.certDir ?? e?.openSSLDir.map { $0 + "/certs" }),
            ]
            if e?.openSSLDir != nil, !sources.contains(where: { $0.1.map(fileSystem.exists) ?? false }) {
                out.append(Finding(
                    code: .trustStoreMissing, target: name, subject: where_,
                    summary: "\(where_) finds no CA certificates: none of \(sources.compactMap(\.1).joined(separator: ", ")) exists",
                    evidence: ["libcrypto": .string(where_), "openssldir": JSONValue(e?.openSSLDir),
                               "checked": .object(Dictionary(sources.compactMap { k, v in v.map { (k, JSONValue.string($0)) } },
                                                             uniquingKeysWith: { a, _ in a }))],
                    fix: ["set SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt (or SSL_CERT_DIR=/etc/ssl/certs) in the service's environment",
                          "or ship a CA bundle and point SSL_CERT_FILE at it"]))
            }
            if expectFIPS, let line = releaseLine(lib.object), line.hasPrefix("1.") {
                // Before 3.0 there are no providers: no OPENSSL_MODULES or fips.so can make this one FIPS.
                out.append(Finding(
                    code: .fipsModuleMissing, target: name, subject: where_,
                    summary: "FIPS expected, but \(where_) is OpenSSL \(e?.version ?? line), which has no FIPS provider",
                    evidence: ["libcrypto": .string(where_), "version": .string(e?.version ?? line)],
                    fix: ["make its consumers use an OpenSSL 3 libcrypto with the FIPS provider (upgrade the modules that ship this copy)"]))
                continue
            }
            let modulesDir = envModules ?? e?.modulesDir
            if envModules == nil, let compiled = e?.modulesDir, !fileSystem.exists(compiled) {
                out.append(Finding(
                    code: .modulesDirMissing, target: name, subject: where_,
                    summary: "\(where_) looks for providers in \(compiled), which does not exist, and OPENSSL_MODULES is unset",
                    evidence: ["libcrypto": .string(where_), "modulesdir": .string(compiled), "openssldir": JSONValue(e?.openSSLDir)],
                    fix: ["set OPENSSL_MODULES to a folder holding the providers this libcrypto needs (legacy.so, fips.so) in the service's environment",
                          "or, if no provider module is wanted, make sure nothing asks for one (cryptography: CRYPTOGRAPHY_OPENSSL_NO_LEGACY=1)"]))
            }
            if let dir = modulesDir {
                let fips = dir + "/fips.so"
                if expectFIPS, !fileSystem.exists(fips) {
                    out.append(Finding(
                        code: .fipsModuleMissing, target: name, subject: where_,
                        summary: "FIPS expected, but \(where_) will look for \(fips), which does not exist",
                        evidence: ["libcrypto": .string(where_), "looked_in": .string(dir),
                                   "from": .string(envModules != nil ? "OPENSSL_MODULES" : "compiled-in MODULESDIR")],
                        fix: ["install the FIPS provider into \(dir) and run openssl fipsinstall, or point OPENSSL_MODULES at the folder that holds fips.so"]))
                } else if case .object(let provider) = fileSystem.probe(fips),
                          let p = provider.object.embeddedOpenSSL?.majorMinor, let c = e?.majorMinor, p != c {
                    out.append(Finding(
                        code: .opensslVersionSkew, target: name, subject: "\(fips) -> \(where_)",
                        summary: "FIPS provider \(fips) is OpenSSL \(p) but \(where_) is OpenSSL \(c)",
                        evidence: ["fips_provider": .string(fips), "provider_version": JSONValue(provider.object.embeddedOpenSSL?.version),
                                   "libcrypto": .string(where_), "libcrypto_version": JSONValue(e?.version)],
                        fix: ["use the FIPS provider validated for this libcrypto's release line, and rerun crypto-sentinel post to prove it loads"]))
                }
            } else if expectFIPS {
                out.append(Finding(
                    code: .fipsModuleMissing, target: name, subject: where_,
                    summary: "FIPS expected, but \(where_) has no compiled-in MODULESDIR and OPENSSL_MODULES is unset",
                    evidence: ["libcrypto": .string(where_)],
                    fix: ["set OPENSSL_MODULES to the folder that holds fips.so"]))
            }
        }
        return out
    }

    func mixedABIFindings() -> [Finding] {
        var tags: [String: [String]] = [:]
        for path in inventory.elfFiles.map(\.relativePath) + inventory.otherFiles {
            // Only names ending in .so can carry a tag: skip the rest (most of a big tree) cheaply.
            guard path.utf8.count > 3, path.utf8.reversed().starts(with: "os.".utf8) else { continue }
            if let tag = cpythonTag(lastComponent(path)) { tags[tag, default: []].append(path) }
        }
        guard tags.count > 1 else { return [] }
        let byCount = tags.sorted { ($0.value.count, $1.key) > ($1.value.count, $0.key) }
        let majority = byCount[0].key
        let strays = byCount.dropFirst().flatMap(\.value).sorted()
        return [Finding(
            code: .mixedPythonABI, target: name, subject: tags.keys.sorted().joined(separator: ", "),
            summary: "extension modules for \(tags.count) CPython ABIs: " + byCount.map { "\($0.key) (\($0.value.count))" }.joined(separator: ", "),
            evidence: .object(["tags": .object(tags.mapValues { JSONValue($0.sorted().prefix(20).map { $0 }) }),
                               "majority": .string(majority)]),
            fix: ["remove the leftovers built for another interpreter: rm " + strays.prefix(10).joined(separator: " ")
                  + (strays.count > 10 ? " …" : "")])]
    }

    // MARK: - The canonical-soname fix

    /// The patchelf steps of the canonical-soname fix: copy each hashed file to its canonical name,
    /// set its SONAME, rewrite every consumer's DT_NEEDED (patchelf also rewrites .gnu.version_r),
    /// make canonical-name consumers reach the bundle's copy, and only then remove the hashed copies.
    /// What every recipe needs, computed once per audit.
    /// A class: the recipes it memoises are shared by every finding of one audit (a bundle with 100
    /// hashed copies asks for the same 30,000-line recipe from both split findings).
    final class FixInputs {
        /// Relative paths of the tree's files by each name in their DT_NEEDED.
        var consumersByNeeded: [String: [String]] = [:]
        var mainRPathDirs: Set<String>
        /// The `patchelf --replace-needed` lines per hashed name, in consumer order.
        var replaceSteps: [String: [String]] = [:]
        var recipes: [String: [String]] = [:]
        /// The edges from a consumer in the tree to a library outside it, by the name asked for: each
        /// hashed copy's recipe looks up its canonical name here instead of going through every edge.
        var leavingUsesByName: [String: [Use]]?

        init(inventory: BundleInventory, mainRPathDirs: Set<String>) {
            for f in inventory.elfFiles { for n in f.file.object.needed { consumersByNeeded[n, default: []].append(f.relativePath) } }
            self.mainRPathDirs = mainRPathDirs
        }
    }

    func canonicalFix(_ linkage: Linkage, role: OpenSSLRole, only: String? = nil, inputs: FixInputs) -> [String] {
        let hashed = inventory.elfFiles.filter {
            guard $0.file.object.openSSLRole == .libcrypto || $0.file.object.openSSLRole == .libssl else { return false }
            let n = $0.file.object.soname ?? lastComponent($0.relativePath)
            // A split is fixed by canonicalising every hashed OpenSSL file at once (libssl with libcrypto).
            return OpenSSLNames.isMangled(n) && (only == nil || n == only)
        }
        if let member = hashed.first(where: { $0.file.identity.member != nil }) {
            let executable = String(member.relativePath.prefix { $0 != "!" })
            return ["\(executable) carries these files in its PyInstaller archive, which nothing edits in place: freeze the app with --onedir, fix that tree (crypto-sentinel repair DIR --dry-run shows how), then build the onefile again"]
        }
        // `role` only matters when nothing is hashed.
        let key = (only ?? "") + "\u{0}" + (hashed.isEmpty ? role.rawValue : "")
        if let known = inputs.recipes[key] { return known }
        let recipe = buildCanonicalFix(linkage, role: role, only: only, hashed: hashed, inputs: inputs)
        inputs.recipes[key] = recipe
        return recipe
    }

    private func buildCanonicalFix(_ linkage: Linkage, role: OpenSSLRole, only: String?, hashed: [BundleFile],
                                   inputs: FixInputs) -> [String] {
        var steps: [String] = []
        var removals: [String] = []
        for h in hashed {
            let hashedName = h.file.object.soname ?? lastComponent(h.relativePath)
            guard let canonical = OpenSSLNames.canonical(forMangled: hashedName) else { continue }
            let dir = h.relativePath.split(separator: "/").dropLast().joined(separator: "/")
            let target = dir.isEmpty ? canonical : dir + "/" + canonical
            steps.append("cp -a \(shellQuote(h.relativePath)) \(shellQuote(target))")
            steps.append("patchelf --set-soname \(canonical) \(shellQuote(target))")
            let replace = inputs.replaceSteps[hashedName] ?? {
                let lines = (inputs.consumersByNeeded[hashedName] ?? []).sorted()
                    .map { "patchelf --replace-needed \(hashedName) \(canonical) \(shellQuote($0))" }
                inputs.replaceSteps[hashedName] = lines
                return lines
            }()
            steps += replace
            removals.append("rm \(shellQuote(h.relativePath))")
            // Consumers that already ask for the canonical name but resolve outside the bundle.
            let leaving = inputs.leavingUsesByName ?? {
                let index = Dictionary(grouping: linkage.uses.filter { !isInTree($0.target.path) && isInTree($0.consumer) },
                                       by: \.name)
                inputs.leavingUsesByName = index
                return index
            }()
            for use in leaving[canonical] ?? [] {
                let rel = relativeDir(from: dirOf(use.consumer), to: join(inventory.root, dir))
                if !reachesViaMainRPath(canonicalDir: join(inventory.root, dir), consumer: use.consumer, mainRPathDirs: inputs.mainRPathDirs) {
                    steps.append("patchelf --add-rpath '$ORIGIN\(rel.isEmpty ? "" : "/" + rel)' \(shellQuote(display(use.consumer)))")
                }
            }
        }
        if hashed.isEmpty, only == nil {
            // No hashed copy: point the consumers that leave the bundle at the bundle's copy.
            let inTree = linkage.uses.first { $0.target.object.openSSLRole == role && isInTree($0.target.path) }?.target
            if let lib = inTree {
                for use in linkage.uses where use.target.object.openSSLRole == role && !isInTree(use.target.path) && isInTree(use.consumer) {
                    let rel = relativeDir(from: dirOf(use.consumer), to: dirOf(lib.path))
                    steps.append("patchelf --replace-needed \(use.name) \(lib.object.soname ?? lastComponent(lib.path)) \(shellQuote(display(use.consumer)))")
                    steps.append("patchelf --add-rpath '$ORIGIN\(rel.isEmpty ? "" : "/" + rel)' \(shellQuote(display(use.consumer)))")
                }
            } else {
                steps.append("ship one libcrypto/libssl pair in the bundle and make every consumer's DT_NEEDED and RUNPATH reach it")
            }
        }
        guard !steps.isEmpty else { return [] }
        return ["crypto-sentinel repair \(shellQuote(inventory.root)) --dry-run   # plans the steps below; --out DIR or --in-place applies them natively and verifies",
                "cd \(shellQuote(inventory.root))"] + steps + removals
            + ["crypto-sentinel scan \(shellQuote(inventory.root))   # every consumer must now end in one file"]
    }

    /// True when the main program's RPATH lists `canonicalDir`, so a consumer without RUNPATH will find the copy there.
    func reachesViaMainRPath(canonicalDir: String, consumer: String, mainRPathDirs: Set<String>) -> Bool {
        guard let c = inventory.elfFiles.first(where: { $0.file.path == consumer })?.file.object, c.runpath == nil else { return false }
        return mainRPathDirs.contains(normalize(canonicalDir))
    }

    /// The folders the main programs' DT_RPATH lists, $ORIGIN expanded.
    func mainRPathDirs() -> Set<String> {
        var dirs = Set<String>()
        for f in inventory.elfFiles where f.file.object.isMainProgram {
            for element in (f.file.object.effectiveRPath ?? "").split(separator: ":") {
                dirs.insert(normalize(String(element).replacing("${ORIGIN}", with: dirOf(f.file.path))
                    .replacing("$ORIGIN", with: dirOf(f.file.path))))
            }
        }
        return dirs
    }

    // MARK: - Presentation helpers

    /// Byte comparisons: paths are bytes, and a big tree's findings ask this for every consumer and step.
    func isInTree(_ path: String) -> Bool {
        let root = inventory.root.utf8, p = path.utf8
        guard p.starts(with: root) else { return false }
        return p.count == root.count || p[p.index(p.startIndex, offsetBy: root.count)] == UInt8(ascii: "/")
    }

    /// In-tree paths relative to the root, the rest absolute.
    func display(_ path: String) -> String {
        guard isInTree(path) else { return path }
        return String(decoding: path.utf8.dropFirst(inventory.root.utf8.count + 1), as: UTF8.self)
    }

    func describe(_ use: Use) -> String {
        var how = use.via.rawValue
        if let owner = use.rpathOwner, use.via == .rpath || use.via == .runpath { how += " of \(display(owner))" }
        return "\(display(use.consumer)) needs \(use.name) [\(how)]"
    }

    func describeVersion(_ f: LoadedFile) -> String {
        let v = f.object.opensslVersion.map { "OpenSSL \($0)" } ?? "version unknown"
        return "\(v), \(f.identity)"
    }
}

/// `cpython-311` from `_ssl.cpython-311-x86_64-linux-gnu.so`; nil for abi3 and non-extension names.
func cpythonTag(_ file: String) -> String? {
    // ASCII names (all real ones) on bytes: the Character-wise search cost ~20,000 instructions a name.
    let bytes = file.utf8
    if bytes.allSatisfy({ $0 < 0x80 }) {
        guard bytes.count >= 3, bytes.reversed().starts(with: "os.".utf8) else { return nil }
        let needle = Array(".cpython-".utf8)
        let array = Array(bytes)
        guard array.count >= needle.count,
              let at = (0...(array.count - needle.count)).first(where: { array[$0..<($0 + needle.count)].elementsEqual(needle) })
        else { return nil }
        let digits = array[(at + needle.count)...].prefix { $0 >= 0x30 && $0 <= 0x39 }
        return digits.isEmpty ? nil : "cpython-" + String(decoding: digits, as: UTF8.self)
    }
    guard file.hasSuffix(".so"), let r = file.firstRange(of: ".cpython-") else { return nil }
    let digits = file[r.upperBound...].prefix { $0.isNumber }
    return digits.isEmpty ? nil : "cpython-" + digits
}

/// The last non-empty `/`-separated part (the path itself when there is none), found on the bytes:
/// split() built an array of every part, for every file of the tree.
public func lastComponent(_ path: String) -> String {
    let bytes = path.utf8
    let slash = UInt8(ascii: "/")
    var end = bytes.endIndex
    while end > bytes.startIndex, bytes[bytes.index(before: end)] == slash { end = bytes.index(before: end) }
    guard end > bytes.startIndex else { return path }
    let start = bytes[..<end].lastIndex(of: slash).map { bytes.index(after: $0) } ?? bytes.startIndex
    return String(path[start..<end])
}
public func dirOf(_ path: String) -> String {
    let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
    let d = parts.joined(separator: "/")
    return d.isEmpty ? "/" : d
}
public func join(_ a: String, _ b: String) -> String { b.isEmpty ? a : (a.hasSuffix("/") ? a + b : a + "/" + b) }

/// Lexical normalisation (no symlinks): collapses ".", ".." and repeated slashes.
func normalize(_ path: String) -> String {
    var out: [Substring] = []
    for part in path.split(separator: "/") {
        if part == "." { continue }
        if part == ".." { if !out.isEmpty { out.removeLast() }; continue }
        out.append(part)
    }
    return "/" + out.joined(separator: "/")
}

/// "../lib" from /b/lib/pkg to /b/lib.
func relativeDir(from: String, to: String) -> String {
    let a = normalize(from).split(separator: "/"), b = normalize(to).split(separator: "/")
    var i = 0
    while i < a.count, i < b.count, a[i] == b[i] { i += 1 }
    return (Array(repeating: "..", count: a.count - i) + b[i...].map(String.init)).joined(separator: "/")
}

func shellQuote(_ s: String) -> String {
    let safe: (UInt8) -> Bool = { b in
        switch b {
        case 97...122, 65...90, 48...57: true
        case UInt8(ascii: "/"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "+"),
             UInt8(ascii: ":"), UInt8(ascii: "="), UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: ","): true
        default: false
        }
    }
    var s = s
    if !s.isEmpty, s.withUTF8({ $0.allSatisfy(safe) }) { return s }
    return "'" + s.replacing("'", with: "'\\''") + "'"
}

/// "statically linked" for a library inside another module (it exports none of its own API), else nil.
func foreignLinkage(_ object: ELFObject) -> String? {
    object.exports.isEmpty ? "statically linked" : nil
}
