import Dispatch
import Foundation
import SentinelCore
import Synchronization

/// Wires the adapters to the pure audit: walk, read through the catalog, resolve on the host.
/// Keeps the last loader simulation per tree and reuses it while nothing it looked at has changed
/// (every file of the tree, every path the loader probed, /etc/ld.so.cache, the environment), so
/// the daemon's scheduled rescan of an unchanged bundle costs stat() calls only.
public final class BundleAuditor: Sendable {
    public let catalog: ELFCatalog
    private let linkages = Mutex<[String: CachedLinkage]>([:])

    struct CachedLinkage: Sendable {
        var key: LinkageKey
        var probes: [(path: String, stamp: ProbeStamp)]
        var linkage: BundleAudit.Linkage
    }

    struct LinkageKey: Hashable, Sendable {
        var environment: TargetEnvironment
        var expectFIPS: Bool
        var files: [String: FileStamp]
        var ldCache: ProbeStamp
    }

    public init(catalog: ELFCatalog) { self.catalog = catalog }

    public func audit(root: String, name: String? = nil, environment: TargetEnvironment,
                      expectFIPS: Bool, host: LoaderHost = HostLoaderFacts.current()) throws(ScanError) -> TargetReport {
        let inventory = try BundleScanner(catalog: catalog).inventory(root: root)
        let name = name ?? (root.split(separator: "/").last.map(String.init) ?? root)
        let catalog = self.catalog
        let makeAudit = { @Sendable (fileSystem: DiskFileSystem) in
            BundleAudit(name: name, inventory: inventory, environment: environment, expectFIPS: expectFIPS,
                        host: host, fileSystem: fileSystem)
        }
        let audit = makeAudit(DiskFileSystem(catalog: catalog))
        var files: [String: FileStamp] = [:]
        for f in inventory.elfFiles { files[f.file.path] = ProbeStamp.stamp(f.file.path).fileStamp }
        let key = LinkageKey(environment: environment, expectFIPS: expectFIPS, files: files,
                             ldCache: .stamp("/etc/ld.so.cache"))
        if let cached = linkages.withLock({ $0[root] }), cached.key == key,
           cached.probes.allSatisfy({ ProbeStamp.stamp($0.path) == $0.stamp }) {
            return audit.run(linkage: cached.linkage)
        }
        // The loader simulation is the expensive part: one share of the roots per core, each with its
        // own resolver and memo (neither is shared across threads).
        let parts = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount))
        let results = Mutex<[(BundleAudit.Linkage, [String])]>([])
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let fileSystem = DiskFileSystem(catalog: catalog)
            let partial = makeAudit(fileSystem).resolveLinkage(part: part, of: parts)
            results.withLock { $0.append((partial, fileSystem.probedPaths)) }
        }
        let done = results.withLock { $0 }
        let linkage = BundleAudit.merge(done.map(\.0))
        let probes = Set(done.flatMap(\.1)).map { ($0, ProbeStamp.stamp($0)) }
        linkages.withLock { $0[root] = CachedLinkage(key: key, probes: probes, linkage: linkage) }
        return audit.run(linkage: linkage)
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

    var fileStamp: FileStamp? { if case .present(let s) = self { return s }; return nil }
}
