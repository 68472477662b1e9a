/// One line of /proc/<pid>/maps.
public struct Mapping: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, Codable {
        /// Backed by a file on a filesystem (a library, an executable, a data file, a deleted file).
        case file
        /// No pathname at all.
        case anonymous
        case heap, stack, vdso
        /// `/memfd:NAME (deleted)`: anonymous memory with a name, never a library on disk.
        case memfd
        /// Any other pseudo name: `[vvar]`, `[vsyscall]`, `[anon:…]`, `anon_inode:…`, `/dev/zero (deleted)`, `/SYSV…`.
        case pseudo
    }

    public struct Permissions: Sendable, Hashable {
        public var read: Bool, write: Bool, execute: Bool, shared: Bool
        public init(read: Bool, write: Bool, execute: Bool, shared: Bool) {
            self.read = read; self.write = write; self.execute = execute; self.shared = shared
        }
        /// "r-xp" as the kernel prints it.
        public var text: String {
            (read ? "r" : "-") + (write ? "w" : "-") + (execute ? "x" : "-") + (shared ? "s" : "p")
        }
    }

    public var start: UInt64
    public var end: UInt64
    public var permissions: Permissions
    public var offset: UInt64
    public var deviceMajor: UInt32
    public var deviceMinor: UInt32
    public var inode: UInt64
    /// Everything after the fifth field, as printed (spaces kept, `\012` decoded to a newline), marker included.
    public var pathname: String
    /// The pathname ends in " (deleted)". Ambiguous on its own: a real file may be named that way.
    public var deletedMarker: Bool
    public var kind: Kind

    public init(start: UInt64, end: UInt64, permissions: Permissions, offset: UInt64, deviceMajor: UInt32,
                deviceMinor: UInt32, inode: UInt64, pathname: String, deletedMarker: Bool, kind: Kind) {
        self.start = start; self.end = end; self.permissions = permissions; self.offset = offset
        self.deviceMajor = deviceMajor; self.deviceMinor = deviceMinor; self.inode = inode
        self.pathname = pathname; self.deletedMarker = deletedMarker; self.kind = kind
    }

    /// st_dev as glibc's makedev() builds it, so it compares with stat().
    public var device: UInt64 { MapsParser.makedev(deviceMajor, deviceMinor) }
    public var identity: FileIdentity { FileIdentity(device: device, inode: inode) }
    /// The pathname without one trailing " (deleted)".
    public var pathWithoutMarker: String {
        deletedMarker ? String(pathname.dropLast(MapsParser.deletedSuffix.count)) : pathname
    }
    /// The name of this mapping's entry in /proc/<pid>/map_files.
    public var mapFilesName: String { String(start, radix: 16) + "-" + String(end, radix: 16) }
}

/// A file mapped into a process, all of its mappings folded into one entry per (device, inode).
public struct MappedFileGroup: Sendable, Hashable {
    public var identity: FileIdentity
    /// The pathname of the first mapping, as printed (marker included).
    public var pathname: String
    public var deletedMarker: Bool
    public var kind: Mapping.Kind
    /// The first mapping's address range (names its /proc/<pid>/map_files entry).
    public var start: UInt64
    public var end: UInt64
    public var mappings: Int
    public var mapFilesName: String { String(start, radix: 16) + "-" + String(end, radix: 16) }
    public var pathWithoutMarker: String {
        deletedMarker ? String(pathname.dropLast(MapsParser.deletedSuffix.count)) : pathname
    }
}

/// Parses /proc/<pid>/maps from bytes: `address perms offset dev inode pathname`, where the pathname
/// is everything after the fifth field and may hold spaces.
public enum MapsParser {
    public static let deletedSuffix = " (deleted)"
    private static let deletedBytes = Array(deletedSuffix.utf8)

    public static func makedev(_ major: UInt32, _ minor: UInt32) -> UInt64 {
        let ma = UInt64(major), mi = UInt64(minor)
        return ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
    }

    public static func parse(_ bytes: [UInt8]) -> [Mapping] {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// Every line; malformed lines (never printed by a real kernel) are skipped.
    public static func parse(_ buffer: UnsafeRawBufferPointer) -> [Mapping] {
        var out: [Mapping] = []
        forEachLine(buffer) { line in
            out.append(Mapping(start: line.start, end: line.end, permissions: line.permissions, offset: line.offset,
                               deviceMajor: line.major, deviceMinor: line.minor, inode: line.inode,
                               pathname: decodePath(line.path), deletedMarker: line.deletedMarker, kind: line.kind))
        }
        return out
    }

    /// The files of a process: file-backed and memfd mappings (inode != 0) folded by (device, inode),
    /// in order of first appearance. Builds one String per distinct file, none for other lines.
    public static func fileGroups(_ buffer: UnsafeRawBufferPointer) -> [MappedFileGroup] {
        var out: [MappedFileGroup] = []
        var index: [FileIdentity: Int] = [:]
        forEachLine(buffer) { line in
            guard line.inode != 0, line.kind == .file || line.kind == .memfd else { return }
            let id = FileIdentity(device: makedev(line.major, line.minor), inode: line.inode)
            if let i = index[id] { out[i].mappings += 1; return }
            index[id] = out.count
            out.append(MappedFileGroup(identity: id, pathname: decodePath(line.path), deletedMarker: line.deletedMarker,
                                       kind: line.kind, start: line.start, end: line.end, mappings: 1))
        }
        return out
    }

    public static func fileGroups(_ bytes: [UInt8]) -> [MappedFileGroup] { bytes.withUnsafeBytes { fileGroups($0) } }

    /// One file-backed or memfd line, its pathname still raw bytes (valid only inside the callback):
    /// lets a caller that already knows this (device, inode) and pathname skip building a String.
    public struct RawFileLine {
        public var identity: FileIdentity
        public var start: UInt64, end: UInt64
        public var deletedMarker: Bool
        public var kind: Mapping.Kind
        public var pathname: UnsafeRawBufferPointer
        public var decodedPathname: String { MapsParser.decodePath(pathname) }
        public var mapFilesName: String { String(start, radix: 16) + "-" + String(end, radix: 16) }
    }

    public static func forEachFileLine(_ buffer: UnsafeRawBufferPointer, _ body: (RawFileLine) -> Void) {
        forEachLine(buffer) { line in
            guard line.inode != 0, line.kind == .file || line.kind == .memfd else { return }
            body(RawFileLine(identity: FileIdentity(device: makedev(line.major, line.minor), inode: line.inode),
                             start: line.start, end: line.end, deletedMarker: line.deletedMarker, kind: line.kind,
                             pathname: line.path))
        }
    }

    struct Line {
        var start: UInt64, end: UInt64, permissions: Mapping.Permissions, offset: UInt64
        var major: UInt32, minor: UInt32, inode: UInt64
        var path: UnsafeRawBufferPointer
        var deletedMarker: Bool
        var kind: Mapping.Kind
    }

    static func forEachLine(_ buffer: UnsafeRawBufferPointer, _ body: (Line) -> Void) {
        ProcBytes.forEachLine(buffer) { start, eol in
            if let line = parseLine(buffer, from: start, to: eol) { body(line) }
            return true
        }
    }

    private static func hexValue(_ b: UInt8) -> UInt64? {
        switch b {
        case 0x30...0x39: return UInt64(b - 0x30)
        case 0x61...0x66: return UInt64(b - 0x61 + 10)
        case 0x41...0x46: return UInt64(b - 0x41 + 10)
        default: return nil
        }
    }

    private static func parseLine(_ b: UnsafeRawBufferPointer, from: Int, to end: Int) -> Line? {
        var i = from
        func hex(until stop: UInt8) -> UInt64? {
            var v: UInt64 = 0
            let begin = i
            while i < end, b[i] != stop, let d = hexValue(b[i]) { v = v &<< 4 | d; i += 1 }
            guard i > begin, i < end, b[i] == stop else { return nil }
            i += 1
            return v
        }
        guard let start = hex(until: 0x2d), let stop = hex(until: 0x20) else { return nil }
        guard i + 5 <= end, b[i + 4] == 0x20 else { return nil }
        let perms = Mapping.Permissions(read: b[i] == 0x72, write: b[i + 1] == 0x77, execute: b[i + 2] == 0x78,
                                        shared: b[i + 3] == 0x73)
        i += 5
        guard let offset = hex(until: 0x20), let major = hex(until: 0x3a), let minor = hex(until: 0x20) else { return nil }
        var inode: UInt64 = 0
        let inodeStart = i
        while i < end, b[i] >= 0x30, b[i] <= 0x39 { inode = inode &* 10 &+ UInt64(b[i] - 0x30); i += 1 }
        guard i > inodeStart else { return nil }
        // The kernel pads with spaces up to the pathname column; the pathname itself may start with none.
        while i < end, b[i] == 0x20 { i += 1 }
        let path = UnsafeRawBufferPointer(rebasing: b[i..<end])
        let marker = endsWithDeleted(path)
        return Line(start: start, end: stop, permissions: perms, offset: offset, major: UInt32(truncatingIfNeeded: major),
                    minor: UInt32(truncatingIfNeeded: minor), inode: inode, path: path, deletedMarker: marker,
                    kind: kind(of: path, inode: inode, major: UInt32(truncatingIfNeeded: major)))
    }

    private static func endsWithDeleted(_ p: UnsafeRawBufferPointer) -> Bool {
        let n = deletedBytes.count
        guard p.count > n else { return false }
        for k in 0..<n where p[p.count - n + k] != deletedBytes[k] { return false }
        return true
    }

    private static func starts(_ p: UnsafeRawBufferPointer, with s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard p.count >= n else { return false }
        let s = UnsafeRawBufferPointer(start: s.utf8Start, count: n)
        for k in 0..<n where p[k] != s[k] { return false }
        return true
    }

    private static func kind(of p: UnsafeRawBufferPointer, inode: UInt64, major: UInt32) -> Mapping.Kind {
        guard let first = p.first else { return .anonymous }
        if first == UInt8(ascii: "[") {
            if p.count == 6, starts(p, with: "[heap]") { return .heap }
            if starts(p, with: "[stack") { return .stack }  // "[stack]", older kernels "[stack:TID]"
            if p.count == 6, starts(p, with: "[vdso]") { return .vdso }
            return .pseudo
        }
        guard first == UInt8(ascii: "/"), inode != 0 else { return .pseudo }
        // Shared-memory objects live on the kernel's internal shmem mount (major 0): they carry these names.
        if major == 0 {
            if starts(p, with: "/memfd:") { return .memfd }
            if starts(p, with: "/SYSV") || starts(p, with: "/dev/zero (deleted)") || starts(p, with: "/[aio]") { return .pseudo }
        }
        return .file
    }

    /// seq_file_path escapes a newline in a pathname as `\012`; undo that, nothing else is escaped.
    /// The bytes become a String as every file name does (EscapedBytes).
    static func decodePath(_ p: UnsafeRawBufferPointer) -> String {
        guard p.count >= 4, p.contains(UInt8(ascii: "\\")) else { return EscapedBytes.string(p) }
        var out: [UInt8] = []
        out.reserveCapacity(p.count)
        var k = 0
        while k < p.count {
            if p[k] == UInt8(ascii: "\\"), k + 3 < p.count, p[k + 1] == 0x30, p[k + 2] == 0x31, p[k + 3] == 0x32 {
                out.append(0x0a); k += 4
            } else { out.append(p[k]); k += 1 }
        }
        return EscapedBytes.string(out)
    }
}
