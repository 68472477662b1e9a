import Dispatch
import FoundationEssentials
import Glibc
import SentinelCore

/// Wires the adapters to the pure audit: walk, read through the catalog, resolve on the host.
/// Keeps the last result per tree and reuses it while nothing it looked at has changed (every file
/// of the tree, every path the loader probed or the audit checked, /etc/ld.so.cache, the
/// environment), so the daemon's scheduled rescan of an unchanged bundle costs stat() calls only.
public final class BundleAuditor: Sendable {
    public let catalog: ELFCatalog
    private let results = Locked<[String: CachedAudit]>([:])

    struct CachedAudit: Sendable {
        var key: AuditKey
        /// The walk's digest, when a walk with that digest is enough to reuse the report: the tree
        /// read without a warning (a file that could not be read is read again at every scan).
        var walk: Int?
        var probes: [(path: String, stamp: ProbeStamp)]
        var existence: [String: Bool]
        var report: TargetReport
    }

    struct AuditKey: Hashable, Sendable {
        var name: String
        var environment: TargetEnvironment
        var expectFIPS: Bool
        var files: [String: FileStamp]
        var otherFiles: [String]
        var warnings: [String]
        var ldCache: ProbeStamp
    }

    public init(catalog: ELFCatalog) { self.catalog = catalog }

    public func audit(root: String, name: String? = nil, environment: TargetEnvironment,
                      expectFIPS: Bool, host: LoaderHost = HostLoaderFacts.current()) throws(ScanError) -> TargetReport {
        // An unchanged tree is the daemon's usual case. The last audit's checks of paths outside the
        // tree (the loader's probes and existence checks: ~1,700 stat()s for /usr/lib) are redone on
        // a second core while this one walks the tree; together they decide whether it still holds.
        let cached = results.withLock { $0[root] }
        let outsideUnchanged = Locked<Bool>(false)
        let checked = DispatchGroup()
        if let cached {
            DispatchQueue.global().async(group: checked) {
                let same = cached.probes.allSatisfy { ProbeStamp.stamp($0.path) == $0.stamp }
                    && cached.existence.allSatisfy { access($0.key, F_OK) == 0 ? $0.value : !$0.value }
                outsideUnchanged.withLock { $0 = same }
            }
        }
        let scanner = BundleScanner(catalog: catalog)
        // A single file (a PyInstaller onefile executable) is a tree of one, in its folder.
        let single = Self.regularFile(root)
        let walk: (entries: [WalkEntry], warnings: [String])
        if let single { walk = ([single], []) } else { walk = try scanner.walk(root: root, rescan: cached != nil) }
        let folder = single == nil ? root : dirOf(root)
        let digest = Self.digest(walk)
        let name = name ?? (root.split(separator: "/").last.map(String.init) ?? root)
        let ldCache = ProbeStamp.stamp("/etc/ld.so.cache")
        // Every file at the same path with the same stamp, in the same order, with the same warnings:
        // the inventory would be the same, so it is not even built.
        if let cached, cached.walk == digest, cached.key.name == name, cached.key.environment == environment,
           cached.key.expectFIPS == expectFIPS, cached.key.ldCache == ldCache {
            checked.wait()
            if outsideUnchanged.withLock({ $0 }) { return cached.report }
        }
        let (walked, stamps) = scanner.inventoryAndStamps(root: folder, entries: walk.entries, warnings: walk.warnings)
        let key = AuditKey(name: name, environment: environment, expectFIPS: expectFIPS, files: stamps,
                           otherFiles: walked.otherFiles, warnings: walked.warnings, ldCache: ldCache)
        if let cached, cached.key == key {
            checked.wait()
            if outsideUnchanged.withLock({ $0 }) { return cached.report }
        }
        let expansion = FreezerExpansion.expand(walked, catalog: catalog)
        let analysis = analyse(inventory: expansion.inventory, name: name, environment: expansion.layout.environment(given: environment),
                               expectFIPS: expectFIPS, host: host, archived: expansion.archived)
        var report = analysis.report
        report.bundle = expansion.layout.json(given: environment)
        let findingsFileSystem = analysis.fileSystem
        // The stamps each probe saw: the report was made from those (a stat() now could see a file
        // changed since, and cache a stale report under its new stamp).
        let probed = findingsFileSystem.probeStamps
        results.withLock {
            // The tree's own ELF files need no stamp here: the key already holds theirs.
            $0[root] = CachedAudit(key: key, walk: expansion.inventory.warnings.isEmpty ? digest : nil,
                                   probes: probed.filter { stamps[$0.path] == nil } + expansion.outsideStamps,
                                   existence: findingsFileSystem.existence, report: report)
        }
        return report
    }
}

extension BundleAuditor {
    /// An audit with the model it was made from, for a caller that goes on from it (`repair`).
    public struct Analysis {
        public var audit: BundleAudit
        public var linkage: BundleAudit.Linkage
        public var report: TargetReport
        public var fileSystem: DiskFileSystem
    }

    /// A fresh audit of a tree (no reuse of an earlier one), with its model, under what the tree's
    /// launcher sets. A onefile archive's members are left out: nothing inside one can be edited.
    public func analyse(root: String, name: String? = nil, environment: TargetEnvironment, expectFIPS: Bool = false,
                        host: LoaderHost = HostLoaderFacts.current()) throws(ScanError) -> Analysis {
        let expansion = FreezerExpansion.expand(try BundleScanner(catalog: catalog).inventory(root: root), catalog: catalog,
                                                members: false)
        var analysis = analyse(inventory: expansion.inventory, name: name ?? (root.split(separator: "/").last.map(String.init) ?? root),
                               environment: expansion.layout.environment(given: environment), expectFIPS: expectFIPS, host: host)
        analysis.report.bundle = expansion.layout.json(given: environment)
        return analysis
    }

    func analyse(inventory: BundleInventory, name: String, environment: TargetEnvironment, expectFIPS: Bool,
                 host: LoaderHost, archived: ArchivedFiles = .none) -> Analysis {
        let catalog = self.catalog
        let makeAudit = { @Sendable (fileSystem: any AuditFileSystem) in
            BundleAudit(name: name, inventory: inventory, environment: environment, expectFIPS: expectFIPS,
                        host: host, fileSystem: fileSystem)
        }
        // Duplicate OpenSSL copies are byte-compared (hundreds of MB in a large bundle): started now,
        // they run beside the loader simulation and the findings' single-threaded work, and the
        // duplicate finding waits only for what is left (the catalog keeps each answer).
        let compared = DispatchGroup()
        for (first, others) in makeAudit(DiskFileSystem(catalog: catalog, archived: archived)).duplicateComparisons() {
            DispatchQueue.global().async(group: compared) {
                _ = DiskFileSystem(catalog: catalog, archived: archived).allContentsEqual(first, others)
            }
        }
        defer { compared.wait() }  // nothing outlives the audit that started it
        let memo = DiskFileSystem.ProbeMemo()
        let linkage = Self.resolveInParallel { makeAudit(DiskFileSystem(catalog: catalog, memo: memo, archived: archived)) }
        let fileSystem = DiskFileSystem(catalog: catalog, memo: memo, archived: archived)
        let audit = makeAudit(fileSystem)
        return Analysis(audit: audit, linkage: linkage, report: audit.run(linkage: linkage), fileSystem: fileSystem)
    }

    /// The loader simulation is the expensive part of an audit: one share of the roots per core, each
    /// with its own resolver and search memo (`makeAudit` gives each its own file system).
    public static func resolveInParallel(_ makeAudit: @Sendable () -> BundleAudit) -> BundleAudit.Linkage {
        let parts = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount))
        let partials = Locked<[BundleAudit.Linkage]>([])
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let partial = makeAudit().resolveLinkage(part: part, of: parts)
            partials.withLock { $0.append(partial) }
        }
        return BundleAudit.merge(partials.withLock { $0 })
    }

    /// `path` as the one entry of a walk of its folder, when it is a regular file (or a symlink to one).
    static func regularFile(_ path: String) -> WalkEntry? {
        var st = stat()
        guard stat(EscapedBytes.cString(path), &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        return WalkEntry(relativePath: lastComponent(path), path: path, stamp: FileStamp(st))
    }

    /// A walk in one number: each file's path and stamp in walk order, and the warnings. Hasher is
    /// SipHash with a key drawn at each start, so two different walks of one process share a digest
    /// with a chance of 2^-64 that nobody outside the process can steer.
    static func digest(_ walk: (entries: [WalkEntry], warnings: [String])) -> Int {
        var hasher = Hasher()
        hasher.combine(walk.entries.count)
        for entry in walk.entries {
            hasher.combine(entry.relativePath)
            hasher.combine(entry.stamp)
        }
        hasher.combine(walk.warnings)
        return hasher.finalize()
    }
}

/// What stat() says about a path, enough to tell whether the loader would now see something else.
enum ProbeStamp: Hashable, Sendable {
    case missing(Int32)
    case present(FileStamp)

    static func stamp(_ path: String) -> ProbeStamp {
        var st = stat()
        return stat(path, &st) == 0 ? .present(FileStamp(st)) : .missing(errno)
    }
}
