import Foundation
import SentinelCore
import Testing

/// A table laid out as GNU ld does: a NUL, then each string and its NUL. `offsets[i]` is where `parts[i]` starts.
private func table(_ parts: [String], at fileOffset: UInt64 = 0x1000) -> (strings: DynamicStrings, offsets: [UInt64]) {
    var bytes: [UInt8] = [0]
    var offsets: [UInt64] = []
    for part in parts {
        offsets.append(UInt64(bytes.count))
        bytes += Array(part.utf8) + [0]
    }
    return (DynamicStrings(tableFileOffset: fileOffset, table: bytes, references: []), offsets)
}

private typealias Kind = DynamicStrings.ReferenceKind
private let hashed = "libcrypto-27e744a7.so.3"
private let canonical = "libcrypto.so.3"

private func refusal(_ result: Result<[StringPatch], RewriteRefusal>) -> String? {
    if case .failure(let refusal) = result { return refusal.reason }
    return nil
}

@Suite struct DynamicStringsModelTests {
    @Test func neededAndVersionFileSharingAStringGiveOnePatch() throws {
        var (strings, at) = table(["OPENSSL_init_crypto", hashed, "libc.so.6", "OPENSSL_3.0.0"])
        strings.references = [
            .init(kind: .symbolName, offset: at[0]), .init(kind: .needed, offset: at[1]), .init(kind: .needed, offset: at[2]),
            .init(kind: .versionNeedFile, offset: at[2]), .init(kind: .versionNeedFile, offset: at[1]),
            .init(kind: .versionNeedName, offset: at[3]),
        ]
        let patches = try strings.rewrite(hashed, to: canonical, kinds: [.needed, .versionNeedFile]).get()
        #expect(patches.count == 1)
        let patch = try #require(patches.first)
        #expect(patch.tableOffset == at[1])
        #expect(patch.fileOffset == 0x1000 + at[1])
        #expect(patch.kinds == [.needed, .versionNeedFile])
        #expect(patch.old == hashed && patch.new == canonical)
        #expect(patch.bytes == Array(canonical.utf8) + [UInt8](repeating: 0, count: hashed.utf8.count + 1 - canonical.utf8.count))
        #expect(patch.expected == Array(hashed.utf8) + [0])

        let after = try strings.applying(patches)
        #expect(after.string(at: at[1]) == canonical)
        #expect(after.string(at: at[2]) == "libc.so.6")
        #expect(after.string(at: at[0]) == "OPENSSL_init_crypto")
        #expect(after.table.count == strings.table.count)
        #expect(after.references == strings.references)
        // Only the old string's bytes changed.
        let changed = zip(strings.table, after.table).enumerated().filter { $0.element.0 != $0.element.1 }.map { UInt64($0.offset) }
        #expect(changed.allSatisfy { $0 >= at[1] && $0 <= at[1] + UInt64(hashed.utf8.count) })
        #expect(!changed.isEmpty)
    }

    @Test func aReferenceOfAKindNotRewrittenAtTheSameOffsetRefuses() {
        var (strings, at) = table([hashed])
        strings.references = [.init(kind: .needed, offset: at[0]), .init(kind: .versionNeedFile, offset: at[0])]
        let reason = refusal(strings.rewrite(hashed, to: canonical, kinds: [.needed]))
        #expect(reason == "\"\(hashed)\" at .dynstr+0x1 is also the .gnu.version_r file at .dynstr+0x1, which is not being rewritten: refusing to rewrite it in place")
    }

    @Test func distinctCopiesGiveOnePatchEach() throws {
        var (strings, at) = table([hashed, "x", hashed])
        strings.references = [.init(kind: .needed, offset: at[2]), .init(kind: .needed, offset: at[0]),
                              .init(kind: .versionNeedFile, offset: at[2]), .init(kind: .symbolName, offset: at[1])]
        let patches = try strings.rewrite(hashed, to: canonical, kinds: [.needed, .versionNeedFile]).get()
        #expect(patches.map(\.tableOffset) == [at[0], at[2]])
        #expect(patches.map(\.kinds) == [[.needed], [.needed, .versionNeedFile]])
        let after = try strings.applying(patches)
        #expect(after.string(at: at[0]) == canonical && after.string(at: at[2]) == canonical && after.string(at: at[1]) == "x")
    }

    @Test func tailMergedNeededRefusesBothWays() {
        var (strings, at) = table([hashed])
        let tail = at[0] + 16  // "a7.so.3"
        strings.references = [.init(kind: .needed, offset: at[0]), .init(kind: .needed, offset: tail)]
        #expect(strings.string(at: tail) == "a7.so.3")
        #expect(refusal(strings.rewrite(hashed, to: canonical, kinds: [.needed]))
            == "\"\(hashed)\" at .dynstr+0x1 shares bytes with DT_NEEDED \"a7.so.3\" at .dynstr+0x11 (tail-merged string): refusing to rewrite it in place")
        // The short one is the tail of the long one: rewriting it would change the long one too.
        #expect(refusal(strings.rewrite("a7.so.3", to: "b7.so.3", kinds: [.needed]))
            == "\"a7.so.3\" at .dynstr+0x11 shares bytes with DT_NEEDED \"\(hashed)\" at .dynstr+0x1 (tail-merged string): refusing to rewrite it in place")
    }

    @Test func symbolAndVersionNamesInsideTheStringRefuse() throws {
        var (strings, at) = table(["libcrypto_entry"])
        strings.references = [.init(kind: .soname, offset: at[0]), .init(kind: .symbolName, offset: at[0] + 3)]
        let reason = try #require(refusal(strings.rewrite("libcrypto_entry", to: "libc_entry", kinds: [.soname])))
        #expect(reason.contains("shares bytes with symbol \"crypto_entry\" at .dynstr+0x4"))

        strings.references = [.init(kind: .soname, offset: at[0]), .init(kind: .symbolName, offset: at[0])]
        #expect(refusal(strings.rewrite("libcrypto_entry", to: "libc_entry", kinds: [.soname]))?
            .contains("is also the symbol at .dynstr+0x1, which is not being rewritten") == true)

        strings.references = [.init(kind: .needed, offset: at[0]), .init(kind: .versionNeedName, offset: at[0] + 10)]
        #expect(refusal(strings.rewrite("libcrypto_entry", to: "x", kinds: [.needed]))?
            .contains(".gnu.version_r name \"entry\"") == true)

        // A reference to the old string's NUL (the empty string) is inside the changed bytes too.
        strings.references = [.init(kind: .needed, offset: at[0]), .init(kind: .otherDynamic, offset: at[0] + 15)]
        #expect(refusal(strings.rewrite("libcrypto_entry", to: "x", kinds: [.needed]))?
            .contains("shares bytes with dynamic entry \"\" at .dynstr+0x10") == true)

        // References outside the string, before or after it, are no conflict.
        var (two, at2) = table(["libcrypto_entry", "entry"])
        two.references = [.init(kind: .needed, offset: at2[0]), .init(kind: .symbolName, offset: at2[1]),
                          .init(kind: .symbolName, offset: 0)]
        #expect(try two.rewrite("libcrypto_entry", to: "libc_entry", kinds: [.needed]).get().count == 1)
    }

    @Test func sonameWithTheVerdefBaseEntry() throws {
        var (strings, at) = table([hashed, "OPENSSL_3.0.0"])
        strings.references = [.init(kind: .soname, offset: at[0]), .init(kind: .versionDefinitionBase, offset: at[0]),
                              .init(kind: .versionDefinitionName, offset: at[1])]
        #expect(refusal(strings.rewrite(hashed, to: canonical, kinds: [.soname]))?.contains(".gnu.version_d base") == true)
        let patches = try strings.rewrite(hashed, to: canonical, kinds: [.soname, .versionDefinitionBase]).get()
        #expect(patches.map(\.kinds) == [[.soname, .versionDefinitionBase]])
    }

    @Test func namesThatCannotBeWrittenInPlace() throws {
        var (strings, at) = table([canonical, hashed])
        strings.references = [.init(kind: .needed, offset: at[0]), .init(kind: .needed, offset: at[1])]
        #expect(refusal(strings.rewrite(canonical, to: hashed, kinds: [.needed]))
            == "cannot rewrite \"libcrypto.so.3\" to \"\(hashed)\" in place: the new name is longer (23 > 14 bytes)")
        #expect(refusal(strings.rewrite(hashed, to: "", kinds: [.needed]))?.contains("empty name") == true)
        #expect(refusal(strings.rewrite(hashed, to: "lib\u{0}x", kinds: [.needed]))?.contains("NUL") == true)
        #expect(refusal(strings.rewrite("", to: "x", kinds: [.needed]))?.contains("empty") == true)
        #expect(refusal(strings.rewrite(hashed, to: canonical, kinds: [.soname, .versionDefinitionBase]))
            == "no DT_SONAME or .gnu.version_d base reference names \"\(hashed)\"")
        #expect(refusal(strings.rewrite("libcrypto-27e744a7.so", to: canonical, kinds: [.needed]))?.contains("no DT_NEEDED") == true)
        #expect(refusal(strings.rewrite(hashed, to: canonical, kinds: []))?.hasPrefix("no reference names") == true)
        // Nothing to change is no patch.
        #expect(try strings.rewrite(hashed, to: hashed, kinds: [.needed]).get().isEmpty)
    }

    @Test func stringLookups() {
        let strings = DynamicStrings(tableFileOffset: 0, table: Array("\0abc\0de".utf8), references: [])
        #expect(strings.string(at: 0) == "")
        #expect(strings.string(at: 1) == "abc")
        #expect(strings.string(at: 3) == "c")
        #expect(strings.string(at: 5) == nil)  // no NUL before the end
        #expect(strings.string(at: 7) == nil)
        #expect(strings.string(at: .max) == nil)
    }

    @Test func patchesAreCheckedBeforeTheyApply() throws {
        var (strings, at) = table([hashed, "libssl-821e5a28.so.3"])
        strings.references = [.init(kind: .needed, offset: at[0]), .init(kind: .needed, offset: at[1])]
        let patch = try #require(try strings.rewrite(hashed, to: canonical, kinds: [.needed]).get().first)

        var edited = patch
        edited.bytes[canonical.utf8.count + 1] = UInt8(ascii: "x")
        #expect(StringPatch.problem(in: [edited]) != nil)
        #expect(throws: RewriteRefusal.self) { try strings.applying([edited]) }

        var short = patch
        short.bytes.removeLast()
        #expect(StringPatch.problem(in: [short]) != nil)

        var overlapping = patch
        overlapping.fileOffset += 2
        overlapping.tableOffset += 2
        #expect(StringPatch.problem(in: [patch, overlapping])?.reason.contains("overlap") == true)

        // Another table's patch, or this one applied twice, does not find its old string.
        var moved = patch
        moved.tableOffset = at[1]
        moved.fileOffset = 0x1000 + at[1]
        #expect(throws: RewriteRefusal.self) { try strings.applying([moved]) }
        let once = try strings.applying([patch])
        #expect(throws: RewriteRefusal.self) { try once.applying([patch]) }
        var elsewhere = strings
        elsewhere.tableFileOffset = 0x2000
        #expect(throws: RewriteRefusal.self) { try elsewhere.applying([patch]) }

        // A plan survives a round trip through JSON with the same meaning.
        let decoded = try JSONDecoder().decode([StringPatch].self, from: JSONEncoder().encode([patch]))
        #expect(decoded == [patch])
        #expect(String(decoding: try JSONEncoder().encode(patch.kinds), as: UTF8.self) == "[\"DT_NEEDED\"]")
    }
}
