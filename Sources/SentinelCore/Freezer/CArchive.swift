/// PyInstaller's CArchive (PKG): the archive a PyInstaller executable carries in its `pydata` section.
/// Layout (PyInstaller/archive/writers.py, bootloader/src/pyi_archive.h): entry data, then the table
/// of contents, then an 88-byte cookie; every integer big-endian. Pure: it parses bytes it is given.
public enum CArchive {
    public static let cookieSize = 88
    static let magic: [UInt8] = [0x4d, 0x45, 0x49, 0x0c, 0x0b, 0x0a, 0x0b, 0x0e]  // "MEI\014\013\012\013\016"
    /// A TOC entry's fixed part: entry length, offset, length, uncompressed length, flag, typecode.
    static let entryHeaderSize = 18

    /// The archive's trailer: where the TOC is, relative to the archive's start.
    public struct Cookie: Sendable, Hashable {
        /// The whole archive, cookie included.
        public var archiveLength: UInt32
        public var tocOffset: UInt32
        public var tocLength: UInt32
        /// major * 100 + minor (311 for Python 3.11).
        public var pythonVersion: UInt32
        public var pythonLibrary: String
    }

    public struct Entry: Sendable, Hashable {
        /// Offset of the data from the archive's start, and its stored (maybe compressed) length.
        public var offset: UInt32
        public var length: UInt32
        public var uncompressedLength: UInt32
        public var compressed: Bool
        /// 'b' binary, 'x' data, 'z' PYZ, 'Z' zip file, 'n' symlink, 'o' runtime option, 's' script,
        /// 'm'/'M' module, 'd' dependency, 'l' splash.
        public var typecode: UInt8
        public var name: String

        /// What the bootloader writes to its extraction folder (pyi_archive.c, _pyi_archive_is_extractable).
        public var isExtractable: Bool { [UInt8(ascii: "b"), UInt8(ascii: "x"), UInt8(ascii: "Z"), UInt8(ascii: "n"),
                                           UInt8(ascii: "d")].contains(typecode) }
        /// Files that may be ELF: binaries and data (a data file can be a library too).
        public var mayBeELF: Bool { typecode == UInt8(ascii: "b") || typecode == UInt8(ascii: "x") }
        public var isSymlink: Bool { typecode == UInt8(ascii: "n") }
    }

    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case badCookie(String)
        case badEntry(index: Int, reason: String)
        public var description: String {
            switch self {
            case .badCookie(let why): return "corrupt PyInstaller archive: \(why)"
            case .badEntry(let index, let why): return "corrupt PyInstaller archive: TOC entry \(index): \(why)"
            }
        }
    }

    /// The cookie from the last 88 bytes of an archive `available` bytes long (the section's size).
    public static func cookie(_ bytes: some Collection<UInt8>, available: UInt64) throws(ParseError) -> Cookie {
        let b = Array(bytes)
        guard b.count == cookieSize, Array(b[0..<8]) == magic else { throw .badCookie("no cookie at the end of the section") }
        let cookie = Cookie(archiveLength: be32(b, 8), tocOffset: be32(b, 12), tocLength: be32(b, 16), pythonVersion: be32(b, 20),
                            pythonLibrary: String(decoding: b[24..<88].prefix { $0 != 0 }, as: UTF8.self))
        guard UInt64(cookie.archiveLength) <= available, cookie.archiveLength >= UInt32(cookieSize) else {
            throw .badCookie("archive length \(cookie.archiveLength) does not fit its \(available)-byte section")
        }
        guard UInt64(cookie.tocOffset) + UInt64(cookie.tocLength) <= UInt64(cookie.archiveLength) - UInt64(cookieSize) else {
            throw .badCookie("table of contents (\(cookie.tocOffset)+\(cookie.tocLength)) runs into the cookie")
        }
        return cookie
    }

    /// The entries of a table of contents, each checked: its data lies before the TOC, its name is a
    /// relative path that stays inside the extraction folder (no `..`, not absolute) except for
    /// runtime options, whose "name" is the option text.
    public static func entries(toc: some Collection<UInt8>, cookie: Cookie) throws(ParseError) -> [Entry] {
        let b = Array(toc)
        var out: [Entry] = []
        var at = 0
        while at < b.count {
            let index = out.count
            guard b.count - at >= entryHeaderSize + 1 else { throw .badEntry(index: index, reason: "truncated") }
            let length = Int(be32(b, at))
            guard length >= entryHeaderSize + 1, length <= b.count - at else {
                throw .badEntry(index: index, reason: "entry length \(length) out of bounds")
            }
            let nameBytes = b[(at + entryHeaderSize)..<(at + length)]
            guard let nul = nameBytes.firstIndex(of: 0) else { throw .badEntry(index: index, reason: "name not NUL-terminated") }
            let entry = Entry(offset: be32(b, at + 4), length: be32(b, at + 8), uncompressedLength: be32(b, at + 12),
                              compressed: b[at + 16] != 0, typecode: b[at + 17],
                              name: EscapedBytes.string(Array(nameBytes[..<nul])))
            guard UInt64(entry.offset) + UInt64(entry.length) <= UInt64(cookie.tocOffset) else {
                throw .badEntry(index: index, reason: "data (\(entry.offset)+\(entry.length)) overlaps the table of contents")
            }
            if entry.typecode != UInt8(ascii: "o"), !isContained(entry.name) {
                throw .badEntry(index: index, reason: "name \(entry.name) leaves the extraction folder")
            }
            out.append(entry)
            at += length
        }
        return out
    }

    /// The value of a runtime option entry (`pyi-contents-directory _internal` → "_internal").
    public static func option(_ name: String, in entries: [Entry]) -> String? {
        let prefix = name + " "
        return entries.first { $0.typecode == UInt8(ascii: "o") && $0.name.hasPrefix(prefix) }
            .map { String($0.name.dropFirst(prefix.count)) }
    }

    /// A symlink entry's target, resolved against the link's folder; nil when it leaves the archive.
    /// The entry's data is the target name and a NUL.
    public static func symlinkTarget(of name: String, data: some Collection<UInt8>) -> String? {
        let target = EscapedBytes.string(Array(data.prefix { $0 != 0 }))
        let folder = name.split(separator: "/").dropLast().joined(separator: "/")
        let joined = folder.isEmpty ? target : folder + "/" + target
        return target.hasPrefix("/") ? nil : normalizedMemberName(joined)
    }

    static func isContained(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix("/") && normalizedMemberName(name) != nil
    }

    /// "a/./b/../c" → "a/c"; nil when `..` climbs above the top.
    public static func normalizedMemberName(_ name: String) -> String? {
        var parts: [Substring] = []
        for part in name.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { guard !parts.isEmpty else { return nil }; parts.removeLast(); continue }
            parts.append(part)
        }
        return parts.isEmpty ? nil : parts.joined(separator: "/")
    }

    private static func be32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }
}
