/// Decides the canonical-soname fix from the scan's model: which copy of each OpenSSL library every
/// consumer will share (by role, content and version, never by file name alone), which strings
/// change in which files, which copies go, and what may not be touched.
public struct RepairPlanner {
    public var audit: BundleAudit
    public var linkage: BundleAudit.Linkage
    public var facts: any RepairFileFacts
    /// `--in-place`: package-owned files are refused (a `--out` copy belongs to nobody's package).
    public var inPlace: Bool

    public init(audit: BundleAudit, linkage: BundleAudit.Linkage, facts: any RepairFileFacts, inPlace: Bool) {
        self.audit = audit; self.linkage = linkage; self.facts = facts; self.inPlace = inPlace
    }

    var inventory: BundleInventory { audit.inventory }

    public func plan() -> RepairPlan {
        var plan = RepairPlan(root: inventory.root)
        var refused: [String: String] = [:]
        var names: [FileIdentity: [String: String]] = [:]   // asked only of the files the plan looks at
        func links(_ f: BundleFile) -> [String: String] {
            if let known = names[f.file.identity] { return known }
            let found = facts.symlinks(of: f)
            names[f.file.identity] = found
            return found
        }
        /// The string rewrites wanted, in order; their tables are read together once every one is known.
        var rewrites: [(path: String, old: String, new: String, kinds: Set<DynamicStrings.ReferenceKind>)] = []

        /// The file's first name in the tree that is not a symlink; nil when it lives outside the tree.
        func hardPath(_ f: BundleFile) -> String? {
            let links = links(f)
            return ([f.relativePath] + f.aliases).first { links[$0] == nil }
        }
        var macs: [String: String?] = [:]   // a file's MAC companion, looked up once
        func integrityMAC(_ abs: String) -> String? {
            if let known = macs[abs] { return known }
            let found = facts.integrityCompanion(abs)
            macs[abs] = found
            return found
        }
        /// fips.so and other provider modules: integrity-checked against the MAC fipsinstall wrote.
        func isProviderModule(_ f: BundleFile, _ path: String) -> Bool {
            lastComponent(path) == "fips.so" || f.file.object.openSSLRole == .provider
        }
        /// Why `f` may not be changed or removed, if so.
        func protection(_ f: BundleFile, _ path: String) -> String? {
            if isProviderModule(f, path) {
                return "an OpenSSL provider module (its integrity is checked against the MAC fipsinstall wrote)"
            }
            let abs = join(inventory.root, path)
            if let mac = integrityMAC(abs) { return "covered by the integrity MAC \(audit.display(mac))" }
            if let why = facts.readOnlyReason(abs) { return why }
            if inPlace, let owner = facts.packageOwner(abs) { return "owned by the package \(owner) (dpkg -S): change it through the package" }
            return nil
        }
        func rewrite(_ f: BundleFile, _ path: String, _ old: String, _ new: String, _ kinds: Set<DynamicStrings.ReferenceKind>) {
            guard refused[path] == nil else { return }
            if let why = protection(f, path) { refused[path] = why; return }
            rewrites.append((path, old, new, kinds))
        }

        // The OpenSSL files a reader might expect a repair to touch; a consumer under a MAC is refused if it needs an edit.
        for f in inventory.elfFiles where f.file.object.openSSLRole != nil {
            guard let path = hardPath(f) else { continue }
            let abs = join(inventory.root, path)
            if isProviderModule(f, path) {
                plan.untouched.append(.init(path: path, reason: "OpenSSL provider module: never rewritten"))
            } else if let mac = integrityMAC(abs) {
                plan.untouched.append(.init(path: path, reason: "covered by the integrity MAC \(audit.display(mac)): never rewritten"))
            }
        }

        // OpenSSL 1.1 and 3 in one split: no rewrite joins two ABIs, so nothing is planned; the consumers of
        // one must be rebuilt against the other (the scan's fix says so too).
        for role in [OpenSSLRole.libcrypto, .libssl] {
            let reached = Dictionary(linkage.uses.filter { $0.target.object.openSSLRole == role }.map { ($0.target.identity, $0.target) }) { a, _ in a }
            let copies = reached.values.sorted { audit.display($0.path) < audit.display($1.path) }
            let majors = Set(copies.compactMap { audit.releaseLine($0.object)?.split(separator: ".").first }).sorted()
            guard majors.count > 1, let inTree = copies.first(where: { audit.isInTree($0.path) }) else { continue }
            plan.refused.append(.init(path: audit.display(inTree.path), reason:
                "the split is between \(copies.map { "\(audit.display($0.path)) (\(audit.describeVersion($0)))" }.joined(separator: " and ")): "
                + "OpenSSL \(majors.joined(separator: " and ")) are not ABI-compatible, and no rewrite joins them; rebuild the consumers of the older copy against the newer OpenSSL"))
        }
        if !plan.refused.isEmpty { return plan }

        // The edges that come from outside the tree, by the file they reach (a few: LD_PRELOAD, system libraries).
        let outsideUses = Dictionary(grouping: linkage.uses.filter { !audit.isInTree($0.consumer) }, by: \.target.identity)
        let consumerCounts = linkage.uses.reduce(into: [FileIdentity: Int]()) { $0[$1.target.identity, default: 0] += 1 }
        var removed = Set<FileIdentity>()
        for role in [OpenSSLRole.libcrypto, .libssl] {
            let copies = inventory.elfFiles.filter { $0.file.object.openSSLRole == role && hardPath($0) != nil }
            guard let keep = copies.max(by: { rank($0, consumerCounts).lexicographicallyPrecedes(rank($1, consumerCounts)) }) else { continue }
            let keepPath = hardPath(keep)!
            let ownName = keep.file.object.soname ?? lastComponent(keepPath)
            let canonicalName = OpenSSLNames.canonical(forMangled: ownName) ?? ownName
            // Copies of another ABI (libcrypto.so.1.1 beside libcrypto.so.3) are another library: left alone.
            let same = copies.filter { canonicalForm($0, hardPath($0)!) == canonicalName }
            let others = same.filter { $0.file.identity != keep.file.identity }
            var hashedNames = Set<String>()
            for f in same {
                let fileNames: [String] = ([f.relativePath] + f.aliases).map(lastComponent)
                for n in [f.file.object.soname].compactMap({ $0 }) + fileNames where n != canonicalName && OpenSSLNames.isOpenSSLName(n) {
                    hashedNames.insert(n)
                }
            }
            let neededHashed = inventory.elfFiles.contains { f in
                (f.file.object.needed + f.file.object.versionNeedFiles).contains { canonicalOf($0) == canonicalName && $0 != canonicalName }
            }
            guard !others.isEmpty || !hashedNames.isEmpty || neededHashed else { continue }

            let newPath = relativeJoin(dirOfRelative(keepPath), canonicalName)
            plan.canonical.append(.init(library: role, from: keepPath, path: newPath, name: canonicalName,
                                        version: keep.file.object.opensslVersion))
            if newPath != keepPath {
                if let why = protection(keep, keepPath) { refused[keepPath] = why }
                let occupant = inventory.elfFiles.first { ([$0.relativePath] + $0.aliases).contains(newPath) }
                if occupant?.file.identity == keep.file.identity {
                    // A symlink with the canonical name pointing at the hashed copy: the file itself takes its place.
                    plan.removals.append(.init(path: newPath, reason: "symlink to \(keepPath), replaced by the file itself"))
                } else if inventory.otherFiles.contains(newPath) || (occupant.map { o in !others.contains { $0.file.identity == o.file.identity } } ?? false) {
                    refused[keepPath] = "\(newPath) already exists and is not a copy of this library: the canonical name is taken"
                }
            }
            if let soname = keep.file.object.soname, soname != canonicalName {
                rewrite(keep, keepPath, soname, canonicalName, [.soname, .versionDefinitionBase])
            }
            // The scan compared each library's copies as one group (the answer is cached): all equal or not.
            let all = inventory.elfFiles.filter { $0.file.object.openSSLRole == role }
            let allIdentical = all.count > 1 && all.allSatisfy { $0.size == all[0].size }
                && audit.fileSystem.allContentsEqual(all[0].file.path, all.dropFirst().map(\.file.path))
            for other in others {
                let path = hardPath(other)!
                removed.insert(other.file.identity)
                if let why = protection(other, path) { refused[path] = why; continue }
                if let use = outsideUses[other.file.identity]?.first {
                    refused[path] = "also needed from outside ROOT by \(audit.display(use.consumer)): removing it would break that consumer"
                    continue
                }
                let links = facts.linksOutsideTree(other)
                if links > 0 {
                    refused[path] = "has \(links) hard link(s) outside ROOT: something outside the tree uses this copy"
                    continue
                }
                let identical = other.size == keep.size && (allIdentical || audit.fileSystem.contentsEqual(other.file.path, keep.file.path))
                plan.removals.append(.init(path: path, reason: identical
                    ? "byte-identical copy of \(keepPath)"
                    : "\(audit.describeVersion(other.file)) copy, replaced by \(newPath) (\(audit.describeVersion(keep.file)))"))
            }
            // A hashed copy about to be renamed or removed that a consumer outside the tree needs.
            if newPath != keepPath, let consumer = outsideUses[keep.file.identity]?.first(where: { $0.name != canonicalName }) {
                refused[keepPath] = "also needed from outside ROOT by \(audit.display(consumer.consumer)) as \(consumer.name): renaming it would break that consumer"
            }
            // Every consumer that names any copy by another name now names the canonical one.
            for f in inventory.elfFiles where !removed.contains(f.file.identity) {
                let o = f.file.object
                var wanted = Set(o.needed.filter { canonicalOf($0) == canonicalName && $0 != canonicalName })
                wanted.formUnion(o.versionNeedFiles.filter { canonicalOf($0) == canonicalName && $0 != canonicalName })
                guard !wanted.isEmpty, let path = hardPath(f) else { continue }
                for old in wanted.sorted() {
                    guard hashedNames.contains(old) else {
                        refused[path] = "needs \(old), which no file in ROOT provides: renaming it to \(canonicalName) could bind it to another build"
                        break
                    }
                    rewrite(f, path, old, canonicalName, [.needed, .versionNeedFile])
                }
            }
            // Symlinks that named a renamed or removed copy keep their shape and name the canonical file.
            for f in same where f.file.identity == keep.file.identity ? newPath != keepPath : true {
                for (link, text) in links(f).sorted(by: { $0.key < $1.key }) where !text.hasPrefix("/") && link != newPath {
                    plan.relinks.append(.init(path: link, target: relativeTarget(from: link, to: newPath)))
                }
            }
        }

        // A copy one library's pass rewrote (libssl needing the hashed libcrypto) may be removed by the next.
        let removedPaths = Set(plan.removals.map(\.path))
        rewrites.removeAll { removedPaths.contains($0.path) }
        var patches: [String: [StringPatch]] = [:]
        let tables = facts.dynamicStrings(Array(Set(rewrites.map { join(inventory.root, $0.path) })))
        for r in rewrites where refused[r.path] == nil {
            switch tables[join(inventory.root, r.path)] ?? .failure(RewriteRefusal("not read")) {
            case .failure(let why): refused[r.path] = why.reason
            case .success(let table):
                switch table.rewrite(r.old, to: r.new, kinds: r.kinds) {
                case .success(let made): patches[r.path, default: []] += made
                case .failure(let why): refused[r.path] = why.reason
                }
            }
        }
        // One file's rewrites together: in place, and no two of them on the same bytes.
        for (path, made) in patches where refused[path] == nil {
            if case .success(let table)? = tables[join(inventory.root, path)] {
                do { _ = try table.applying(made) } catch { refused[path] = error.reason }
            }
        }
        plan.edits = patches.keys.filter { refused[$0] == nil }.sorted().flatMap { file in
            patches[file]!.sorted { $0.tableOffset < $1.tableOffset }.map { RepairPlan.Edit(file: file, patch: $0) }
        }
        plan.removals.sort { $0.path < $1.path }
        plan.refused = refused.keys.sorted().map { .init(path: $0, reason: refused[$0]!) }
        return plan
    }

    /// The copy to keep, highest first: newest release, then one a consumer loads, then the most consumers,
    /// then one already named canonically, then the shortest path.
    func rank(_ f: BundleFile, _ consumerCounts: [FileIdentity: Int]) -> [Int] {
        let v = (f.file.object.embeddedOpenSSL?.version ?? f.file.object.opensslVersionNodeLine ?? "")
            .split(separator: ".").map { Int($0.prefix { $0.isNumber }) ?? 0 }
        let consumers = consumerCounts[f.file.identity] ?? 0
        let named = OpenSSLNames.isMangled(f.file.object.soname ?? lastComponent(f.relativePath)) ? 0 : 1
        let release = (0..<3).map { $0 < v.count ? v[$0] : -1 }
        return release + [linkage.reached.contains(f.file.identity) ? 1 : 0, consumers, named, -f.relativePath.utf8.count]
    }

    func canonicalOf(_ name: String) -> String? {
        OpenSSLNames.canonical(forMangled: name) ?? (OpenSSLNames.isOpenSSLName(name) ? name : nil)
    }

    func canonicalForm(_ f: BundleFile, _ path: String) -> String? {
        canonicalOf(f.file.object.soname ?? lastComponent(path))
    }
}

/// "lib/libcrypto.so.3" from "lib" and "libcrypto.so.3" (the root folder is "").
func relativeJoin(_ dir: String, _ name: String) -> String { dir.isEmpty ? name : dir + "/" + name }

/// The folder of a relative path ("" for a file at the root).
public func dirOfRelative(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "" }
    return String(path[..<slash])
}

/// The text of a symlink at `link` that names `target` (both relative to the root).
func relativeTarget(from link: String, to target: String) -> String {
    let rel = relativeDir(from: "/" + dirOfRelative(link), to: "/" + dirOfRelative(target))
    return rel.isEmpty ? lastComponent(target) : rel + "/" + lastComponent(target)
}
