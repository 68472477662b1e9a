import SentinelCore

/// Wires the adapters to the pure audit: walk, read through the catalog, resolve on the host.
public struct BundleAuditor: Sendable {
    public let catalog: ELFCatalog
    public init(catalog: ELFCatalog) { self.catalog = catalog }

    public func audit(root: String, name: String? = nil, environment: TargetEnvironment,
                      expectFIPS: Bool, host: LoaderHost = HostLoaderFacts.current()) throws(ScanError) -> TargetReport {
        let inventory = try BundleScanner(catalog: catalog).inventory(root: root)
        let audit = BundleAudit(
            name: name ?? (root.split(separator: "/").last.map(String.init) ?? root),
            inventory: inventory, environment: environment, expectFIPS: expectFIPS,
            host: host, fileSystem: DiskFileSystem(catalog: catalog))
        return audit.run()
    }
}
