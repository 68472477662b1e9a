/// /etc/ld.so.cache, parsed natively (layout of glibc's sysdeps/generic/dl-cache.h) and searched the
/// way glibc 2.36's elf/dl-cache.c `search_cache` does.
///
/// Accepted layouts, as the loader accepts them: the new format alone ("glibc-ld.so.cache1.1"), the
/// new format hidden after an old "ld.so-1.7.0" table (the old entries are skipped), and the old
/// format alone (pre-2.2 ldconfig). Any structural damage throws: a cache we cannot read completely
/// is reported, never half-used.
public struct LdSoCache: Sendable {
    public struct Entry: Sendable, Hashable {
        /// FLAG_ELF_LIBC6 | ABI bits: 0x303 for x86-64 libc6.
        public var flags: Int32
        /// The SONAME the entry answers to.
        public var key: String
        /// The file path ldconfig recorded.
        public var value: String
        public var osVersion: UInt32
        public var hwcap: UInt64
        /// For glibc-hwcaps entries (DL_CACHE_HWCAP_EXTENSION), the subfolder name, e.g. "x86-64-v3".
        public var hwcapsSubdir: String?

        public init(flags: Int32, key: String, value: String, osVersion: UInt32 = 0, hwcap: UInt64 = 0,
                    hwcapsSubdir: String? = nil) {
            self.flags = flags; self.key = key; self.value = value; self.osVersion = osVersion
            self.hwcap = hwcap; self.hwcapsSubdir = hwcapsSubdir
        }

        /// True when only DL_CACHE_HWCAP_EXTENSION is set above the ISA-level bits (dl_cache_hwcap_extension).
        public var isHwcapsExtension: Bool {
            ((hwcap >> 32) & ~LdSoCache.isaLevelMask) == (LdSoCache.hwcapExtension >> 32)
        }
    }

    public struct FormatError: Error, Sendable, CustomStringConvertible {
        public var reason: String
        public init(_ reason: String) { self.reason = reason }
        public var description: String { "ld.so.cache: \(reason)" }
    }

    public enum Format: String, Sendable { case new, compat, old }

    public static let defaultX8664Flags: Int32 = 0x303
    public static let hwcapExtension: UInt64 = 1 << 62
    static let isaLevelMask: UInt64 = (1 << 10) - 1
    static let tlsHwcap: UInt64 = 1 << 63
    static let x8664Hwcap: UInt64 = 1 << 1   // HWCAP_X86_64, always in dl_hwcap on x86-64

    public let entries: [Entry]
    public let format: Format
    /// The extension section's generator string ("ldconfig (Debian GLIBC 2.36-…) …"), if present.
    public let generator: String?
    private let keys: [[UInt8]]

    static let oldMagic = Array("ld.so-1.7.0".utf8)
    static let newMagic = Array("glibc-ld.so.cache1.1".utf8)
    static let extensionMagic: UInt32 = 0xEAA4_2174  // (uint32_t) -358342284
    static let oldHeaderSize = 16, oldEntrySize = 12, newHeaderSize = 48, newEntrySize = 24

    public init(bytes: [UInt8]) throws {
        let r = Reader(bytes)
        let newBase: Int
        if bytes.count > Self.newHeaderSize, r.hasPrefix(Self.newMagic, at: 0) {
            newBase = 0
            format = .new
        } else if bytes.count > Self.oldHeaderSize, r.hasPrefix(Self.oldMagic, at: 0) {
            let oldCount = Int(try r.u32(12))
            guard (bytes.count - Self.oldHeaderSize) / Self.oldEntrySize >= oldCount else {
                throw FormatError("old table of \(oldCount) entries does not fit in \(bytes.count) bytes")
            }
            let afterOld = Self.oldHeaderSize + oldCount * Self.oldEntrySize
            let aligned = (afterOld + 7) & ~7
            if bytes.count >= aligned + Self.newHeaderSize, r.hasPrefix(Self.newMagic, at: aligned) {
                newBase = aligned
                format = .compat
            } else {
                // Old format only: strings are relative to the end of the old table.
                var list: [Entry] = []
                list.reserveCapacity(oldCount)
                for i in 0..<oldCount {
                    let at = Self.oldHeaderSize + i * Self.oldEntrySize
                    let flags = Int32(bitPattern: try r.u32(at))
                    let key = try r.cString(base: afterOld, offset: r.u32(at + 4))
                    let value = try r.cString(base: afterOld, offset: r.u32(at + 8))
                    list.append(Entry(flags: flags, key: key, value: value))
                }
                entries = list
                keys = list.map { Array($0.key.utf8) }
                generator = nil
                format = .old
                return
            }
        } else {
            throw FormatError("no ld.so.cache magic (\(bytes.count) bytes)")
        }

        let count = Int(try r.u32(newBase + 20))
        guard (bytes.count - newBase - Self.newHeaderSize) / Self.newEntrySize >= count else {
            throw FormatError("table of \(count) entries does not fit in \(bytes.count) bytes")
        }
        let endian = try r.u8(newBase + 28)
        guard endian == 0 || endian & 3 == 2 else {
            throw FormatError("cache is not little-endian (flags \(endian))")
        }

        // Extension directory (file offsets); hwcaps names are string-table indices that glibc 2.36's
        // loader and `ldconfig -p` both resolve from the start of the file.
        var hwcapsNames: [String?] = []
        var generator: String?
        let extensionOffset = Int(try r.u32(newBase + 32))
        if extensionOffset != 0 {
            guard extensionOffset % 4 == 0 else { throw FormatError("misaligned extension offset \(extensionOffset)") }
            guard try r.u32(extensionOffset) == Self.extensionMagic else {
                throw FormatError("bad extension magic at \(extensionOffset)")
            }
            let sections = Int(try r.u32(extensionOffset + 4))
            guard sections <= (bytes.count - extensionOffset - 8) / 16 else {
                throw FormatError("extension directory of \(sections) sections runs past the end")
            }
            for s in 0..<sections {
                let at = extensionOffset + 8 + s * 16
                let tag = try r.u32(at), offset = Int(try r.u32(at + 8)), size = Int(try r.u32(at + 12))
                guard offset + size <= bytes.count else {
                    throw FormatError("extension section \(tag) runs past the end")
                }
                switch tag {
                case 0:
                    generator = String(decoding: bytes[offset..<(offset + size)], as: UTF8.self)
                case 1 where size > 0 && offset % 4 == 0 && size % 4 == 0:
                    hwcapsNames = try (0..<(size / 4)).map { i in
                        let index = try r.u32(offset + i * 4)
                        return Int(index) < bytes.count ? try r.cString(base: 0, offset: index) : nil
                    }
                default:
                    break  // unknown tags (and a malformed hwcaps section) are ignored, as glibc does
                }
            }
        }
        self.generator = generator

        var list: [Entry] = []
        list.reserveCapacity(count)
        for i in 0..<count {
            let at = newBase + Self.newHeaderSize + i * Self.newEntrySize
            let flags = Int32(bitPattern: try r.u32(at))
            let key = try r.cString(base: newBase, offset: r.u32(at + 4))
            let value = try r.cString(base: newBase, offset: r.u32(at + 8))
            let osVersion = try r.u32(at + 12)
            let hwcap = try r.u64(at + 16)
            var entry = Entry(flags: flags, key: key, value: value, osVersion: osVersion, hwcap: hwcap)
            if entry.isHwcapsExtension {
                let index = Int(UInt32(truncatingIfNeeded: hwcap))
                entry.hwcapsSubdir = index < hwcapsNames.count ? hwcapsNames[index] : nil
            }
            list.append(entry)
        }
        entries = list
        keys = list.map { Array($0.key.utf8) }
    }

    /// glibc's `_DL_CACHE_DEFAULT_ID` for an ABI: the only flags value its `_dl_cache_check_flags` accepts.
    public static func expectedFlags(elfClass: ELFObject.ELFClass, machine: UInt16) -> Int32 {
        let libc6: Int32 = 0x0003
        switch (machine, elfClass) {
        case (62, .elf64): return libc6 | 0x0300   // x86-64
        case (62, .elf32): return libc6 | 0x0800   // x32
        case (183, _): return libc6 | 0x0a00       // AArch64
        case (21, .elf64): return libc6 | 0x0500   // ppc64
        case (22, .elf64): return libc6 | 0x0400   // s390x
        case (43, .elf64): return libc6 | 0x0100   // sparc64
        case (50, _): return libc6 | 0x0200        // ia64
        default: return libc6
        }
    }

    /// The file glibc 2.36 takes for `soname`: among the entries with exactly `expected` flags, the
    /// glibc-hwcaps entry of the best supported subfolder (`hwcapsSubdirs`, best first) if any, else
    /// the first plain entry. Mirrors `search_cache`, including its binary search over the
    /// descending, numerically compared keys.
    public func lookup(_ soname: String, flags expected: Int32, hwcapsSubdirs: [String]) -> String? {
        let name = Array(soname.utf8)
        let isX86 = expected == 0x303 || expected == 0x803
        // ISA-level bits the CPU has (cpu_features->isa_1): baseline plus one bit per x86-64-vN.
        var isaBits: UInt64 = 1
        for (bit, level) in [(1, "x86-64-v2"), (2, "x86-64-v3"), (3, "x86-64-v4")] where hwcapsSubdirs.contains(level) {
            isaBits |= 1 << UInt64(bit)
        }
        var left = 0, right = entries.count - 1
        while left <= right {
            var middle = (left + right) / 2
            let cmp = Self.libcmp(name, keys[middle])
            if cmp == 0 {
                left = middle
                while middle > 0, Self.libcmp(name, keys[middle - 1]) == 0 { middle -= 1 }
                var best: String?
                var bestPriority = 0
                while middle <= right {
                    defer { middle += 1 }
                    if middle > left, Self.libcmp(name, keys[middle]) != 0 { break }
                    let entry = entries[middle]
                    guard entry.flags == expected else { continue }
                    let named = entry.isHwcapsExtension
                    if named, isX86 {
                        let level = (entry.hwcap >> 32) & Self.isaLevelMask
                        if level >= 64 || (isaBits & (1 << level)) == 0 { continue }
                    }
                    // Extension entries sort first; the first plain entry ends the search once one matched.
                    if !named, best != nil { break }
                    if !named {
                        // Pre-2.37 legacy hwcap entries (tls/, x86_64/ subfolders): only those glibc
                        // accepts on every x86-64 CPU are taken; platform (haswell…) ones are skipped.
                        let accepted = Self.tlsHwcap | (isX86 ? Self.x8664Hwcap : 0)
                        if entry.hwcap & ~accepted != 0 { continue }
                    } else {
                        guard let subdir = entry.hwcapsSubdir, let rank = hwcapsSubdirs.firstIndex(of: subdir) else {
                            continue
                        }
                        let priority = rank + 1
                        if best == nil || priority < bestPriority { bestPriority = priority } else { continue }
                    }
                    best = entry.value
                    if !named { break }
                }
                return best
            }
            if cmp < 0 { left = middle + 1 } else { right = middle - 1 }
        }
        return nil
    }

    /// `_dl_cache_libcmp`: runs of digits compare numerically, so "libfoo.so.10" sorts after ".so.9".
    static func libcmp(_ p1: [UInt8], _ p2: [UInt8]) -> Int {
        var i = 0, j = 0
        @inline(__always) func at(_ s: [UInt8], _ k: Int) -> UInt8 { k < s.count ? s[k] : 0 }
        @inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
        // C's `char` is signed on x86-64: bytes >= 0x80 sort before ASCII, as ldconfig sorted them.
        @inline(__always) func signed(_ c: UInt8) -> Int { Int(Int8(bitPattern: c)) }
        while at(p1, i) != 0 {
            let c1 = at(p1, i), c2 = at(p2, j)
            if isDigit(c1) {
                guard isDigit(c2) else { return 1 }
                var v1 = 0, v2 = 0
                while isDigit(at(p1, i)) { v1 = v1 &* 10 &+ Int(at(p1, i) - 48); i += 1 }
                while isDigit(at(p2, j)) { v2 = v2 &* 10 &+ Int(at(p2, j) - 48); j += 1 }
                if v1 != v2 { return v1 < v2 ? -1 : 1 }
            } else if isDigit(c2) {
                return -1
            } else if c1 != c2 {
                return signed(c1) - signed(c2)
            } else {
                i += 1; j += 1
            }
        }
        return -signed(at(p2, j))
    }

    /// Bounds-checked little-endian reads; every failure is a one-line FormatError.
    private struct Reader {
        let bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        func hasPrefix(_ magic: [UInt8], at offset: Int) -> Bool {
            offset >= 0 && offset + magic.count <= bytes.count && bytes[offset..<(offset + magic.count)].elementsEqual(magic)
        }
        func u8(_ at: Int) throws -> UInt8 {
            guard at >= 0, at < bytes.count else { throw FormatError("read past the end at \(at)") }
            return bytes[at]
        }
        func u32(_ at: Int) throws -> UInt32 {
            guard at >= 0, at + 4 <= bytes.count else { throw FormatError("read past the end at \(at)") }
            return UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        func u64(_ at: Int) throws -> UInt64 {
            UInt64(try u32(at)) | UInt64(try u32(at + 4)) << 32
        }
        func cString(base: Int, offset: UInt32) throws -> String {
            let start = base + Int(offset)
            guard start < bytes.count else { throw FormatError("string offset \(offset) past the end") }
            guard let end = bytes[start...].firstIndex(of: 0) else {
                throw FormatError("unterminated string at \(start)")
            }
            return EscapedBytes.string(bytes[start..<end])
        }
    }
}
