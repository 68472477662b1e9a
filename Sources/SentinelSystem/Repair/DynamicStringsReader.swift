import CLibElf
import Glibc
import SentinelCore

/// Reads a file's dynamic string table and every reference into it with libelf, and writes
/// `StringPatch`es into the file in place.
///
/// The table is the one DT_STRTAB names, found as ld.so finds it: PT_DYNAMIC, then the address through the
/// PT_LOAD segments. References are collected from both views a reader of the file may take: the dynamic
/// tags (DT_VERNEED, DT_VERDEF, DT_SYMTAB: what the loader follows) and the section headers (what readelf
/// and patchelf follow). Any of those sections that uses another string table makes the file unsupported:
/// a rewrite of this table would not be the whole story.
public enum DynamicStringsReader {
    /// The largest table read (libLLVM's .dynstr is 3 MB): a hostile DT_STRSZ costs no more memory.
    public static let tableLimit: UInt64 = 64 << 20

    /// elf_version must run once before any other libelf call; a static let is a thread-safe once.
    private static let libelfReady: Bool = elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE)

    public static func read(path: String) throws(DynamicStringsError) -> DynamicStrings {
        // O_NONBLOCK: a path swapped for a FIFO must not wait for a writer (fstat then refuses it).
        let fd = open(EscapedBytes.cString(path), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw .cannotOpen(errno: errno) }
        defer { close(fd) }
        return try read(fd: fd)
    }

    /// Same, from an open file descriptor, which stays open.
    public static func read(fd: Int32) throws(DynamicStringsError) -> DynamicStrings {
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .cannotRead(errno: errno) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .notELF(reason: "not a regular file") }
        let fileSize = UInt64(max(status.st_size, 0))

        var ident = [UInt8](repeating: 0, count: Int(EI_NIDENT))
        let got = ident.withUnsafeMutableBytes { preadFully(fd, $0, at: 0) }
        guard got >= 0 else { throw .cannotRead(errno: errno) }
        guard got >= 4, ident[0] == 0x7f, ident[1] == 0x45, ident[2] == 0x4c, ident[3] == 0x46 else {
            throw .notELF(reason: "no ELF magic number")
        }
        guard got == Int(EI_NIDENT) else { throw .truncated(what: "ELF identification", end: UInt64(EI_NIDENT), fileSize: fileSize) }
        let headerSize: UInt64
        switch Int32(ident[Int(EI_CLASS)]) {
        case ELFCLASS32: headerSize = 52
        case ELFCLASS64: headerSize = 64
        default: throw .corrupt(what: "ELF identification", reason: "unknown class \(ident[Int(EI_CLASS)])")
        }
        let bigEndian: Bool
        switch Int32(ident[Int(EI_DATA)]) {
        case ELFDATA2LSB: bigEndian = false
        case ELFDATA2MSB: bigEndian = true
        default: throw .corrupt(what: "ELF identification", reason: "unknown byte order \(ident[Int(EI_DATA)])")
        }
        guard fileSize >= headerSize else { throw .truncated(what: "ELF header", end: headerSize, fileSize: fileSize) }

        guard libelfReady else { throw .corrupt(what: "libelf", reason: "elf_version(EV_CURRENT) failed") }
        // ELF_C_READ, not _MMAP: a mapped file cut while it is read raises SIGBUS; a short pread is an error.
        guard let elf = elf_begin(fd, ELF_C_READ, nil) else { throw .corrupt(what: "ELF file", reason: libelfError()) }
        defer { elf_end(elf) }
        guard elf_kind(elf) == ELF_K_ELF else { throw .corrupt(what: "ELF file", reason: "libelf does not read it as ELF") }
        var parser = Parser(elf: elf, fd: fd, fileSize: fileSize, is64: headerSize == 64, bigEndian: bigEndian)
        return try parser.parse()
    }

    /// Writes `patches` into the file at `path` (not through a symbolic link), after checking that every
    /// patch's bytes still hold its old string and NUL: a file changed since it was read gets none of
    /// them. fsyncs; timestamps and other metadata are the caller's. A write that fails part-way may
    /// leave some patches written (the error says so).
    public static func apply(_ patches: [StringPatch], toFileAt path: String) throws(DynamicStringsError) {
        if let problem = StringPatch.problem(in: patches) { throw .invalidPatch(reason: problem.reason) }
        guard !patches.isEmpty else { return }
        let fd = open(EscapedBytes.cString(path), O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw .cannotOpen(errno: errno) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .cannotRead(errno: errno) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .notELF(reason: "not a regular file") }
        let fileSize = UInt64(max(status.st_size, 0))

        for patch in patches {
            let expected = patch.expected
            // No overflow: StringPatch.problem checked fileOffset + length.
            let patchEnd = patch.fileOffset + UInt64(expected.count)
            guard patchEnd <= fileSize else {
                throw .changed(reason: "\"\(patch.old)\" at file offset \(patch.fileOffset) would end at byte \(patchEnd), file has \(fileSize)")
            }
            var current = [UInt8](repeating: 0, count: expected.count)
            let got = current.withUnsafeMutableBytes { preadFully(fd, $0, at: patch.fileOffset) }
            guard got >= 0 else { throw .cannotRead(errno: errno) }
            guard got == expected.count, current == expected else {
                throw .changed(reason: "file offset \(patch.fileOffset) no longer holds \"\(patch.old)\" and its NUL")
            }
        }
        for patch in patches {
            let written = patch.bytes.withUnsafeBytes { pwriteFully(fd, $0, at: patch.fileOffset) }
            guard written == patch.bytes.count else { throw .cannotWrite(errno: written < 0 ? errno : EIO) }
        }
        guard fsync(fd) == 0 else { throw .cannotWrite(errno: errno) }
    }
}

/// The shared table checks (ELFTables) fail with this error's cases of the same names.
extension DynamicStringsError: ELFTables.ReaderError {}

private func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

/// pwrite until all of `buffer` is written; the count written, or -1 with errno set.
private func pwriteFully(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: UInt64) -> Int {
    var done = 0
    while done < buffer.count {
        let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
        if n < 0 { if errno == EINTR { continue }; return -1 }
        if n == 0 { break }
        done += n
    }
    return done
}

private struct Parser {
    typealias Kind = DynamicStrings.ReferenceKind

    /// Bounds on structures whose real sizes are small: a hostile size costs no more than this.
    static let dynamicLimit: UInt64 = 1 << 20
    static let versionLimit: UInt64 = 1 << 20
    static let symbolLimit: UInt64 = 256 << 20
    /// DT_USED (Solaris, not in glibc's elf.h): another tag whose value is a string offset.
    static let dtUsed: Int64 = 0x7ffffffe

    let elf: OpaquePointer
    let fd: Int32
    let fileSize: UInt64
    let is64: Bool
    let bigEndian: Bool
    var ehdr = GElf_Ehdr()
    var loads: [GElf_Phdr] = []
    var table: [UInt8] = []
    /// The last NUL of the table: an offset up to it starts a NUL-terminated string.
    var lastNul = -1
    var references: [DynamicStrings.Reference] = []
    var seen: Set<DynamicStrings.Reference> = []

    init(elf: OpaquePointer, fd: Int32, fileSize: UInt64, is64: Bool, bigEndian: Bool) {
        self.elf = elf
        self.fd = fd
        self.fileSize = fileSize
        self.is64 = is64
        self.bigEndian = bigEndian
    }

    mutating func parse() throws(DynamicStringsError) -> DynamicStrings {
        guard gelf_getehdr(elf, &ehdr) != nil else { throw .corrupt(what: "ELF header", reason: libelfError()) }
        let dynamic = try readProgramHeaders()
        guard dynamic.p_filesz > 0, dynamic.p_filesz <= Self.dynamicLimit else {
            throw .corrupt(what: "PT_DYNAMIC", reason: "\(dynamic.p_filesz) bytes (none, or over \(Self.dynamicLimit))")
        }
        // ld.so reads the dynamic section at its address: the file offset must be where that address is.
        let mapped = try fileOffset(of: dynamic.p_vaddr, size: dynamic.p_filesz, "PT_DYNAMIC")
        guard mapped == dynamic.p_offset else {
            throw .unsupported(reason: "PT_DYNAMIC is at file offset \(hex(dynamic.p_offset)) but its address maps to \(hex(mapped))")
        }
        let entries = try dynamicEntries(at: dynamic.p_offset, size: dynamic.p_filesz, "PT_DYNAMIC")

        // Later entries override earlier ones, as in glibc's dynamic info table.
        var tags: [Int64: UInt64] = [:]
        for entry in entries { tags[entry.tag] = entry.value }
        guard let strtab = tags[Int64(DT_STRTAB)], let strsz = tags[Int64(DT_STRSZ)] else {
            throw .corrupt(what: "PT_DYNAMIC", reason: "no DT_STRTAB or DT_STRSZ")
        }
        guard strsz > 0 else { throw .corrupt(what: "PT_DYNAMIC", reason: "DT_STRSZ is 0") }
        let tableOffset = try fileOffset(of: strtab, size: strsz, "dynamic string table (DT_STRTAB \(hex(strtab)), DT_STRSZ \(strsz))")
        guard strsz <= DynamicStringsReader.tableLimit else {
            throw .unsupported(reason: "DT_STRSZ \(strsz) is over the \(DynamicStringsReader.tableLimit)-byte limit")
        }
        table = [UInt8](repeating: 0, count: Int(strsz))
        let got = table.withUnsafeMutableBytes { preadFully(fd, $0, at: tableOffset) }
        guard got >= 0 else { throw .cannotRead(errno: errno) }
        guard got == table.count else { throw .truncated(what: "dynamic string table", end: tableOffset + strsz, fileSize: fileSize) }
        lastNul = table.lastIndex(of: 0) ?? -1

        try addStrings(of: entries, "PT_DYNAMIC")
        let sections = try readSectionHeaders()
        let dynstr = Set(sections.filter { $0.header.sh_type == UInt32(SHT_STRTAB) && $0.header.sh_offset == tableOffset
                && $0.header.sh_size == strsz }.map(\.index))
        try checkLinks(sections, dynstr: dynstr, tableOffset: tableOffset, size: strsz)

        // .dynamic as a section, where it is not PT_DYNAMIC (readelf reads the section then).
        for section in sections where section.header.sh_type == UInt32(SHT_DYNAMIC) && section.header.sh_offset != dynamic.p_offset {
            let what = name(section)
            guard section.header.sh_size <= Self.dynamicLimit else {
                throw .corrupt(what: what, reason: "\(section.header.sh_size) bytes (over \(Self.dynamicLimit))")
            }
            try addStrings(of: try dynamicEntries(at: section.header.sh_offset, size: section.header.sh_size, what), what)
        }

        // Version tables: by file offset, each read once with the largest size either view gives.
        var verneed: [UInt64: UInt64] = [:], verdef: [UInt64: UInt64] = [:]
        if let address = tags[Int64(DT_VERNEED)] {
            let (offset, size) = try openEnded(address, "DT_VERNEED")
            verneed[offset] = size
        }
        if let address = tags[Int64(DT_VERDEF)] {
            let (offset, size) = try openEnded(address, "DT_VERDEF")
            verdef[offset] = size
        }
        for section in sections {
            let header = section.header
            switch Int32(bitPattern: header.sh_type) {
            case SHT_GNU_verneed: verneed[header.sh_offset] = max(verneed[header.sh_offset] ?? 0, min(header.sh_size, Self.versionLimit))
            case SHT_GNU_verdef: verdef[header.sh_offset] = max(verdef[header.sh_offset] ?? 0, min(header.sh_size, Self.versionLimit))
            default: break
            }
        }
        // An empty section has no entries for anyone.
        for (offset, size) in verneed.sorted(by: { $0.key < $1.key }) where size > 0 { try readVerneed(at: offset, size: size) }
        for (offset, size) in verdef.sorted(by: { $0.key < $1.key }) where size > 0 { try readVerdef(at: offset, size: size) }

        // .dynsym: through DT_SYMTAB and through every SHT_DYNSYM section.
        let symbolSize = UInt64(gelf_fsize(elf, ELF_T_SYM, 1, UInt32(EV_CURRENT)))
        guard symbolSize > 0 else { throw .corrupt(what: "ELF header", reason: "no symbol size for this class") }
        var symbolTables: [UInt64: UInt64] = [:]
        if let symtab = tags[Int64(DT_SYMTAB)] {
            let offset = try fileOffset(of: symtab, size: symbolSize, "DT_SYMTAB")
            let count: UInt64
            if let section = sections.first(where: { $0.header.sh_type == UInt32(SHT_DYNSYM) && $0.header.sh_offset == offset }) {
                count = section.header.sh_size / symbolSize
            } else if let hash = tags[Int64(DT_HASH)] {
                count = try symbolCount(hash: hash)
            } else if let gnuHash = tags[Int64(DT_GNU_HASH)] {
                count = try symbolCount(gnuHash: gnuHash)
            } else {
                throw .unsupported(reason: "cannot count the symbols at DT_SYMTAB: no .dynsym section there and no DT_HASH or DT_GNU_HASH")
            }
            guard count <= Self.symbolLimit / symbolSize else {
                throw .unsupported(reason: "DT_SYMTAB: \(count) symbols, over the \(Self.symbolLimit)-byte limit")
            }
            // The loader sees the symbols at their address: all must be file bytes of one segment.
            _ = try fileOffset(of: symtab, size: count * symbolSize, "DT_SYMTAB (\(count) symbols)")
            symbolTables[offset] = count
        }
        for section in sections where section.header.sh_type == UInt32(SHT_DYNSYM) {
            let count = section.header.sh_size / symbolSize
            symbolTables[section.header.sh_offset] = max(symbolTables[section.header.sh_offset] ?? 0, count)
        }
        for (offset, count) in symbolTables.sorted(by: { $0.key < $1.key }) {
            try readSymbols(at: offset, count: count, symbolSize: symbolSize)
        }
        return DynamicStrings(tableFileOffset: tableOffset, table: table, references: references)
    }

    // MARK: references

    /// Records a reference after checking it names a NUL-terminated string inside the table.
    mutating func add(_ kind: Kind, _ offset: UInt64, _ what: @autoclosure () -> String) throws(DynamicStringsError) {
        guard lastNul >= 0, offset <= UInt64(lastNul) else {
            throw .corrupt(what: what(), reason: offset < UInt64(table.count)
                ? "string at offset \(offset) has no NUL before the end of the dynamic string table"
                : "string offset \(offset) is outside the dynamic string table (\(table.count) bytes)")
        }
        let reference = DynamicStrings.Reference(kind: kind, offset: offset)
        if seen.insert(reference).inserted { references.append(reference) }
    }

    static func kind(ofTag tag: Int64) -> Kind? {
        switch tag {
        case Int64(DT_NEEDED): .needed
        case Int64(DT_SONAME): .soname
        case Int64(DT_RPATH): .rpath
        case Int64(DT_RUNPATH): .runpath
        case Int64(DT_AUXILIARY), Int64(DT_FILTER), Int64(DT_CONFIG), Int64(DT_DEPAUDIT), Int64(DT_AUDIT), dtUsed: .otherDynamic
        default: nil
        }
    }

    mutating func addStrings(of entries: [(tag: Int64, value: UInt64)], _ what: String) throws(DynamicStringsError) {
        for entry in entries {
            guard let kind = Self.kind(ofTag: entry.tag) else { continue }
            try add(kind, entry.value, "\(what) \(kind == .otherDynamic ? "tag \(hex(UInt64(bitPattern: entry.tag)))" : kind.rawValue)")
        }
    }

    // MARK: program headers and addresses

    mutating func readProgramHeaders() throws(DynamicStringsError) -> GElf_Phdr {
        let headers: [GElf_Phdr]
        do { headers = try ELFTables.programHeaders(elf, ehdr, fileSize: fileSize) } catch { throw error.mapped() }
        guard !headers.isEmpty else { throw .unsupported(reason: "no program headers: not a dynamically linked file") }
        var dynamic: GElf_Phdr?
        for (index, phdr) in headers.enumerated() {
            switch phdr.p_type {
            case UInt32(PT_DYNAMIC):
                // glibc takes the last one, readelf the first: a file with two is not rewritten.
                guard dynamic == nil else { throw .unsupported(reason: "more than one PT_DYNAMIC segment") }
                dynamic = phdr
            case UInt32(PT_LOAD):
                guard end(phdr.p_offset, phdr.p_filesz).map({ $0 <= fileSize }) == true else {
                    throw .truncated(what: "PT_LOAD segment \(index)", end: end(phdr.p_offset, phdr.p_filesz) ?? .max, fileSize: fileSize)
                }
                loads.append(phdr)
            default: break
            }
        }
        guard let dynamic else { throw .unsupported(reason: "no PT_DYNAMIC segment: not a dynamically linked file") }
        return dynamic
    }

    /// The file offset of `size` bytes at `address`, as the PT_LOAD segments map them; they must all be
    /// file bytes of one segment (past its p_filesz the loader sees zeros, not the file).
    func fileOffset(of address: UInt64, size: UInt64, _ what: @autoclosure () -> String) throws(DynamicStringsError) -> UInt64 {
        guard let load = loads.first(where: { address >= $0.p_vaddr && address - $0.p_vaddr < $0.p_filesz }) else {
            throw .corrupt(what: what(), reason: "address \(hex(address)) is in no PT_LOAD segment's file bytes")
        }
        let into = address - load.p_vaddr
        let offset = load.p_offset + into  // no overflow: p_offset + p_filesz was checked against the file size
        guard let dataEnd = end(offset, size), dataEnd <= fileSize else {
            throw .truncated(what: what(), end: end(offset, size) ?? .max, fileSize: fileSize)
        }
        guard size <= load.p_filesz - into else {
            throw .corrupt(what: what(), reason: "\(size) bytes at \(hex(address)) run past the file bytes of their PT_LOAD segment")
        }
        return offset
    }

    /// A table that DT_VERNEED or DT_VERDEF locates without a size: from there to the end of its
    /// segment's file bytes, at most `versionLimit`.
    func openEnded(_ address: UInt64, _ what: String) throws(DynamicStringsError) -> (offset: UInt64, size: UInt64) {
        let offset = try fileOffset(of: address, size: 1, what)
        guard let load = loads.first(where: { address >= $0.p_vaddr && address - $0.p_vaddr < $0.p_filesz }) else {
            throw .corrupt(what: what, reason: "address \(hex(address)) is in no PT_LOAD segment's file bytes")
        }
        return (offset, min(load.p_filesz - (address - load.p_vaddr), Self.versionLimit))
    }

    // MARK: dynamic entries

    func dynamicEntries(at offset: UInt64, size: UInt64, _ what: String) throws(DynamicStringsError) -> [(tag: Int64, value: UInt64)] {
        do {
            return try ELFTables.dynamicEntries(elf, at: offset, size: size, what, fileSize: fileSize)?.entries ?? []
        } catch { throw error.mapped() }
    }

    // MARK: sections

    typealias Section = ELFTables.Section

    /// Every section header; none for a file without a table (sstrip'd).
    func readSectionHeaders() throws(DynamicStringsError) -> [Section] {
        do { return try ELFTables.sections(elf, ehdr, fileSize: fileSize).sections } catch { throw error.mapped() }
    }

    func name(_ section: Section) -> String {
        var namesIndex = 0
        if elf_getshdrstrndx(elf, &namesIndex) == 0, namesIndex != 0,
           let text = elf_strptr(elf, namesIndex, Int(section.header.sh_name)), text.pointee != 0 {
            return "\(EscapedBytes.string(UnsafeRawBufferPointer(start: text, count: strlen(text)))) (section \(section.index))"
        }
        return "section \(section.index)"
    }

    /// The sections whose names live in a string table (dynamic, .dynsym, version tables) must all use
    /// the one DT_STRTAB names; and no other section may use it, as its references are not known here.
    func checkLinks(_ sections: [Section], dynstr: Set<Int>, tableOffset: UInt64, size: UInt64) throws(DynamicStringsError) {
        let users: Set<Int32> = [SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_verneed, SHT_GNU_verdef]
        for section in sections {
            let link = Int(section.header.sh_link)
            if users.contains(Int32(bitPattern: section.header.sh_type)) {
                guard !dynstr.contains(link) else { continue }
                let linked = sections.first { $0.index == link }
                let place = linked.map { "section \(link) at file offset \(hex($0.header.sh_offset)) (\($0.header.sh_size) bytes)" }
                    ?? "section \(link), which does not exist"
                throw .unsupported(reason: "\(name(section)) uses the string table \(place), not the dynamic string table at "
                                       + "file offset \(hex(tableOffset)) (\(size) bytes)")
            } else if link != 0, dynstr.contains(link) {
                throw .unsupported(reason: "\(name(section)) (type \(hex(UInt64(section.header.sh_type)))) also uses the dynamic string table")
            }
        }
    }

    // MARK: version tables

    /// glibc and libelf walk vn_next and vna_next until 0 (not vn_cnt and DT_VERNEEDNUM): so does this.
    /// Offsets only grow, so the walk ends within `size` bytes.
    mutating func readVerneed(at start: UInt64, size: UInt64) throws(DynamicStringsError) {
        let what = ".gnu.version_r at file offset \(hex(start))"
        guard let dataEnd = end(start, size), dataEnd <= fileSize else {
            throw .truncated(what: what, end: end(start, size) ?? .max, fileSize: fileSize)
        }
        guard let data = elf_getdata_rawchunk(elf, Int64(start), Int(size), ELF_T_VNEED) else {
            throw .corrupt(what: what, reason: libelfError())
        }
        var offset: UInt64 = 0
        while true {
            var entry = GElf_Verneed()
            guard offset <= UInt64(Int32.max), gelf_getverneed(data, Int32(offset), &entry) != nil else {
                throw .corrupt(what: what, reason: "entry at offset \(offset) is outside the table")
            }
            try add(.versionNeedFile, UInt64(entry.vn_file), "\(what): file name of the entry at offset \(offset)")
            var auxOffset = offset + UInt64(entry.vn_aux)
            while true {
                var aux = GElf_Vernaux()
                guard auxOffset <= UInt64(Int32.max), gelf_getvernaux(data, Int32(auxOffset), &aux) != nil else {
                    throw .corrupt(what: what, reason: "version entry at offset \(auxOffset) is outside the table")
                }
                try add(.versionNeedName, UInt64(aux.vna_name), "\(what): version name at offset \(auxOffset)")
                guard aux.vna_next != 0 else { break }
                auxOffset += UInt64(aux.vna_next)
            }
            guard entry.vn_next != 0 else { break }
            offset += UInt64(entry.vn_next)
        }
    }

    /// The same walk over the definitions; the BASE entry's first name is the file's own.
    mutating func readVerdef(at start: UInt64, size: UInt64) throws(DynamicStringsError) {
        let what = ".gnu.version_d at file offset \(hex(start))"
        guard let dataEnd = end(start, size), dataEnd <= fileSize else {
            throw .truncated(what: what, end: end(start, size) ?? .max, fileSize: fileSize)
        }
        guard let data = elf_getdata_rawchunk(elf, Int64(start), Int(size), ELF_T_VDEF) else {
            throw .corrupt(what: what, reason: libelfError())
        }
        var offset: UInt64 = 0
        while true {
            var entry = GElf_Verdef()
            guard offset <= UInt64(Int32.max), gelf_getverdef(data, Int32(offset), &entry) != nil else {
                throw .corrupt(what: what, reason: "entry at offset \(offset) is outside the table")
            }
            var auxOffset = offset + UInt64(entry.vd_aux)
            var first = true
            while true {
                var aux = GElf_Verdaux()
                guard auxOffset <= UInt64(Int32.max), gelf_getverdaux(data, Int32(auxOffset), &aux) != nil else {
                    throw .corrupt(what: what, reason: "name entry at offset \(auxOffset) is outside the table")
                }
                let base = first && entry.vd_flags & UInt16(VER_FLG_BASE) != 0
                try add(base ? .versionDefinitionBase : .versionDefinitionName, UInt64(aux.vda_name),
                        "\(what): name at offset \(auxOffset)")
                first = false
                guard aux.vda_next != 0 else { break }
                auxOffset += UInt64(aux.vda_next)
            }
            guard entry.vd_next != 0 else { break }
            offset += UInt64(entry.vd_next)
        }
    }

    // MARK: symbols

    mutating func readSymbols(at offset: UInt64, count: UInt64, symbolSize: UInt64) throws(DynamicStringsError) {
        let what = ".dynsym at file offset \(hex(offset))"
        guard count > 0 else { return }
        let (size, overflow) = count.multipliedReportingOverflow(by: symbolSize)
        guard !overflow, size <= Self.symbolLimit else {
            throw .unsupported(reason: "\(what): \(count) symbols, over the \(Self.symbolLimit)-byte limit")
        }
        guard let dataEnd = end(offset, size), dataEnd <= fileSize else {
            throw .truncated(what: what, end: end(offset, size) ?? .max, fileSize: fileSize)
        }
        guard let data = elf_getdata_rawchunk(elf, Int64(offset), Int(size), ELF_T_SYM) else {
            throw .corrupt(what: what, reason: libelfError())
        }
        for index in 0..<Int32(count) {
            var symbol = GElf_Sym()
            guard gelf_getsym(data, index, &symbol) != nil else { throw .corrupt(what: what, reason: libelfError()) }
            try add(.symbolName, UInt64(symbol.st_name), "\(what): name of symbol \(index)")
        }
    }

    /// DT_HASH's nchain: the number of symbols. Its words are 8 bytes on 64-bit s390 and Alpha.
    func symbolCount(hash address: UInt64) throws(DynamicStringsError) -> UInt64 {
        let wide = is64 && (ehdr.e_machine == UInt16(EM_S390) || ehdr.e_machine == UInt16(EM_ALPHA))
        let words = try readWords(at: address, count: 2, size: wide ? 8 : 4, "DT_HASH")
        return words[1]
    }

    /// The symbols up to the end of the last .gnu.hash chain (the one the highest bucket starts).
    func symbolCount(gnuHash address: UInt64) throws(DynamicStringsError) -> UInt64 {
        let header = try readWords(at: address, count: 4, size: 4, "DT_GNU_HASH")
        let (buckets, firstHashed, bloomWords) = (header[0], header[1], header[2])
        let bucketsAddress = address &+ 16 &+ bloomWords &* (is64 ? 8 : 4)
        guard buckets <= Self.symbolLimit / 4, bloomWords <= Self.symbolLimit / 8, bucketsAddress > address else {
            throw .corrupt(what: "DT_GNU_HASH", reason: "\(buckets) buckets, \(bloomWords) Bloom words")
        }
        let last = try readWords(at: bucketsAddress, count: buckets, size: 4, "DT_GNU_HASH buckets").max() ?? 0
        guard last != 0 else { return firstHashed }
        guard last >= firstHashed else {
            throw .corrupt(what: "DT_GNU_HASH", reason: "bucket names symbol \(last), before the first hashed one (\(firstHashed))")
        }
        // The chain words, read a block at a time up to the one with the end bit.
        // Wrapping arithmetic: a hostile address that wraps is then in no segment, and refused there.
        let chains = bucketsAddress &+ buckets &* 4
        var symbol = last
        while true {
            let at = chains &+ (symbol - firstHashed) &* 4
            guard let load = loads.first(where: { at >= $0.p_vaddr && at - $0.p_vaddr < $0.p_filesz }) else {
                throw .corrupt(what: "DT_GNU_HASH chain", reason: "symbol \(symbol)'s chain word is in no PT_LOAD segment's file bytes")
            }
            let available = (load.p_filesz - (at - load.p_vaddr)) / 4
            guard available > 0 else { throw .corrupt(what: "DT_GNU_HASH chain", reason: "the last chain has no end") }
            let block = try readWords(at: at, count: min(available, 1024), size: 4, "DT_GNU_HASH chain")
            if let endIndex = block.firstIndex(where: { $0 & 1 != 0 }) { return symbol + UInt64(endIndex) + 1 }
            symbol += UInt64(block.count)
            guard symbol - firstHashed <= Self.symbolLimit else {
                throw .corrupt(what: "DT_GNU_HASH chain", reason: "the last chain has no end")
            }
        }
    }

    /// `count` integers of `size` bytes (4 or 8) at `address`, in the file's byte order.
    func readWords(at address: UInt64, count: UInt64, size: Int, _ what: String) throws(DynamicStringsError) -> [UInt64] {
        guard count > 0 else { return [] }
        let offset = try fileOffset(of: address, size: count * UInt64(size), what)
        var bytes = [UInt8](repeating: 0, count: Int(count) * size)
        let got = bytes.withUnsafeMutableBytes { preadFully(fd, $0, at: offset) }
        guard got >= 0 else { throw .cannotRead(errno: errno) }
        guard got == bytes.count else { throw .truncated(what: what, end: offset + UInt64(bytes.count), fileSize: fileSize) }
        return (0..<Int(count)).map { index in
            (0..<size).reduce(UInt64(0)) { value, k in value << 8 | UInt64(bytes[index * size + (bigEndian ? k : size - 1 - k)]) }
        }
    }
}
