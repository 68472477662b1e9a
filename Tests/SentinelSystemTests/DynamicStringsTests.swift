import Foundation
import Glibc
import SentinelCore
import SentinelSystem
import SentinelTestSupport
import Testing

private let hashed = "libcrypto-27e744a7.so.3"
private let canonical = "libcrypto.so.3"
private let realLibssl = FixtureScripts.root + "/cxfreeze/debian/lib/libssl-821e5a28.so.3"
private let realLibcrypto = FixtureScripts.root + "/cxfreeze/debian/lib/libcrypto-27e744a7.so.3"

/// A fresh folder of gcc-built libraries for one test, removed by `remove()`.
private struct Lab {
    static let src = FixtureScripts.folder + "/src"
    let dir: String

    init(_ label: String) throws { dir = try Fixtures.temporaryDirectory("dynstr-\(label)") }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    func path(_ name: String) -> String { dir + "/" + name }

    /// A shared library with SONAME `soname` at `file` (default: named after the SONAME).
    @discardableResult
    func library(_ soname: String, file: String? = nil, source: String, _ extra: [String] = []) throws -> String {
        let out = path(file ?? soname)
        try gcc(["-shared", "-fPIC", "-O1", "-o", out, source, "-Wl,-soname," + soname, "-Wl,--no-as-needed"] + extra)
        return out
    }

    /// The fake libcrypto with version node OPENSSL_3.0.0, so consumers get a .gnu.version_r entry for it.
    @discardableResult
    func fakeCrypto(_ soname: String, file: String? = nil, _ extra: [String] = []) throws -> String {
        try library(soname, file: file, source: Self.src + "/fakecrypto.c", ["-Wl,--version-script," + Self.src + "/v30.map"] + extra)
    }

    /// scripts/fixtures/src/consumer.c (calls OPENSSL_init_crypto) linked with `libraries` found in the lab.
    @discardableResult
    func consumer(_ file: String, needs libraries: [String], _ extra: [String] = []) throws -> String {
        try library(file, source: Self.src + "/consumer.c", ["-L", dir] + libraries.map { "-l:" + $0 } + extra)
    }

    func write(_ name: String, _ text: String) throws -> String {
        try text.write(toFile: path(name), atomically: false, encoding: .utf8)
        return path(name)
    }

    func copy(_ from: String, to name: String) throws -> String {
        try FileManager.default.copyItem(atPath: from, toPath: path(name))
        return path(name)
    }
}

/// Runs gcc, throwing with its output when it fails.
private func gcc(_ arguments: [String]) throws {
    let r = try Subprocess.run(["/usr/bin/gcc"] + arguments)
    guard r.status == 0 else {
        throw FixtureError("gcc \(arguments.joined(separator: " ")) failed:\n" + r.text + r.stderr)
    }
}

private func bytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw FixtureError("cannot read \(path)") }
    return [UInt8](data)
}

private func readelf(_ arguments: [String]) throws -> [Substring] {
    try run("/usr/bin/readelf", ["-W"] + arguments).output.split(separator: "\n")
}

/// The bracketed value of `readelf -d` lines of one type: "(NEEDED)  Shared library: [libc.so.6]".
private func readelfDynamic(_ path: String, _ type: String) throws -> [String] {
    try readelf(["-d", path]).filter { $0.contains("(\(type))") }
        .compactMap { $0.split(separator: "[").last?.split(separator: "]").first.map(String.init) }
}

/// "File: X" of `readelf -V`'s .gnu.version_r entries.
private func readelfVersionNeedFiles(_ path: String) throws -> [String] {
    try readelf(["-V", path]).compactMap { line in
        guard let range = line.range(of: "File: ") else { return nil }
        return line[range.upperBound...].split(separator: " ").first.map(String.init)
    }
}

/// The name of `readelf -V`'s BASE version definition.
private func readelfVersionBase(_ path: String) throws -> String? {
    guard let line = try readelf(["-V", path]).first(where: { $0.contains("Flags: BASE") }),
          let range = line.range(of: "Name: ") else { return nil }
    return String(line[range.upperBound...])
}

/// `readelf -p .dynstr`: each string readelf lists, by offset (a tail-merged string has no line of its own).
private func readelfDynstr(_ path: String) throws -> [(offset: UInt64, string: String)] {
    try readelf(["-p", ".dynstr", path]).compactMap { line in
        guard let open = line.firstIndex(of: "["), let close = line.firstIndex(of: "]"),
              let offset = UInt64(line[line.index(after: open)..<close].trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
        return (offset, String(line[line.index(after: close)...].dropFirst(2)))
    }
}

private func needed(_ strings: DynamicStrings) -> [String] {
    strings.references.filter { $0.kind == .needed }.compactMap { strings.string(at: $0.offset) }
}

private func readError(_ path: String) -> DynamicStringsError? {
    do {
        _ = try DynamicStringsReader.read(path: path)
        return nil
    } catch {
        return error
    }
}

/// The offsets of the bytes that differ; files must be the same size.
private func changedOffsets(_ a: [UInt8], _ b: [UInt8]) -> [UInt64] {
    zip(a, b).enumerated().filter { $0.element.0 != $0.element.1 }.map { UInt64($0.offset) }
}

/// Checks that only bytes inside the patches' old strings changed, that some did, and that the file read
/// again is the model with the patches applied.
private func expectOnlyPatchedBytesChanged(_ before: [UInt8], _ path: String, _ patches: [StringPatch], _ strings: DynamicStrings) throws {
    let after = try bytes(path)
    #expect(after.count == before.count, "the file size changed")
    let changed = changedOffsets(before, after)
    #expect(!changed.isEmpty)
    for offset in changed {
        #expect(patches.contains { offset >= $0.fileOffset && offset < $0.fileOffset + UInt64($0.bytes.count) },
                "byte \(offset) changed outside every patch")
    }
    #expect(try DynamicStringsReader.read(path: path) == strings.applying(patches))
}

@Suite(.serialized) struct DynamicStringsTests {
    /// The classic case: a module needs the hashed libcrypto by DT_NEEDED and .gnu.version_r; after the
    /// rewrite it loads against a libcrypto.so.3 and nothing else of the file changed.
    @Test func neededRewriteKeepsTheConsumerLoadable() throws {
        let lab = try Lab("needed")
        defer { lab.remove() }
        try lab.fakeCrypto(hashed)
        let consumer = try lab.consumer("libconsumer.so", needs: [hashed])
        let main = try lab.write("main.c", """
            #include <stdio.h>
            extern int consumer_entry(void);
            int main(void) { int r = consumer_entry(); printf("consumer_entry=%d\\n", r); return r == 1 ? 0 : 3; }
            """)
        try gcc(["-O1", "-o", lab.path("main"), main, "-L", lab.dir, "-l:libconsumer.so", "-Wl,-rpath-link," + lab.dir])
        // The run folder: the consumer and a libcrypto.so.3 only, no hashed file.
        try FileManager.default.createDirectory(atPath: lab.path("run"), withIntermediateDirectories: false)
        try lab.fakeCrypto(canonical, file: "run/" + canonical)
        let installed = try lab.copy(consumer, to: "run/libconsumer.so")
        let environment = ["LD_LIBRARY_PATH": lab.path("run")]
        #expect(try run(lab.path("main"), [], environment: environment).status != 0, "loads before the rewrite: the test proves nothing")

        let before = try bytes(installed)
        let strings = try DynamicStringsReader.read(path: installed)
        #expect(needed(strings) == (try readelfDynamic(installed, "NEEDED")))
        let patches = try strings.rewrite(hashed, to: canonical, kinds: [.needed, .versionNeedFile]).get()
        // GNU ld writes one string for DT_NEEDED and vn_file.
        #expect(patches.map(\.kinds) == [[.needed, .versionNeedFile]])
        try DynamicStringsReader.apply(patches, toFileAt: installed)

        #expect(try readelfDynamic(installed, "NEEDED") == [canonical, "libc.so.6"])
        #expect(try readelfVersionNeedFiles(installed).sorted() == ["libc.so.6", canonical])
        #expect(try run("/usr/bin/patchelf", ["--print-needed", installed]).output == "\(canonical)\nlibc.so.6\n")
        try expectOnlyPatchedBytesChanged(before, installed, patches, strings)
        let after = try run(lab.path("main"), [], environment: environment)
        #expect(after.status == 0)
        #expect(after.output == "consumer_entry=1\n")
    }

    /// The hashed library's own name: DT_SONAME and the verdef BASE entry share one string.
    @Test func sonameRewriteOfTheHashedLibrary() throws {
        let lab = try Lab("soname")
        defer { lab.remove() }
        let library = try lab.fakeCrypto(hashed)
        let before = try bytes(library)
        let strings = try DynamicStringsReader.read(path: library)
        let soname = try #require(strings.references.first { $0.kind == .soname })
        #expect(strings.string(at: soname.offset) == hashed)
        #expect(strings.references.contains(.init(kind: .versionDefinitionBase, offset: soname.offset)))
        #expect(strings.references.contains { $0.kind == .versionDefinitionName && strings.string(at: $0.offset) == "OPENSSL_3.0.0" })
        #expect(strings.references.contains { $0.kind == .symbolName && strings.string(at: $0.offset) == "OPENSSL_init_crypto" })

        guard case .failure(let refusal) = strings.rewrite(hashed, to: canonical, kinds: [.soname]) else {
            Issue.record("a SONAME shared with the BASE entry was rewritten without it")
            return
        }
        #expect(refusal.reason.contains(".gnu.version_d base"))
        let patches = try strings.rewrite(hashed, to: canonical, kinds: [.soname, .versionDefinitionBase]).get()
        #expect(patches.map(\.kinds) == [[.soname, .versionDefinitionBase]])
        try DynamicStringsReader.apply(patches, toFileAt: library)

        #expect(try readelfDynamic(library, "SONAME") == [canonical])
        #expect(try readelfVersionBase(library) == canonical)
        try expectOnlyPatchedBytesChanged(before, library, patches, strings)
        // The linker now records the new name in what links against the file.
        let consumer = try lab.consumer("libconsumer.so", needs: [hashed])
        #expect(try readelfDynamic(consumer, "NEEDED").first == canonical)
    }

    /// A real auditwheel/patchelf-processed libssl (its .dynstr was moved by patchelf).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: realLibssl), "needs \(realLibssl): `make fixtures` builds it"))
    func realWorldLibssl() throws {
        let lab = try Lab("libssl")
        defer { lab.remove() }
        let library = try lab.copy(realLibssl, to: "libssl-821e5a28.so.3")
        let before = try bytes(library)
        let strings = try DynamicStringsReader.read(path: library)
        #expect(needed(strings) == (try readelfDynamic(library, "NEEDED")))

        let neededPatches = try strings.rewrite(hashed, to: canonical, kinds: [.needed, .versionNeedFile]).get()
        #expect(neededPatches.flatMap(\.kinds).sorted { $0.rawValue < $1.rawValue } == [.versionNeedFile, .needed])
        let sonamePatches = try strings.rewrite("libssl-821e5a28.so.3", to: "libssl.so.3", kinds: [.soname, .versionDefinitionBase]).get()
        // patchelf gave it a new SONAME string; the BASE entry kept the original "libssl.so.3".
        #expect(sonamePatches.map(\.kinds) == [[.soname]])
        let patches = neededPatches + sonamePatches
        try DynamicStringsReader.apply(patches, toFileAt: library)

        #expect(try readelfDynamic(library, "NEEDED").first == canonical)
        #expect(try readelfVersionNeedFiles(library).contains(canonical))
        #expect(try !readelfVersionNeedFiles(library).contains(hashed))
        #expect(try readelfDynamic(library, "SONAME") == ["libssl.so.3"])
        #expect(try run("/usr/bin/patchelf", ["--print-soname", library]).output == "libssl.so.3\n")
        try expectOnlyPatchedBytesChanged(before, library, patches, strings)
    }

    /// The real libcrypto next to it: its verdef BASE entry kept the original "libcrypto.so.3" string, so
    /// only DT_SONAME names the hashed one.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: realLibcrypto), "needs \(realLibcrypto): `make fixtures` builds it"))
    func realWorldLibcryptoSoname() throws {
        let lab = try Lab("libcrypto")
        defer { lab.remove() }
        let library = try lab.copy(realLibcrypto, to: hashed)
        let before = try bytes(library)
        let strings = try DynamicStringsReader.read(path: library)
        let base = try #require(strings.references.first { $0.kind == .versionDefinitionBase })
        #expect(strings.string(at: base.offset) == canonical)
        let patches = try strings.rewrite(hashed, to: canonical, kinds: [.soname, .versionDefinitionBase]).get()
        #expect(patches.map(\.kinds) == [[.soname]])
        try DynamicStringsReader.apply(patches, toFileAt: library)
        #expect(try readelfDynamic(library, "SONAME") == [canonical])
        try expectOnlyPatchedBytesChanged(before, library, patches, strings)
    }

    /// GNU ld tail-merges .dynstr: "a7.so.3" is the last bytes of "libcrypto-27e744a7.so.3".
    @Test func tailMergedNeededIsRefused() throws {
        let lab = try Lab("tail")
        defer { lab.remove() }
        try lab.fakeCrypto(hashed)
        try lab.library("a7.so.3", source: Lab.src + "/plain.c")
        let consumer = try lab.consumer("libconsumer.so", needs: [hashed, "a7.so.3"])
        #expect(try readelfDynamic(consumer, "NEEDED") == [hashed, "a7.so.3", "libc.so.6"])
        let listed = try readelfDynstr(consumer)
        let long = try #require(listed.first { $0.string == hashed }, "\(listed)")
        #expect(!listed.contains { $0.string == "a7.so.3" }, "the linker did not tail-merge: \(listed)")

        let before = try bytes(consumer)
        let strings = try DynamicStringsReader.read(path: consumer)
        #expect(strings.references.contains(.init(kind: .needed, offset: long.offset + 16)))
        #expect(strings.string(at: long.offset + 16) == "a7.so.3")
        let result = strings.rewrite(hashed, to: canonical, kinds: [.needed, .versionNeedFile])
        let position = { (offset: UInt64) in ".dynstr+0x" + String(offset, radix: 16) }
        #expect(result == .failure(RewriteRefusal(
            "\"\(hashed)\" at \(position(long.offset)) shares bytes with DT_NEEDED \"a7.so.3\" at \(position(long.offset + 16)) "
                + "(tail-merged string): refusing to rewrite it in place")))
        guard case .failure(let reverse) = strings.rewrite("a7.so.3", to: "b7.so.3", kinds: [.needed]) else {
            Issue.record("rewrote the tail of another DT_NEEDED")
            return
        }
        #expect(reverse.reason.contains("shares bytes with DT_NEEDED \"\(hashed)\""))
        #expect(try bytes(consumer) == before)
    }

    /// A symbol name inside a DT_SONAME string: tail-merged, or the very same string.
    @Test func symbolNameSharingTheStringIsRefused() throws {
        let lab = try Lab("symbol")
        defer { lab.remove() }
        let source = try lab.write("entry.c", "int crypto_entry(void) { return 7; }\n")
        let tail = try lab.library("libcrypto_entry", source: source)
        #expect(try !readelfDynstr(tail).contains { $0.string == "crypto_entry" }, "the linker did not tail-merge")
        let strings = try DynamicStringsReader.read(path: tail)
        guard case .failure(let refusal) = strings.rewrite("libcrypto_entry", to: "libc_entry", kinds: [.soname]) else {
            Issue.record("rewrote a SONAME whose tail is a symbol name")
            return
        }
        #expect(refusal.reason.contains("shares bytes with symbol \"crypto_entry\""), "\(refusal)")

        let same = try lab.library("crypto_entry", source: source)
        let sameStrings = try DynamicStringsReader.read(path: same)
        guard case .failure(let sameRefusal) = sameStrings.rewrite("crypto_entry", to: "crypto_x", kinds: [.soname]) else {
            Issue.record("rewrote a SONAME that is also a symbol name")
            return
        }
        #expect(sameRefusal.reason.contains("is also the symbol at"), "\(sameRefusal)")
    }

    @Test func longerNamesAndChangedFilesAreRefused() throws {
        let lab = try Lab("changed")
        defer { lab.remove() }
        try lab.fakeCrypto(hashed)
        let consumer = try lab.consumer("libconsumer.so", needs: [hashed])
        let strings = try DynamicStringsReader.read(path: consumer)
        guard case .failure(let longer) = strings.rewrite(hashed, to: hashed + ".1", kinds: [.needed, .versionNeedFile]) else {
            Issue.record("a longer name was accepted")
            return
        }
        #expect(longer.reason.contains("longer"))

        let patches = try strings.rewrite(hashed, to: canonical, kinds: [.needed, .versionNeedFile]).get()
        let patch = try #require(patches.first)
        // Someone rewrites the file between the read and the apply.
        var modified = try bytes(consumer)
        modified[Int(patch.fileOffset) + 3] = UInt8(ascii: "C")
        try Data(modified).write(to: URL(fileURLWithPath: consumer))
        let error = #expect(throws: DynamicStringsError.self) { try DynamicStringsReader.apply(patches, toFileAt: consumer) }
        if case .changed = error {} else { Issue.record("not refused as changed: \(String(describing: error))") }
        #expect("\(String(describing: error))".contains("file changed since it was read"))
        #expect(try bytes(consumer) == modified)

        // Not through a symbolic link (O_NOFOLLOW).
        try FileManager.default.removeItem(atPath: consumer)
        try lab.consumer("libconsumer.so", needs: [hashed])
        let original = try bytes(consumer)
        try FileManager.default.createSymbolicLink(atPath: lab.path("link.so"), withDestinationPath: consumer)
        #expect(throws: DynamicStringsError.cannotOpen(errno: ELOOP)) {
            try DynamicStringsReader.apply(patches, toFileAt: lab.path("link.so"))
        }
        #expect(try bytes(consumer) == original)
    }

    /// Every prefix of a real library is refused with a one-line reason, never a crash.
    @Test func truncatedCopiesThrow() throws {
        let lab = try Lab("truncated")
        defer { lab.remove() }
        let library = try bytes(try lab.fakeCrypto(hashed))
        let cut = lab.path("cut.so")
        var reasons: Set<String> = []
        for length in stride(from: 0, to: library.count, by: 97) {
            try Data(library.prefix(length)).write(to: URL(fileURLWithPath: cut))
            let error = try #require(readError(cut), "a copy cut at \(length) of \(library.count) bytes was read")
            #expect(!"\(error)".contains("\n"))
            reasons.insert("\(error)".components(separatedBy: ":").first ?? "")
        }
        #expect(reasons.contains("truncated"), "\(reasons)")
        #expect(reasons.contains("not an ELF file"), "\(reasons)")
    }

    @Test func hostileDynamicEntriesThrow() throws {
        let lab = try Lab("hostile")
        defer { lab.remove() }
        try lab.fakeCrypto(hashed)
        let original = try ELF64(path: try lab.consumer("libconsumer.so", needs: [hashed]))
        let path = lab.path("hostile.so")

        // DT_STRSZ past the end of the file.
        var pastEnd = original
        let strsz = try #require(pastEnd.dynamicEntries.first { $0.tag == 10 })
        pastEnd.set(strsz.valueAt, 8, UInt64(pastEnd.data.count) + 4096)
        try pastEnd.write(to: path)
        let pastEndError = try #require(readError(path))
        guard case .truncated = pastEndError else { Issue.record("\(pastEndError)"); return }
        #expect("\(pastEndError)".hasPrefix("truncated: dynamic string table"), "\(pastEndError)")

        // A DT_STRSZ that would be a huge allocation.
        pastEnd.set(strsz.valueAt, 8, 1 << 40)
        try pastEnd.write(to: path)
        #expect(readError(path) != nil)

        // A DT_NEEDED offset outside the table.
        var outside = original
        let neededEntry = try #require(outside.dynamicEntries.first { $0.tag == 1 })
        outside.set(neededEntry.valueAt, 8, original.u(strsz.valueAt, 8) + 10)
        try outside.write(to: path)
        let outsideError = try #require(readError(path))
        #expect("\(outsideError)".contains("outside the dynamic string table"), "\(outsideError)")

        // .dynsym naming its strings in another table: the rewrite would not be the whole story.
        var otherTable = original
        let dynsym = try #require(otherTable.sections.first { $0.type == 11 })
        let strtab = try #require(otherTable.sections.first { $0.type == 3 && $0.offset != otherTable.sections[dynsym.link].offset })
        otherTable.set(dynsym.headerAt + 0x28, 4, UInt64(strtab.index))
        try otherTable.write(to: path)
        let otherError = try #require(readError(path))
        guard case .unsupported = otherError else { Issue.record("\(otherError)"); return }
        #expect("\(otherError)".contains("not the dynamic string table"), "\(otherError)")

        // Not ELF at all.
        #expect(readError(try lab.write("text.so", "not an ELF file\n")) == .notELF(reason: "no ELF magic number"))
        #expect(readError(lab.dir) == .notELF(reason: "not a regular file"))
    }

    /// The loader's view without section headers (sstrip'd files: .dynsym counted through DT_GNU_HASH or
    /// DT_HASH), and big-endian copies read through gelf, must give the same model.
    @Test(arguments: ["gnu", "sysv"])
    func strippedAndBigEndianCopiesReadTheSame(hashStyle: String) throws {
        let lab = try Lab("byteorder-\(hashStyle)")
        defer { lab.remove() }
        let style = "-Wl,--hash-style=" + hashStyle
        let library = try lab.fakeCrypto(hashed, [style])
        let consumer = try lab.consumer("libconsumer.so", needs: [hashed], [style])
        for path in [library, consumer] {
            let expected = try DynamicStringsReader.read(path: path)
            #expect(expected.references.contains { $0.kind == .symbolName && expected.string(at: $0.offset) == "OPENSSL_init_crypto" })
            let little = try ELF64(path: path)
            let big = little.bigEndian()
            let variants: [(String, [UInt8])] = [
                ("stripped", ELF64.withoutSectionHeaders(little.data)),
                ("big-endian", big),
                ("stripped big-endian", ELF64.withoutSectionHeaders(big)),
            ]
            for (name, data) in variants {
                let copy = lab.path("copy.so")
                try Data(data).write(to: URL(fileURLWithPath: copy))
                let read = try DynamicStringsReader.read(path: copy)
                #expect(read == expected, "\(name) copy of \(path)")
                if name == "big-endian" {
                    #expect(try readelfDynamic(copy, "NEEDED") == (try readelfDynamic(path, "NEEDED")))
                }
            }
        }
    }

    @Test(.enabled(if: elf32Toolchain, "gcc -m32 cannot build a shared object here"))
    func elf32ConsumerRewrite() throws {
        let lab = try Lab("elf32")
        defer { lab.remove() }
        try lab.fakeCrypto(hashed, ["-m32", "-nostdlib"])
        let consumer = try lab.consumer("libconsumer.so", needs: [hashed], ["-m32", "-nostdlib"])
        #expect(try readelf(["-h", consumer]).contains { $0.contains("ELF32") })
        let before = try bytes(consumer)
        let strings = try DynamicStringsReader.read(path: consumer)
        #expect(needed(strings) == [hashed])
        let patches = try strings.rewrite(hashed, to: canonical, kinds: [.needed, .versionNeedFile]).get()
        #expect(patches.map(\.kinds) == [[.needed, .versionNeedFile]])
        try DynamicStringsReader.apply(patches, toFileAt: consumer)
        #expect(try readelfDynamic(consumer, "NEEDED") == [canonical])
        #expect(try readelfVersionNeedFiles(consumer) == [canonical])
        try expectOnlyPatchedBytesChanged(before, consumer, patches, strings)
    }
}

/// Whether gcc builds 32-bit shared objects (without a 32-bit libc: -nostdlib).
private let elf32Toolchain: Bool = {
    guard let lab = try? Lab("m32") else { return false }
    defer { lab.remove() }
    guard let source = try? lab.write("x.c", "int x(void) { return 1; }\n") else { return false }
    return (try? gcc(["-m32", "-shared", "-fPIC", "-nostdlib", "-o", lab.path("x.so"), source])) != nil
}()

/// Just enough of a little-endian ELF64 file to corrupt it on purpose and to make the copies the
/// reader must read the same: without section headers, and in the other byte order.
private struct ELF64 {
    struct Section { var index: Int; var type: UInt64; var offset: Int; var size: Int; var link: Int; var headerAt: Int }

    var data: [UInt8]

    init(path: String) throws { try self.init(data: bytes(path)) }

    init(data: [UInt8]) throws {
        guard data.count >= 64, data[4] == 2, data[5] == 1 else { throw FixtureError("not a little-endian ELF64 file") }
        self.data = data
    }

    func u(_ at: Int, _ size: Int) -> UInt64 { (0..<size).reversed().reduce(0) { $0 << 8 | UInt64(data[at + $1]) } }

    mutating func set(_ at: Int, _ size: Int, _ value: UInt64) {
        for k in 0..<size { data[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
    }

    func write(to path: String) throws { try Data(data).write(to: URL(fileURLWithPath: path)) }

    var sections: [Section] {
        let shoff = Int(u(0x28, 8)), count = Int(u(0x3c, 2))
        return (0..<count).map { index in
            let at = shoff + index * 64
            return Section(index: index, type: u(at + 4, 4), offset: Int(u(at + 0x18, 8)), size: Int(u(at + 0x20, 8)),
                           link: Int(u(at + 0x28, 4)), headerAt: at)
        }
    }

    /// PT_DYNAMIC's entries: each tag and where its value is in the file.
    var dynamicEntries: [(tag: UInt64, valueAt: Int)] {
        let phoff = Int(u(0x20, 8)), count = Int(u(0x38, 2))
        guard let header = (0..<count).map({ phoff + $0 * 56 }).first(where: { u($0, 4) == 2 }) else { return [] }
        let offset = Int(u(header + 8, 8)), size = Int(u(header + 0x20, 8))
        return stride(from: offset, to: offset + size, by: 16).map { (u($0, 8), $0 + 8) }
    }

    /// `data` with no section table (e_shoff, e_shnum, e_shstrndx zero: the same in either byte order).
    static func withoutSectionHeaders(_ data: [UInt8]) -> [UInt8] {
        var copy = data
        for at in Array(0x28..<0x30) + [0x3c, 0x3d, 0x3e, 0x3f] { copy[at] = 0 }
        return copy
    }

    /// The same file in big-endian byte order: the headers and the sections the reader and readelf -d/-V
    /// look at (others keep their bytes; strings have no byte order).
    func bigEndian() -> [UInt8] {
        var out = self
        func swap(_ at: Int, _ sizes: [Int]) {
            var p = at
            for size in sizes {
                out.data[p..<p + size].reverse()
                p += size
            }
        }
        for section in sections {
            let (offset, size) = (section.offset, section.size)
            switch section.type {
            case 6: for at in stride(from: offset, to: offset + size, by: 16) { swap(at, [8, 8]) }  // SHT_DYNAMIC
            case 11: for at in stride(from: offset, to: offset + size, by: 24) { swap(at, [4, 1, 1, 2, 8, 8]) }  // SHT_DYNSYM
            case 5: for at in stride(from: offset, to: offset + size, by: 4) { swap(at, [4]) }  // SHT_HASH
            case 0x6fff_fff6:  // SHT_GNU_HASH: 4 words, 64-bit Bloom words, then 32-bit buckets and chains
                let bloom = Int(u(offset + 8, 4))
                swap(offset, [4, 4, 4, 4])
                for k in 0..<bloom { swap(offset + 16 + 8 * k, [8]) }
                for at in stride(from: offset + 16 + 8 * bloom, to: offset + size, by: 4) { swap(at, [4]) }
            case 0x6fff_ffff: for at in stride(from: offset, to: offset + size, by: 2) { swap(at, [2]) }  // SHT_GNU_versym
            case 0x6fff_fffe:  // SHT_GNU_verneed
                var entry = offset
                while true {
                    let next = Int(u(entry + 12, 4))
                    var aux = entry + Int(u(entry + 8, 4))
                    while true {
                        let auxNext = Int(u(aux + 12, 4))
                        swap(aux, [4, 2, 2, 4, 4])
                        if auxNext == 0 { break }
                        aux += auxNext
                    }
                    swap(entry, [2, 2, 4, 4, 4])
                    if next == 0 { break }
                    entry += next
                }
            case 0x6fff_fffd:  // SHT_GNU_verdef
                var entry = offset
                while true {
                    let next = Int(u(entry + 16, 4))
                    var aux = entry + Int(u(entry + 12, 4))
                    while true {
                        let auxNext = Int(u(aux + 4, 4))
                        swap(aux, [4, 4])
                        if auxNext == 0 { break }
                        aux += auxNext
                    }
                    swap(entry, [2, 2, 2, 2, 4, 4, 4])
                    if next == 0 { break }
                    entry += next
                }
            default: break
            }
            swap(section.headerAt, [4, 4, 8, 8, 8, 8, 4, 4, 8, 8])
        }
        let phoff = Int(u(0x20, 8))
        for index in 0..<Int(u(0x38, 2)) { swap(phoff + index * 56, [4, 4, 8, 8, 8, 8, 8, 8]) }
        swap(16, [2, 2, 4, 8, 8, 8, 4, 2, 2, 2, 2, 2, 2])
        out.data[5] = 2
        return out.data
    }
}
