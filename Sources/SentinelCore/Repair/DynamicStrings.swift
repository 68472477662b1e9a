/// A file's dynamic string table and every reference into it.
public struct DynamicStrings: Sendable, Hashable {
    public enum ReferenceKind: String, Sendable, Hashable, Codable {
        case needed = "DT_NEEDED", soname = "DT_SONAME", rpath = "DT_RPATH", runpath = "DT_RUNPATH",
             otherDynamic = "dynamic"          // DT_AUXILIARY, DT_FILTER, DT_CONFIG, DT_AUDIT, DT_DEPAUDIT, …
        case versionNeedFile = ".gnu.version_r file", versionNeedName = ".gnu.version_r name",
             versionDefinitionBase = ".gnu.version_d base", versionDefinitionName = ".gnu.version_d name",
             symbolName = "symbol"
    }

    public struct Reference: Sendable, Hashable {
        public var kind: ReferenceKind
        /// Into the table.
        public var offset: UInt64

        public init(kind: ReferenceKind, offset: UInt64) {
            self.kind = kind
            self.offset = offset
        }
    }

    /// Where the table starts in the file.
    public var tableFileOffset: UInt64
    /// The table's bytes (DT_STRSZ of them).
    public var table: [UInt8]
    public var references: [Reference]

    public init(tableFileOffset: UInt64, table: [UInt8], references: [Reference]) {
        self.tableFileOffset = tableFileOffset
        self.table = table
        self.references = references
    }

    /// The NUL-terminated string at `offset`, as file names are carried (EscapedBytes); nil when
    /// `offset` is past the end or no NUL follows inside the table.
    public func string(at offset: UInt64) -> String? {
        guard let length = length(at: offset) else { return nil }
        let start = Int(offset)
        return EscapedBytes.string(table[start..<start + length])
    }

    /// The length of the string at `offset`, without its NUL.
    func length(at offset: UInt64) -> Int? {
        guard offset < UInt64(table.count) else { return nil }
        let start = Int(offset)
        return table[start...].firstIndex(of: 0).map { $0 - start }
    }
}

extension DynamicStrings {
    /// Rewrites every reference of one of `kinds` whose string is `old` to `new`. Refuses (with a one-line reason) when
    /// new is longer than old, new contains a NUL or is empty, no such reference exists, or ANY other reference (of any
    /// kind, including symbol names and version names) points into the bytes [offset, offset + old.count] of a string
    /// being changed (tail-merged strings: e.g. a DT_NEEDED "a7.so.3" sharing the tail of "libcrypto-27e744a7.so.3",
    /// or a reference of a kind not being rewritten pointing at the same offset). A reference whose own string runs
    /// into those bytes (the changed string is the tail of a longer one) is refused the same way.
    /// Several references at the same offset of rewritten kinds (DT_NEEDED and .gnu.version_r file usually share one
    /// string) give one patch listing all kinds. Distinct copies of the same string give one patch each.
    /// `old == new` with a matching reference gives no patches: nothing changes.
    public func rewrite(_ old: String, to new: String, kinds: Set<ReferenceKind>) -> Result<[StringPatch], RewriteRefusal> {
        let oldBytes = EscapedBytes.bytes(old), newBytes = EscapedBytes.bytes(new)
        let quotedOld = "\"\(old)\""
        guard !oldBytes.isEmpty, !oldBytes.contains(0) else {
            return .failure(RewriteRefusal("cannot rewrite \(quotedOld): the old name is empty or holds a NUL byte"))
        }
        guard !newBytes.isEmpty else { return .failure(RewriteRefusal("cannot rewrite \(quotedOld) to an empty name")) }
        guard !newBytes.contains(0) else {
            return .failure(RewriteRefusal("cannot rewrite \(quotedOld): the new name \"\(new)\" holds a NUL byte"))
        }
        guard newBytes.count <= oldBytes.count else {
            return .failure(RewriteRefusal(
                "cannot rewrite \(quotedOld) to \"\(new)\" in place: the new name is longer (\(newBytes.count) > \(oldBytes.count) bytes)"))
        }

        // The offsets whose string is `old` and that a reference of a rewritten kind names, in table order.
        var targets: [UInt64] = []
        for reference in references where kinds.contains(reference.kind) && holds(oldBytes, at: reference.offset) {
            if !targets.contains(reference.offset) { targets.append(reference.offset) }
        }
        targets.sort()
        guard !targets.isEmpty else {
            let wanted = ReferenceKind.ordered.filter(kinds.contains).map(\.label).joined(separator: " or ")
            return .failure(RewriteRefusal("no \(wanted.isEmpty ? "" : wanted + " ")reference names \(quotedOld)"))
        }

        for target in targets {
            // Bytes [target, last] change (the NUL included). A reference shares them when it starts inside,
            // or starts before and its string runs into them (no NUL between it and `target`).
            let last = target + UInt64(oldBytes.count)
            let runStart = UInt64(table[..<Int(target)].lastIndex(of: 0).map { $0 + 1 } ?? 0)
            for reference in references where reference.offset >= runStart && reference.offset <= last {
                if reference.offset == target {
                    guard !kinds.contains(reference.kind) else { continue }
                    return .failure(RewriteRefusal(
                        "\(quotedOld) at \(Self.position(target)) is also the \(reference.kind.label) at \(Self.position(target)), "
                            + "which is not being rewritten: refusing to rewrite it in place"))
                }
                let other = string(at: reference.offset) ?? ""
                return .failure(RewriteRefusal(
                    "\(quotedOld) at \(Self.position(target)) shares bytes with \(reference.kind.label) \"\(other)\" at "
                        + "\(Self.position(reference.offset)) (tail-merged string): refusing to rewrite it in place"))
            }
        }
        guard oldBytes != newBytes else { return .success([]) }

        let bytes = newBytes + [UInt8](repeating: 0, count: oldBytes.count + 1 - newBytes.count)
        return .success(targets.map { target in
            let kindsHere = references.filter { $0.offset == target && kinds.contains($0.kind) }.map(\.kind)
                .reduce(into: [ReferenceKind]()) { if !$0.contains($1) { $0.append($1) } }
            return StringPatch(tableOffset: target, fileOffset: tableFileOffset + target, old: old, new: new,
                               kinds: kindsHere, bytes: bytes)
        })
    }

    /// The table after `patches`, for the caller to compare with the file read again. Checked as a file
    /// is before it is written: each patch's old string and its NUL in place, no two patches overlapping.
    public func applying(_ patches: [StringPatch]) throws(RewriteRefusal) -> DynamicStrings {
        if let problem = StringPatch.problem(in: patches) { throw problem }
        var result = self
        for patch in patches {
            let expected = patch.expected
            guard patch.fileOffset == tableFileOffset + patch.tableOffset,
                  patch.tableOffset <= UInt64(table.count), UInt64(table.count) - patch.tableOffset >= UInt64(expected.count) else {
                throw RewriteRefusal("the patch of \"\(patch.old)\" at \(Self.position(patch.tableOffset)) is not inside this table")
            }
            let start = Int(patch.tableOffset)
            guard Array(table[start..<start + expected.count]) == expected else {
                throw RewriteRefusal("\(Self.position(patch.tableOffset)) does not hold \"\(patch.old)\": the patch is not for this table")
            }
            result.table.replaceSubrange(start..<start + expected.count, with: patch.bytes)
        }
        return result
    }

    /// Whether the string at `offset` is exactly `bytes`.
    private func holds(_ bytes: [UInt8], at offset: UInt64) -> Bool {
        guard offset < UInt64(table.count), UInt64(table.count) - offset > UInt64(bytes.count) else { return false }
        let start = Int(offset)
        return table[start + bytes.count] == 0 && table[start..<start + bytes.count].elementsEqual(bytes)
    }

    /// ".dynstr+0x1a2f": how reasons name a place in the table.
    static func position(_ offset: UInt64) -> String { ".dynstr+0x" + String(offset, radix: 16) }
}

extension DynamicStrings.ReferenceKind {
    /// How a refusal names the kind: the raw value, except the catch-all for other dynamic tags.
    var label: String { self == .otherDynamic ? "dynamic entry" : rawValue }

    /// Every kind, in declaration order: a refusal lists the kinds asked for in a stable order.
    static let ordered: [Self] = [.needed, .soname, .rpath, .runpath, .otherDynamic, .versionNeedFile, .versionNeedName,
                                  .versionDefinitionBase, .versionDefinitionName, .symbolName]
}
