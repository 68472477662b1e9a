/// The tree as a plan leaves it, seen through the scan's model before anything is written: renamed
/// files answer at their new path, removed ones are gone, rewritten ones carry their new names. The
/// same audit runs on it, so `--dry-run` gives the verdict the staged copy will be checked against.
public struct PlannedTree: AuditFileSystem {
    /// What the plan changes, worked out once and shared by the simulation's threads.
    public struct Changes: Sendable {
        let root: String
        /// Absolute new path -> absolute old path, and the reverse.
        let renamedTo: [String: String]
        let renamedFrom: [String: String]
        let removed: Set<String>
        /// The model of every rewritten file, by its absolute old path.
        let edited: [String: ELFObject]

        public init(plan: RepairPlan, inventory: BundleInventory) {
            let root = plan.root
            self.root = root
            var to: [String: String] = [:], from: [String: String] = [:]
            for r in plan.renames { to[join(root, r.to)] = join(root, r.from); from[join(root, r.from)] = join(root, r.to) }
            renamedTo = to; renamedFrom = from
            removed = Set(plan.removals.map { join(root, $0.path) })
            var objects: [String: ELFObject] = [:]
            let edited = Set(plan.edits.map(\.file))
            var byPath: [String: ELFObject] = [:]
            for f in inventory.elfFiles { for name in [f.relativePath] + f.aliases where edited.contains(name) { byPath[name] = f.file.object } }
            for edit in plan.edits {
                guard var o = objects[join(root, edit.file)] ?? byPath[edit.file] else { continue }
                let (old, new) = (edit.patch.old, edit.patch.new)
                if edit.patch.kinds.contains(.needed) { o.needed = o.needed.map { $0 == old ? new : $0 } }
                if edit.patch.kinds.contains(.versionNeedFile) {
                    o.versionNeedFiles = o.versionNeedFiles.map { $0 == old ? new : $0 }
                    if let versions = o.neededVersions.removeValue(forKey: old) { o.neededVersions[new] = versions }
                }
                if edit.patch.kinds.contains(.soname), o.soname == old { o.soname = new }
                objects[join(root, edit.file)] = o
            }
            self.edited = objects
        }

        /// The inventory of the planned tree: same files, new names and models, removed copies gone.
        public func inventory(_ before: BundleInventory) -> BundleInventory {
            var after = before
            after.elfFiles = before.elfFiles.compactMap { f in
                let names = ([f.relativePath] + f.aliases).compactMap { rel -> String? in
                    let abs = join(root, rel)
                    if removed.contains(abs) { return nil }
                    return renamedFrom[abs].map { String($0.dropFirst(root.count + 1)) } ?? rel
                }
                guard let first = names.first else { return nil }
                let object = ([f.relativePath] + f.aliases).lazy.compactMap { self.edited[join(self.root, $0)] }.first
                if object == nil, first == f.relativePath, names.count == f.aliases.count + 1 { return f }
                return BundleFile(file: LoadedFile(path: join(root, first), identity: f.file.identity, object: object ?? f.file.object),
                                  relativePath: first, aliases: Array(names.dropFirst()), size: f.size)
            }
            after.otherFiles = before.otherFiles.filter { !removed.contains(join(root, $0)) }
            return after
        }
    }

    let changes: Changes
    let base: any AuditFileSystem

    public init(_ changes: Changes, base: any AuditFileSystem) {
        self.changes = changes; self.base = base
    }

    /// The files whose loads can reach an OpenSSL library, by name: those that need an OpenSSL name,
    /// and, repeatedly, those that need a file already in the set. Resolving only these gives every
    /// OpenSSL edge of the tree (a verdict reads no other), at a fraction of a whole simulation.
    public static func opensslDependents(_ inventory: BundleInventory) -> Set<FileIdentity> {
        var reaching = Set<FileIdentity>()
        var names = Set<String>()
        var pending = inventory.elfFiles
        var changed = true
        while changed {
            changed = false
            pending.removeAll { f in
                let o = f.file.object
                guard o.openSSLRole != nil || o.needed.contains(where: { OpenSSLNames.isOpenSSLName($0) || names.contains($0) }) else { return false }
                reaching.insert(f.file.identity)
                names.formUnion(([f.relativePath] + f.aliases).map(lastComponent) + [o.soname].compactMap { $0 })
                changed = true
                return true
            }
        }
        return reaching
    }

    func old(_ path: String) -> String? {
        if changes.removed.contains(path) || changes.renamedFrom[path] != nil { return nil }
        return changes.renamedTo[path] ?? path
    }

    public func probe(_ path: String) -> LoaderProbe {
        guard let old = old(path) else { return .missing }
        switch base.probe(old) {
        case .object(let f):
            return .object(LoadedFile(path: path, identity: f.identity, object: changes.edited[old] ?? f.object))
        case let other: return other
        }
    }

    public func realPath(_ path: String) -> String? {
        guard let old = old(path), let real = base.realPath(old) else { return nil }
        return changes.renamedFrom[real] ?? real
    }

    public func directoryEntries(_ path: String) -> Set<String>? {
        guard var names = base.directoryEntries(path) else { return nil }
        for gone in changes.removed.union(changes.renamedFrom.keys) where dirOf(gone) == path { names.remove(lastComponent(gone)) }
        for new in changes.renamedTo.keys where dirOf(new) == path { names.insert(lastComponent(new)) }
        return names
    }

    public func exists(_ path: String) -> Bool { old(path).map(base.exists) ?? false }

    public func contentsEqual(_ a: String, _ b: String) -> Bool {
        guard let a = old(a), let b = old(b) else { return false }
        return base.contentsEqual(a, b)
    }
}
