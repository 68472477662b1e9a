/// One in-place string rewrite: `bytes` go to `fileOffset` (same length as the old string + its NUL).
public struct StringPatch: Sendable, Hashable, Codable {
    /// Where the old string starts in the dynamic string table.
    public var tableOffset: UInt64
    /// Where it starts in the file.
    public var fileOffset: UInt64
    public var old: String
    public var new: String
    /// The kinds of the references that name the string (all of them are rewritten).
    public var kinds: [DynamicStrings.ReferenceKind]
    /// The new name, then NUL bytes up to the old string's NUL.
    public var bytes: [UInt8]

    public init(tableOffset: UInt64, fileOffset: UInt64, old: String, new: String,
                kinds: [DynamicStrings.ReferenceKind], bytes: [UInt8]) {
        self.tableOffset = tableOffset
        self.fileOffset = fileOffset
        self.old = old
        self.new = new
        self.kinds = kinds
        self.bytes = bytes
    }

    /// What must be at `fileOffset` before the patch is written: the old string and its NUL.
    public var expected: [UInt8] { EscapedBytes.bytes(old) + [0] }

    /// Why `patches` cannot be written together, or nil: a patch whose bytes are not its new name padded
    /// with NULs to the old string's length (a decoded plan may have been edited), or two patches that
    /// overlap (each is checked against the file before any is written, so overlapping ones would both pass).
    public static func problem(in patches: [StringPatch]) -> RewriteRefusal? {
        for patch in patches {
            let new = EscapedBytes.bytes(patch.new), expected = patch.expected
            guard !new.isEmpty, !new.contains(0), expected.count > 1, !expected.dropLast().contains(0),
                  patch.bytes.count == expected.count, patch.bytes.starts(with: new),
                  patch.bytes.dropFirst(new.count).allSatisfy({ $0 == 0 }) else {
                return RewriteRefusal("the patch of \"\(patch.old)\" to \"\(patch.new)\" at file offset \(patch.fileOffset) "
                                          + "is not the new name padded with NULs to the old name's length")
            }
            guard patch.fileOffset <= UInt64.max - UInt64(expected.count) else {
                return RewriteRefusal("the patch of \"\(patch.old)\" has file offset \(patch.fileOffset), out of range")
            }
        }
        let sorted = patches.sorted { $0.fileOffset < $1.fileOffset }
        for (first, second) in zip(sorted, sorted.dropFirst())
        where first.fileOffset + UInt64(first.bytes.count) > second.fileOffset {
            return RewriteRefusal("the patches of \"\(first.old)\" and \"\(second.old)\" overlap at file offset \(second.fileOffset)")
        }
        return nil
    }
}
