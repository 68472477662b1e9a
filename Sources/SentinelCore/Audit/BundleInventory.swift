/// One ELF file found in a bundle tree (each (device, inode) once, with every path that names it).
public struct BundleFile: Sendable, Hashable {
    public var file: LoadedFile
    /// Path relative to the bundle root, as first met in the walk.
    public var relativePath: String
    /// Other paths in the tree that are the same file (hard links, symlinks).
    public var aliases: [String]
    public var size: UInt64

    public init(file: LoadedFile, relativePath: String, aliases: [String] = [], size: UInt64) {
        self.file = file; self.relativePath = relativePath; self.aliases = aliases; self.size = size
    }
}

/// What a walk of a bundle tree produced, ready for the pure audit.
public struct BundleInventory: Sendable {
    public var root: String
    public var elfFiles: [BundleFile]
    /// Relative paths of the other regular files (Python ABI tags, freezer CA bundles).
    public var otherFiles: [String]
    /// One line per file that could not be read: "path: reason".
    public var warnings: [String]
    public var fileCount: Int

    public init(root: String, elfFiles: [BundleFile], otherFiles: [String], warnings: [String], fileCount: Int) {
        self.root = root; self.elfFiles = elfFiles; self.otherFiles = otherFiles
        self.warnings = warnings; self.fileCount = fileCount
    }
}

/// The audit's questions about the host, beyond what the loader asks.
public protocol AuditFileSystem: LoaderFileSystem {
    func exists(_ path: String) -> Bool
    /// True when both regular files hold the same bytes.
    func contentsEqual(_ a: String, _ b: String) -> Bool
    /// True when every one of `others` holds the same bytes as `first` (a duplicate group at once,
    /// so an adapter can read `first` once and share the work between cores).
    func allContentsEqual(_ first: String, _ others: [String]) -> Bool
}

extension AuditFileSystem {
    public func allContentsEqual(_ first: String, _ others: [String]) -> Bool {
        others.allSatisfy { contentsEqual(first, $0) }
    }
}
