import Glibc

/// Why a file's dynamic strings could not be read or patched. `description` is one line, without the
/// path (the caller adds it).
public enum DynamicStringsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// open(2) or stat(2) failed (ELOOP: the path is a symbolic link, which `apply` does not follow).
    case cannotOpen(errno: Int32)
    /// fstat(2) or pread(2) failed on an open file.
    case cannotRead(errno: Int32)
    /// pwrite(2) or fsync(2) failed: some patches may be on disk.
    case cannotWrite(errno: Int32)
    /// Not a regular file, or not ELF.
    case notELF(reason: String)
    /// A structure runs past the end of the file.
    case truncated(what: String, end: UInt64, fileSize: UInt64)
    /// libelf or a bounds check refused a structure.
    case corrupt(what: String, reason: String)
    /// A valid file this in-place rewrite does not handle (another string table for some references,
    /// no way to count .dynsym): the caller refuses the file.
    case unsupported(reason: String)
    /// The patches themselves are inconsistent (see `StringPatch.problem(in:)`).
    case invalidPatch(reason: String)
    /// The bytes a patch replaces are not the old string any more: the file changed since it was read.
    case changed(reason: String)

    public var description: String {
        let text: String
        switch self {
        case .cannotOpen(let code) where code == ELOOP: text = "cannot open: it is a symbolic link"
        case .cannotOpen(let code): text = "cannot open: \(Self.errnoText(code))"
        case .cannotRead(let code): text = "cannot read: \(Self.errnoText(code))"
        case .cannotWrite(let code): text = "cannot write: \(Self.errnoText(code))"
        case .notELF(let reason): text = "not an ELF file: \(reason)"
        case .truncated(let what, let end, let size): text = "truncated: \(what) ends at byte \(end), file has \(size)"
        case .corrupt(let what, let reason): text = "corrupt \(what): \(reason)"
        case .unsupported(let reason): text = "cannot rewrite in place: \(reason)"
        case .invalidPatch(let reason): text = "invalid patch: \(reason)"
        case .changed(let reason): text = "file changed since it was read: \(reason)"
        }
        return String(text.map { $0.isNewline ? " " : $0 })
    }

    private static func errnoText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }
}
