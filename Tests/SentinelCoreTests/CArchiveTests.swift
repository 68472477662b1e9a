import SentinelCore
import Testing

/// PyInstaller's CArchive as PyInstaller/archive/writers.py lays it out: data, TOC (16-byte aligned
/// entries), 88-byte cookie, big-endian.
@Suite struct CArchiveTests {
    struct Item { var name: String; var code: Character; var data: [UInt8]; var full: UInt32? = nil; var packed = false }

    static func archive(_ items: [Item], tocLength: Int? = nil, archiveLength: Int? = nil, magic: UInt8 = 0x0e) -> [UInt8] {
        func be(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
        var data: [UInt8] = [], toc: [UInt8] = []
        for item in items {
            var name = Array(item.name.utf8) + [0]
            name += [UInt8](repeating: 0, count: (16 - (18 + name.count) % 16) % 16)
            toc += be(18 + name.count) + be(data.count) + be(item.data.count) + be(Int(item.full ?? UInt32(item.data.count)))
            toc += [item.packed ? 1 : 0, item.code.asciiValue!] + name
            data += item.data
        }
        let total = data.count + toc.count + 88
        let library = Array("libpython3.11.so.1.0".utf8)
        let cookie = [0x4d, 0x45, 0x49, 0x0c, 0x0b, 0x0a, 0x0b, magic] + be(archiveLength ?? total) + be(data.count)
            + be(tocLength ?? toc.count) + be(311) + library + [UInt8](repeating: 0, count: 64 - library.count)
        return data + toc + cookie
    }

    static func parse(_ bytes: [UInt8]) throws -> (CArchive.Cookie, [CArchive.Entry]) {
        let cookie = try CArchive.cookie(bytes.suffix(CArchive.cookieSize), available: UInt64(bytes.count))
        let start = bytes.count - Int(cookie.archiveLength)
        let toc = bytes[(start + Int(cookie.tocOffset))..<(start + Int(cookie.tocOffset) + Int(cookie.tocLength))]
        return (cookie, try CArchive.entries(toc: toc, cookie: cookie))
    }

    @Test func onefileEntriesOptionsAndSymlinks() throws {
        let bytes = Self.archive([
            Item(name: "pyi-contents-directory _internal", code: "o", data: []),
            Item(name: "libcrypto.so.3", code: "b", data: [0x78, 0x9c, 1, 2], full: 5_000_000, packed: true),
            Item(name: "psycopg2_binary.libs/libcrypto-abcdef12.so.3", code: "b", data: [0x7f, 0x45, 0x4c, 0x46]),
            Item(name: "lib/libz.so", code: "n", data: Array("../libz.so.1\0".utf8)),
            Item(name: "PYZ.pyz", code: "z", data: [1, 2, 3]),
        ])
        let (cookie, entries) = try Self.parse(bytes)
        #expect(cookie.pythonVersion == 311 && cookie.pythonLibrary == "libpython3.11.so.1.0")
        #expect(entries.map(\.name) == ["pyi-contents-directory _internal", "libcrypto.so.3",
                                        "psycopg2_binary.libs/libcrypto-abcdef12.so.3", "lib/libz.so", "PYZ.pyz"])
        #expect(entries[1].compressed && entries[1].uncompressedLength == 5_000_000 && entries[1].length == 4)
        #expect(entries[2].offset == 4 && !entries[2].compressed)
        #expect(entries.map(\.mayBeELF) == [false, true, true, false, false])
        #expect(entries.contains { $0.isExtractable })
        #expect(CArchive.option("pyi-contents-directory", in: entries) == "_internal")
        #expect(CArchive.symlinkTarget(of: "lib/libz.so", data: Array("../libz.so.1\0".utf8)) == "libz.so.1")
        #expect(CArchive.symlinkTarget(of: "lib/libz.so", data: Array("../../etc/passwd\0".utf8)) == nil)
        #expect(CArchive.symlinkTarget(of: "libz.so", data: Array("/etc/passwd\0".utf8)) == nil)
    }

    /// onedir: scripts, PYZ and options only; nothing the bootloader extracts.
    @Test func onedirArchiveHasNothingExtractable() throws {
        let (_, entries) = try Self.parse(Self.archive([Item(name: "app", code: "s", data: [0xe3]), Item(name: "PYZ.pyz", code: "z", data: [1])]))
        #expect(!entries.contains { $0.isExtractable })
        #expect(CArchive.option("pyi-contents-directory", in: entries) == nil)
    }

    @Test func corruptArchivesAreOneLineErrors() throws {
        let good = [Item(name: "libcrypto.so.3", code: "b", data: [1, 2, 3])]
        #expect(throws: CArchive.ParseError.badCookie("no cookie at the end of the section")) {
            try Self.parse(Self.archive(good, magic: 0x0f))
        }
        #expect(throws: CArchive.ParseError.self) { try Self.parse(Self.archive(good, archiveLength: 1 << 30)) }
        #expect(throws: CArchive.ParseError.self) { try Self.parse(Self.archive(good, tocLength: 1 << 20)) }
        for name in ["../../etc/cron.d/x", "/etc/passwd", "a/../../b", ""] {
            #expect(throws: CArchive.ParseError.self, "\(name)") {
                try Self.parse(Self.archive([Item(name: name, code: "b", data: [1])]))
            }
        }
        // A TOC entry whose length runs past the table, and one whose data overlaps the table.
        var bytes = Self.archive(good)
        let tocStart = 3
        bytes[tocStart + 3] = 0xff
        #expect(throws: CArchive.ParseError.self) { try Self.parse(bytes) }
        bytes = Self.archive(good)
        bytes[tocStart + 11] = 0x40  // length 64: past the 3 data bytes, into the TOC
        let error = #expect(throws: CArchive.ParseError.self) { try Self.parse(bytes) }
        #expect(error?.description.hasPrefix("corrupt PyInstaller archive: TOC entry 0:") == true)
        #expect(error?.description.contains("\n") == false)
    }
}
