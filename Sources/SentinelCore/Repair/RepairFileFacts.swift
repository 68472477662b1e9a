/// What the planner asks of a tree's files beyond their ELF model: the repair's window on the disk,
/// so the plan stays a pure function of its answers.
public protocol RepairFileFacts {
    /// Each file's dynamic string table and its references, or a one-line reason it cannot be read
    /// (all at once: an adapter may read them on every core).
    func dynamicStrings(_ paths: [String]) -> [String: Result<DynamicStrings, RewriteRefusal>]
    /// The integrity MAC that covers the file (a `.NAME.hmac` or `NAME.hmac` companion), if any.
    func integrityCompanion(_ path: String) -> String?
    /// Why the file may not be rewritten even in a copy (mode without a write bit, immutable flag), if so.
    func readOnlyReason(_ path: String) -> String?
    /// Names of the file outside the tree: hard links beyond the tree's own (`st_nlink` minus the
    /// tree's hard-linked names), which a removal would leave pointing at a file nobody maintains.
    func linksOutsideTree(_ file: BundleFile) -> Int
    /// The package that owns the path (`dpkg -S`), asked only when the tree is changed in place.
    func packageOwner(_ path: String) -> String?
    /// Which of the file's names in the tree (`relativePath` and `aliases`) are symlinks, with their text;
    /// the others are its hard links. A file with no hard link in the tree lives outside it.
    func symlinks(of file: BundleFile) -> [String: String]
}
