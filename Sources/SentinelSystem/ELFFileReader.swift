import CLibElf
import Glibc
import SentinelCore

/// Why an ELF file could not be read. `description` is one line, without the path (the caller adds it).
public enum ELFReadError: Error, Sendable, Hashable, CustomStringConvertible {
    /// stat(2) or open(2) failed.
    case cannotOpen(errno: Int32)
    /// fstat(2) or pread(2) failed on an open file.
    case cannotRead(errno: Int32)
    /// Shorter than its own ELF header.
    case truncatedHeader
    /// A table or segment the header points to runs past the end of the file.
    case truncated(what: String, end: UInt64, fileSize: UInt64)
    /// libelf (or a bounds check) refused a structure; `reason` is usually elf_errmsg text.
    case corrupt(what: String, reason: String)

    public var description: String {
        let text: String
        switch self {
        case .cannotOpen(let code): text = "cannot open: \(Self.errnoText(code))"
        case .cannotRead(let code): text = "cannot read: \(Self.errnoText(code))"
        case .truncatedHeader: text = "truncated ELF header"
        case .truncated(let what, let end, let size): text = "truncated: \(what) ends at byte \(end), file has \(size)"
        case .corrupt(let what, let reason): text = "corrupt \(what): \(reason)"
        }
        // Reasons end up in one-line warnings; libelf text never has newlines, but be sure.
        return String(text.map { $0.isNewline ? " " : $0 })
    }

    private static func errnoText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }
}

/// Reads the loader-relevant facts and OpenSSL markers out of an ELF file with libelf. Never loads it.
public enum ELFFileReader {
    /// elf_version must run once before any other libelf call; a static let is a thread-safe once.
    private static let libelfReady: Bool = elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE)

    /// Returns nil when the file is not ELF at all (first 4 bytes are not \x7fELF) or is not a regular
    /// file. Throws with a one-line reason for a corrupt or truncated ELF, or an open/read error.
    /// How the OpenSSL exports are found: through `.gnu.hash` where the file has one, with large
    /// string tables read on demand (the default); or by loading all of .dynsym and .dynstr, as files
    /// without a usable table are read (tests compare the two).
    public enum ExportLookup: Sendable { case hashTable, fullScan }

    public static func read(path: String, exportLookup: ExportLookup = .hashTable) throws(ELFReadError) -> ELFObject? {
        // stat before open: opening a device or socket can have side effects or fail noisily.
        var st = stat()
        guard stat(EscapedBytes.cString(path), &st) == 0 else { throw .cannotOpen(errno: errno) }
        guard st.st_mode & S_IFMT == S_IFREG else { return nil }
        // O_NONBLOCK: if the path was swapped for a FIFO since stat, open must not wait for a writer.
        let fd = open(EscapedBytes.cString(path), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw .cannotOpen(errno: errno) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .cannotRead(errno: errno) }
        return try read(fd: fd, status: status, exportLookup: exportLookup)
    }

    /// Same, from an already open file descriptor, which stays open. `path` is never reopened, and errors
    /// do not repeat it (the caller prefixes it to the reason).
    public static func read(fd: Int32, path: String) throws(ELFReadError) -> ELFObject? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .cannotRead(errno: errno) }
        return try read(fd: fd, status: st)
    }

    /// Same, with the fstat(2) the caller already made of `fd`.
    static func read(fd: Int32, status st: stat, exportLookup: ExportLookup = .hashTable) throws(ELFReadError) -> ELFObject? {
        guard st.st_mode & S_IFMT == S_IFREG else { return nil }
        return try read(.file(fd), size: UInt64(max(st.st_size, 0)), exportLookup: exportLookup)
    }

    /// Same, from bytes in memory (an archive member, decompressed): audited as the file it would be
    /// once extracted. libelf may rewrite `image` in place (elf_memory), so it is the caller's own copy.
    public static func read(memory image: UnsafeMutableRawBufferPointer) throws(ELFReadError) -> ELFObject? {
        try read(.memory(image), size: UInt64(image.count), exportLookup: .hashTable)
    }

    private static func read(_ source: ByteSource, size fileSize: UInt64, exportLookup: ExportLookup) throws(ELFReadError) -> ELFObject? {
        var ident = [UInt8](repeating: 0, count: 64)
        let got = ident.withUnsafeMutableBytes { source.read(into: $0, at: 0) }
        guard got >= 0 else { throw .cannotRead(errno: errno) }
        guard got >= 4, ident[0] == 0x7f, ident[1] == 0x45, ident[2] == 0x4c, ident[3] == 0x46 else { return nil }
        let headerSize: Int
        switch Int32(got >= 5 ? ident[Int(EI_CLASS)] : 0) {
        case ELFCLASS32: headerSize = 52
        case ELFCLASS64: headerSize = 64
        default:
            if got < Int(EI_NIDENT) { throw .truncatedHeader }
            throw .corrupt(what: "ELF identification", reason: "unknown class \(ident[Int(EI_CLASS)])")
        }
        guard got >= headerSize, fileSize >= UInt64(headerSize) else { throw .truncatedHeader }

        guard libelfReady else { throw .corrupt(what: "libelf", reason: "elf_version(EV_CURRENT) failed") }
        // ELF_C_READ, not _MMAP: libelf preads the headers and the few sections asked for. Mapping every
        // file cost a page fault per touched page and, at munmap, a TLB shootdown to the other core's
        // reader thread: a third of a scan's CPU time under /usr/lib. And a mapped file truncated in place
        // while it is read (a bundle rewritten during a scan) raises SIGBUS and kills the daemon (seen
        // under ThreadSanitizer in the bundle-churn test); a short pread is an error for that file only.
        let opened: OpaquePointer? = switch source {
        case .file(let fd): elf_begin(fd, ELF_C_READ, nil)
        case .memory(let image): elf_memory(image.baseAddress?.assumingMemoryBound(to: CChar.self), image.count)
        }
        guard let elf = opened else {
            throw .corrupt(what: "ELF file", reason: libelfError())
        }
        defer { elf_end(elf) }
        guard elf_kind(elf) == ELF_K_ELF else {
            throw .corrupt(what: "ELF identification",
                           reason: "class \(ident[Int(EI_CLASS)]), data \(ident[Int(EI_DATA)]), version \(ident[Int(EI_VERSION)])")
        }
        var parser = try Parser(elf: elf, source: source, fileSize: fileSize, exportLookup: exportLookup)
        return try parser.parse()
    }
}

/// Where an ELF file's bytes come from: an open file, or a buffer (an archive member, decompressed).
private enum ByteSource {
    case file(Int32)
    case memory(UnsafeMutableRawBufferPointer)

    /// pread's contract: fills `buffer` up to the end of the bytes; the count, or -1 with errno set.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> Int {
        switch self {
        case .file(let fd): return preadFully(fd, buffer, at: offset)
        case .memory(let image):
            guard offset < UInt64(image.count) else { return 0 }
            let n = min(buffer.count, image.count - Int(offset))
            buffer.baseAddress!.copyMemory(from: image.baseAddress! + Int(offset), byteCount: n)
            return n
        }
    }

    /// The first offset at or after `offset` that holds data (SEEK_DATA: a file's holes are skipped);
    /// nil when only a hole follows.
    func dataStart(at offset: UInt64) -> UInt64? {
        guard case .file(let fd) = self else { return offset }
        let data = lseek(fd, off_t(offset), 3)  // SEEK_DATA, which Glibc's module leaves out (_GNU_SOURCE)
        if data < 0 { return errno == ENXIO ? nil : offset }
        return UInt64(data)
    }
}

/// The shared table checks (ELFTables) fail with this error's cases of the same names.
extension ELFReadError: ELFTables.ReaderError {}

/// A string table as bytes; every lookup is bounds checked and needs a NUL inside the table. Strings come
/// out as file names do (EscapedBytes): DT_NEEDED and RPATH name files the walk found by their bytes.
private struct StringTable {
    let bytes: UnsafeRawBufferPointer

    func string(at offset: UInt64) -> String? {
        guard let base = bytes.baseAddress, offset < UInt64(bytes.count) else { return nil }
        let start = base + Int(offset)
        guard let nul = memchr(start, 0, bytes.count - Int(offset)) else { return nil }
        let length = UnsafeRawPointer(nul) - start
        return EscapedBytes.string(UnsafeRawBufferPointer(start: start, count: length))
    }

    func firstByte(at offset: UInt64) -> UInt8? {
        guard let base = bytes.baseAddress, offset < UInt64(bytes.count) else { return nil }
        return base.load(fromByteOffset: Int(offset), as: UInt8.self)
    }

    /// Whether the NUL-terminated string at `offset` is exactly `name` (no String allocated).
    func matches(_ offset: UInt64, _ name: StaticString) -> Bool {
        let length = name.utf8CodeUnitCount
        guard let base = bytes.baseAddress, offset < UInt64(bytes.count),
              bytes.count - Int(offset) > length else { return false }
        let start = base + Int(offset)
        return start.load(fromByteOffset: length, as: UInt8.self) == 0 && memcmp(start, name.utf8Start, length) == 0
    }
}

/// A large string table (libLLVM's .dynstr is 3 MB) read a window at a time where a string is asked
/// for, instead of loaded whole: the dynamic section and the version tables need a few dozen names.
private final class FileStrings {
    let source: ByteSource
    let offset: UInt64
    let size: UInt64
    let index: Int
    let fileSize: UInt64
    private var window: [UInt8] = []
    private var windowStart: UInt64 = 0

    init(source: ByteSource, offset: UInt64, size: UInt64, index: Int, fileSize: UInt64) {
        self.source = source; self.offset = offset; self.size = size; self.index = index; self.fileSize = fileSize
    }

    /// What `StringTable.string(at:)` gives for the whole table: nil when `at` is past the end or no
    /// NUL follows before it.
    func string(at: UInt64) throws(ELFReadError) -> String? {
        guard at < size else { return nil }
        var collected: [UInt8] = []
        var position = at
        while position < size {
            if position < windowStart || position >= windowStart + UInt64(window.count) {
                let want = Int(min(4096, size - position))
                window = [UInt8](repeating: 0, count: want)
                let got = window.withUnsafeMutableBytes { source.read(into: $0, at: offset + position) }
                if got < 0 { throw .cannotRead(errno: errno) }
                // Shorter than the section header said: the file was cut while it was read.
                guard got == want else { throw .truncated(what: "string table \(index)", end: offset + size, fileSize: fileSize) }
                windowStart = position
            }
            let from = Int(position - windowStart)
            if let nul = window[from...].firstIndex(of: 0) {
                collected += window[from..<nul]
                return EscapedBytes.string(collected)
            }
            collected += window[from...]
            position = windowStart + UInt64(window.count)
        }
        return nil
    }
}

/// A string table in memory (from libelf) or read on demand.
private enum Strings {
    case memory(StringTable)
    case file(FileStrings)

    func string(at offset: UInt64) throws(ELFReadError) -> String? {
        switch self {
        case .memory(let table): return table.string(at: offset)
        case .file(let table): return try table.string(at: offset)
        }
    }
}

/// The on-demand string tables of one file by section index (the dynamic section and both version
/// tables share .dynstr and its windows).
private final class FileStringsCache {
    var tables: [Int: FileStrings] = [:]
}

private struct Parser {
    let elf: OpaquePointer
    let source: ByteSource
    let fileSize: UInt64
    let exportLookup: ELFFileReader.ExportLookup
    let fileStrings = FileStringsCache()
    var ehdr = GElf_Ehdr()
    var object: ELFObject

    init(elf: OpaquePointer, source: ByteSource, fileSize: UInt64, exportLookup: ELFFileReader.ExportLookup) throws(ELFReadError) {
        self.elf = elf
        self.source = source
        self.fileSize = fileSize
        self.exportLookup = exportLookup
        guard gelf_getehdr(elf, &ehdr) != nil else { throw .corrupt(what: "ELF header", reason: libelfError()) }
        let elfClass: ELFObject.ELFClass = gelf_getclass(elf) == ELFCLASS32 ? .elf32 : .elf64
        let type: ELFObject.ObjectType = switch Int32(ehdr.e_type) {
        case ET_REL: .relocatable
        case ET_EXEC: .executable
        case ET_DYN: .sharedObject
        case ET_CORE: .core
        default: .other
        }
        object = ELFObject(elfClass: elfClass, machine: ehdr.e_machine, type: type)
        object.entry = ehdr.e_entry
    }

    mutating func parse() throws(ELFReadError) -> ELFObject {
        let segments = try readProgramHeaders()
        let sections = try readSectionHeaders()

        if let interp = segments.interp, !sections.noBitsAddresses.contains(interp.p_vaddr) {
            object.interpreter = try interpreter(interp)
        }
        if let dynamic = sections.dynamic {
            let data = try sectionData(dynamic.scn, "dynamic section")
            try readDynamic(data, strings: try linkedStrings(dynamic.link, "dynamic section"))
        } else if sections.count == 0, let dynamic = segments.dynamic {
            try readDynamicSegment(dynamic, loads: segments.loads)
        }
        if let pydata = sections.pydata {
            guard let sectionEnd = end(pydata.sh_offset, pydata.sh_size), sectionEnd <= fileSize else {
                throw .truncated(what: "pydata section", end: end(pydata.sh_offset, pydata.sh_size) ?? .max, fileSize: fileSize)
            }
            object.pyinstallerArchive = FileRange(offset: pydata.sh_offset, size: pydata.sh_size)
        }
        object.embedsPython = sections.pyRuntime
        if let verneed = sections.verneed { try readVerneed(verneed) }
        if let verdef = sections.verdef { try readVerdef(verdef) }
        if let dynsym = sections.dynsym {
            if let hash = sections.gnuHash, exportLookup == .hashTable,
               let exports = exportsThroughGnuHash(dynsym: sections.dynsymHeader, index: sections.dynsymIndex, hash: hash) {
                object.exports = exports
            } else {
                try readExports(dynsym)
            }
        }
        // Most files hold no OpenSSL build strings: a cheap pass looks for their key first, and the full
        // search runs only where it hits or where the object exports OpenSSL entry points.
        var gnutlsVersion: String?
        if !sections.readOnlyData.isEmpty {
            let data = try ReadOnlyData(source: source, sections: sections.readOnlyData, fileSize: fileSize)
            if data.declared > ReadOnlyData.limit {
                object.unsearchedReadOnlyData = data.declared
            } else {
                var search = !object.exports.isEmpty
                // `OPENSSLDIR: n/a` is 15 bytes: windows overlapping by 14 hold each key whole.
                if !search { search = try data.windows(overlap: 14) { window, _ in EmbeddedStrings.hasBuildDirKey(window) } }
                if search {
                    let found = try EmbeddedStrings.find(in: data, versionLine: gnutlsReleaseLine())
                    object.embeddedOpenSSL = found.openSSL
                    object.foreignCrypto = found.foreign
                    gnutlsVersion = found.lineVersion
                }
            }
        }
        if object.foreignCrypto == nil {
            if object.exports.contains(.gnutls) { object.foreignCrypto = ForeignCrypto(library: .gnuTLS, version: gnutlsVersion) }
            else if object.exports.contains(.nettle) { object.foreignCrypto = ForeignCrypto(library: .nettle) }
        }
        return object
    }

    /// "3.7." for a GnuTLS whose newest symbol version is GNUTLS_3_7_7: its version text starts so.
    func gnutlsReleaseLine() -> String? {
        guard object.exports.contains(.gnutls) else { return nil }
        return object.newestVersionNodeLine(prefix: "GNUTLS_").map { $0 + "." }
    }

    // MARK: program headers

    struct Segments {
        var interp: GElf_Phdr?
        var dynamic: GElf_Phdr?
        var loads: [GElf_Phdr] = []
    }

    mutating func readProgramHeaders() throws(ELFReadError) -> Segments {
        let headers: [GElf_Phdr]
        do { headers = try ELFTables.programHeaders(elf, ehdr, fileSize: fileSize) } catch { throw error.mapped() }
        var segments = Segments()
        for phdr in headers {
            switch phdr.p_type {
            case UInt32(PT_INTERP): if segments.interp == nil { segments.interp = phdr }
            case UInt32(PT_DYNAMIC): if segments.dynamic == nil { segments.dynamic = phdr }
            case UInt32(PT_LOAD): segments.loads.append(phdr)
            default: break
            }
        }
        return segments
    }

    func interpreter(_ phdr: GElf_Phdr) throws(ELFReadError) -> String {
        guard let segmentEnd = end(phdr.p_offset, phdr.p_filesz), segmentEnd <= fileSize else {
            throw .truncated(what: "PT_INTERP", end: end(phdr.p_offset, phdr.p_filesz) ?? .max, fileSize: fileSize)
        }
        var bytes = [UInt8](repeating: 0, count: Int(phdr.p_filesz))
        let got = bytes.withUnsafeMutableBytes { preadFully($0, at: phdr.p_offset) }
        guard got == bytes.count else {
            throw got < 0 ? .cannotRead(errno: errno) : .truncated(what: "PT_INTERP", end: segmentEnd, fileSize: fileSize)
        }
        let path = bytes.withUnsafeBytes { StringTable(bytes: $0).string(at: 0) }
        guard let path else { throw .corrupt(what: "PT_INTERP", reason: "not NUL-terminated") }
        return path
    }

    /// pread until `buffer` is full or the file ends; the count read, or -1 with errno set.
    func preadFully(_ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> Int {
        source.read(into: buffer, at: offset)
    }

    // MARK: sections

    struct Sections {
        var count = 0
        /// Addresses of allocated SHT_NOBITS sections: in a separate debug file (objcopy --only-keep-debug)
        /// .interp, .dynamic and friends become NOBITS while the program headers still point at them.
        var noBitsAddresses: Set<UInt64> = []
        var dynamic: (scn: OpaquePointer, link: Int)?
        var dynsym: (scn: OpaquePointer, link: Int)?
        /// .dynsym's header and index, and the .gnu.hash table's header: the exports are looked up there.
        var dynsymHeader = GElf_Shdr()
        var dynsymIndex = 0
        var gnuHash: GElf_Shdr?
        var verneed: (scn: OpaquePointer, link: Int, count: UInt32)?
        var verdef: (scn: OpaquePointer, link: Int, count: UInt32)?
        var readOnlyData: [(scn: OpaquePointer, offset: UInt64, size: UInt64)] = []
        /// PyInstaller's archive section (objcopy --add-section pydata=PKG).
        var pydata: GElf_Shdr?
        /// CPython's `.PyRuntime` section: the interpreter is linked into this file.
        var pyRuntime = false
    }

    func readSectionHeaders() throws(ELFReadError) -> Sections {
        let table: (count: Int, sections: [ELFTables.Section])
        do { table = try ELFTables.sections(elf, ehdr, fileSize: fileSize) } catch { throw error.mapped() }
        var sections = Sections()
        guard table.count > 0 else { return sections }
        sections.count = table.count
        var namesIndex = 0
        if elf_getshdrstrndx(elf, &namesIndex) != 0 { namesIndex = 0 }

        for section in table.sections {
            let (next, shdr) = (section.scn, section.header)
            switch Int32(bitPattern: shdr.sh_type) {
            case SHT_DYNAMIC where sections.dynamic == nil:
                sections.dynamic = (next, Int(shdr.sh_link))
            case SHT_DYNSYM where sections.dynsym == nil:
                sections.dynsym = (next, Int(shdr.sh_link))
                sections.dynsymHeader = shdr
                sections.dynsymIndex = section.index
            case SHT_GNU_HASH where sections.gnuHash == nil:
                sections.gnuHash = shdr
            case SHT_GNU_verneed where sections.verneed == nil:
                sections.verneed = (next, Int(shdr.sh_link), shdr.sh_info)
            case SHT_GNU_verdef where sections.verdef == nil:
                sections.verdef = (next, Int(shdr.sh_link), shdr.sh_info)
            case SHT_NOBITS where shdr.sh_flags & UInt64(SHF_ALLOC) != 0:
                sections.noBitsAddresses.insert(shdr.sh_addr)
            case SHT_PROGBITS where shdr.sh_flags & UInt64(SHF_ALLOC) == 0:
                if namesIndex != 0, sections.pydata == nil, let name = elf_strptr(elf, namesIndex, Int(shdr.sh_name)),
                   strcmp(name, "pydata") == 0 { sections.pydata = shdr }
            case SHT_PROGBITS where shdr.sh_flags & UInt64(SHF_WRITE) != 0:
                if namesIndex != 0, let name = elf_strptr(elf, namesIndex, Int(shdr.sh_name)), strcmp(name, ".PyRuntime") == 0 {
                    sections.pyRuntime = true
                }
            case SHT_PROGBITS:
                let flags = shdr.sh_flags
                guard flags & UInt64(SHF_WRITE | SHF_EXECINSTR) == 0,
                      shdr.sh_size > 0 else { break }
                // Unwind tables are a large share of read-only data and never hold strings.
                if namesIndex != 0, let name = elf_strptr(elf, namesIndex, Int(shdr.sh_name)),
                   strncmp(name, ".eh_frame", 9) == 0 || strcmp(name, ".gcc_except_table") == 0 { break }
                sections.readOnlyData.append((next, shdr.sh_offset, shdr.sh_size))
            default:
                break
            }
        }
        return sections
    }

    func sectionData(_ scn: OpaquePointer, _ what: String) throws(ELFReadError) -> UnsafeMutablePointer<Elf_Data> {
        guard let data = elf_getdata(scn, nil) else { throw .corrupt(what: what, reason: libelfError()) }
        // gelf_get* index d_buf after checking only d_size.
        guard data.pointee.d_buf != nil || data.pointee.d_size == 0 else {
            throw .corrupt(what: what, reason: "no data")
        }
        return data
    }

    /// The string table a section's sh_link names, loaded whole by libelf.
    func linkedTable(_ index: Int, _ what: String) throws(ELFReadError) -> StringTable {
        let (scn, _) = try linkedSection(index, what)
        return try table(scn, index)
    }

    /// The same, read on demand where it is large (64 KiB or more) and plainly in the file; anything
    /// else is loaded by libelf, which reports what is wrong with it as it always did.
    func linkedStrings(_ index: Int, _ what: String) throws(ELFReadError) -> Strings {
        let (scn, shdr) = try linkedSection(index, what)
        if let known = fileStrings.tables[index] { return .file(known) }
        if exportLookup == .hashTable, shdr.sh_size >= 64 << 10, shdr.sh_flags & UInt64(SHF_COMPRESSED) == 0,
           let tableEnd = end(shdr.sh_offset, shdr.sh_size), tableEnd <= fileSize {
            let strings = FileStrings(source: source, offset: shdr.sh_offset, size: shdr.sh_size, index: index, fileSize: fileSize)
            fileStrings.tables[index] = strings
            return .file(strings)
        }
        return .memory(try table(scn, index))
    }

    private func linkedSection(_ index: Int, _ what: String) throws(ELFReadError) -> (OpaquePointer, GElf_Shdr) {
        guard index != 0, let scn = elf_getscn(elf, index) else {
            throw .corrupt(what: what, reason: "sh_link \(index) is not a section")
        }
        var shdr = GElf_Shdr()
        guard gelf_getshdr(scn, &shdr) != nil, shdr.sh_type == UInt32(SHT_STRTAB) else {
            throw .corrupt(what: what, reason: "sh_link \(index) is not a string table")
        }
        return (scn, shdr)
    }

    private func table(_ scn: OpaquePointer, _ index: Int) throws(ELFReadError) -> StringTable {
        let data = try sectionData(scn, "string table \(index)")
        guard let buf = data.pointee.d_buf else { return StringTable(bytes: UnsafeRawBufferPointer(start: nil, count: 0)) }
        return StringTable(bytes: UnsafeRawBufferPointer(start: buf, count: data.pointee.d_size))
    }

    // MARK: dynamic

    mutating func readDynamic(_ data: UnsafeMutablePointer<Elf_Data>, strings: Strings) throws(ELFReadError) {
        let entrySize = gelf_fsize(elf, ELF_T_DYN, 1, UInt32(EV_CURRENT))
        let count = entrySize > 0 ? min(data.pointee.d_size / entrySize, Int(Int32.max)) : 0
        func string(_ dyn: GElf_Dyn, _ tag: String) throws(ELFReadError) -> String {
            guard let s = try strings.string(at: dyn.d_un.d_val) else {
                throw .corrupt(what: "dynamic section", reason: "\(tag) string offset \(dyn.d_un.d_val) out of range")
            }
            return s
        }
        for index in 0..<count {
            var dyn = GElf_Dyn()
            guard gelf_getdyn(data, Int32(index), &dyn) != nil else {
                throw .corrupt(what: "dynamic section", reason: libelfError())
            }
            // Later entries override earlier ones, as in glibc's dynamic info table.
            switch dyn.d_tag {
            case Int64(DT_NULL): return
            case Int64(DT_NEEDED): object.needed.append(try string(dyn, "DT_NEEDED"))
            case Int64(DT_SONAME): object.soname = try string(dyn, "DT_SONAME")
            case Int64(DT_RPATH): object.rpath = try string(dyn, "DT_RPATH")
            case Int64(DT_RUNPATH): object.runpath = try string(dyn, "DT_RUNPATH")
            case Int64(DT_FLAGS_1): object.noDefaultLib = dyn.d_un.d_val & UInt64(DF_1_NODEFLIB) != 0
            default: break
            }
        }
    }

    /// No section table (sstrip'd files): read PT_DYNAMIC and find DT_STRTAB through the PT_LOADs.
    mutating func readDynamicSegment(_ segment: GElf_Phdr, loads: [GElf_Phdr]) throws(ELFReadError) {
        let dynamic: ELFTables.DynamicTable?
        do {
            dynamic = try ELFTables.dynamicEntries(elf, at: segment.p_offset, size: segment.p_filesz, "PT_DYNAMIC", fileSize: fileSize)
        } catch { throw error.mapped() }
        guard let dynamic else { return }
        // The last of each tag counts, as in glibc's dynamic info table.
        guard let strtab = dynamic.entries.last(where: { $0.tag == Int64(DT_STRTAB) })?.value,
              let strsz = dynamic.entries.last(where: { $0.tag == Int64(DT_STRSZ) })?.value, strsz > 0 else {
            throw .corrupt(what: "PT_DYNAMIC", reason: "no DT_STRTAB/DT_STRSZ")
        }
        guard let load = loads.first(where: { strtab >= $0.p_vaddr && strtab - $0.p_vaddr < $0.p_filesz }),
              let offset = end(load.p_offset, strtab - load.p_vaddr),
              let tableEnd = end(offset, strsz), tableEnd <= fileSize,
              let chunk = elf_getdata_rawchunk(elf, Int64(offset), Int(strsz), ELF_T_BYTE),
              let buf = chunk.pointee.d_buf else {
            throw .corrupt(what: "PT_DYNAMIC", reason: "DT_STRTAB 0x\(String(strtab, radix: 16)) not in the file")
        }
        try readDynamic(dynamic.data, strings: .memory(StringTable(bytes: UnsafeRawBufferPointer(start: buf, count: chunk.pointee.d_size))))
    }

    // MARK: .gnu.version_r

    mutating func readVerneed(_ section: (scn: OpaquePointer, link: Int, count: UInt32)) throws(ELFReadError) {
        let data = try sectionData(section.scn, ".gnu.version_r")
        let strings = try linkedStrings(section.link, ".gnu.version_r")
        let size = UInt64(data.pointee.d_size)
        // Each entry is 16 bytes and vn_next only moves forward, so this also bounds a corrupt chain.
        let limit = min(UInt64(section.count == 0 ? UInt32.max : section.count), size / 16)
        var offset: UInt64 = 0
        var seen: UInt64 = 0
        while seen < limit {
            var verneed = GElf_Verneed()
            guard offset <= UInt64(Int32.max), gelf_getverneed(data, Int32(offset), &verneed) != nil else {
                throw .corrupt(what: ".gnu.version_r", reason: "entry at offset \(offset) out of range")
            }
            guard let file = try strings.string(at: UInt64(verneed.vn_file)) else {
                throw .corrupt(what: ".gnu.version_r", reason: "vn_file offset \(verneed.vn_file) out of range")
            }
            object.versionNeedFiles.append(file)
            // The version nodes needed from that file (OPENSSL_3.5.0…): the loader refuses a file lacking one.
            var names: [String] = []
            var auxOffset = offset + UInt64(verneed.vn_aux)
            for _ in 0..<min(UInt64(verneed.vn_cnt), size / 16) {
                var aux = GElf_Vernaux()
                guard auxOffset <= UInt64(Int32.max), gelf_getvernaux(data, Int32(auxOffset), &aux) != nil,
                      let name = try strings.string(at: UInt64(aux.vna_name)) else {
                    throw .corrupt(what: ".gnu.version_r", reason: "version entry at offset \(auxOffset) out of range")
                }
                names.append(name)
                guard aux.vna_next != 0 else { break }
                auxOffset += UInt64(aux.vna_next)
            }
            object.neededVersions[file, default: []] += names
            seen += 1
            guard verneed.vn_next != 0 else { break }
            offset += UInt64(verneed.vn_next)
        }
    }

    // MARK: .gnu.version_d

    /// The version nodes this object defines (libcrypto 3.5: OPENSSL_3.0.0 … OPENSSL_3.5.0), without the
    /// base entry that repeats the file's own name.
    mutating func readVerdef(_ section: (scn: OpaquePointer, link: Int, count: UInt32)) throws(ELFReadError) {
        let data = try sectionData(section.scn, ".gnu.version_d")
        let strings = try linkedStrings(section.link, ".gnu.version_d")
        let size = UInt64(data.pointee.d_size)
        let limit = min(UInt64(section.count == 0 ? UInt32.max : section.count), size / 20)
        var offset: UInt64 = 0
        for _ in 0..<limit {
            var verdef = GElf_Verdef()
            guard offset <= UInt64(Int32.max), gelf_getverdef(data, Int32(offset), &verdef) != nil else {
                throw .corrupt(what: ".gnu.version_d", reason: "entry at offset \(offset) out of range")
            }
            if verdef.vd_flags & UInt16(VER_FLG_BASE) == 0, verdef.vd_cnt > 0 {
                var aux = GElf_Verdaux()
                let auxOffset = offset + UInt64(verdef.vd_aux)
                guard auxOffset <= UInt64(Int32.max), gelf_getverdaux(data, Int32(auxOffset), &aux) != nil,
                      let name = try strings.string(at: UInt64(aux.vda_name)) else {
                    throw .corrupt(what: ".gnu.version_d", reason: "name of entry at offset \(offset) out of range")
                }
                object.definedVersions.append(name)
            }
            guard verdef.vd_next != 0 else { break }
            offset += UInt64(verdef.vd_next)
        }
    }

    // MARK: exports

    /// The exports that mark an OpenSSL library, with their .gnu.hash values, for both lookups;
    /// `exports(found:)` says what each (in this order) means.
    static let exportNames: [(name: StaticString, hash: UInt32)] = [
        "OPENSSL_init_crypto", "ERR_get_error", "CRYPTO_malloc", "OPENSSL_init_ssl", "OSSL_provider_init",
        "gnutls_global_init", "nettle_sha256_init",
    ].map { ($0, gnuHash($0)) }

    /// OPENSSL_init_ssl only for libssl: GnuTLS's OpenSSL compatibility layer exports SSL_CTX_new too.
    static func exports(found: [Bool]) -> OpenSSLExports {
        var exports: OpenSSLExports = []
        if found[0] || (found[1] && found[2]) { exports.insert(.libcrypto) }
        if found[3] { exports.insert(.libssl) }
        if found[4] { exports.insert(.provider) }
        if found[5] { exports.insert(.gnutls) }
        if found[6] { exports.insert(.nettle) }
        return exports
    }

    /// st_name of a .dynsym entry in memory layout (Elf64_Sym or Elf32_Sym, host byte order) when it
    /// defines a GLOBAL or WEAK symbol, as an export does; nil for the rest.
    static func definedName(_ sym: UnsafeRawPointer, is64: Bool) -> UInt32? {
        let bind = Int32(sym.load(fromByteOffset: is64 ? 4 : 12, as: UInt8.self) >> 4)  // st_info
        guard sym.loadUnaligned(fromByteOffset: is64 ? 6 : 14, as: UInt16.self) != UInt16(SHN_UNDEF),  // st_shndx
              bind == STB_GLOBAL || bind == STB_WEAK else { return nil }
        return sym.loadUnaligned(as: UInt32.self)  // st_name is the first field of both
    }

    /// The .gnu.hash function (dl_new_hash).
    static func gnuHash(_ name: StaticString) -> UInt32 {
        var h: UInt32 = 5381
        for i in 0..<name.utf8CodeUnitCount { h = h &* 33 &+ UInt32(name.utf8Start[i]) }
        return h
    }

    /// The exports `readExports` would find, looked up through `.gnu.hash` as the loader does: the
    /// hash table, a few symbols and names are read instead of all of .dynsym and .dynstr (libLLVM's
    /// are 4 MB, read for five names). Symbols before the table's first hashed index (imports, mostly)
    /// are checked one by one. nil when the table cannot be used as is (another byte order, compressed
    /// or out-of-file sections, an inconsistent table, a failed read): the full scan then runs, and
    /// reports whatever is wrong in the words it always did.
    func exportsThroughGnuHash(dynsym: GElf_Shdr, index: Int, hash: GElf_Shdr) -> OpenSSLExports? {
        #if _endian(little)
        guard Int32(ehdr.e_ident.5) == ELFDATA2LSB else { return nil }
        #else
        return nil
        #endif
        let compressed = UInt64(SHF_COMPRESSED)
        guard Int(hash.sh_link) == index, dynsym.sh_link != 0, (dynsym.sh_flags | hash.sh_flags) & compressed == 0,
              let stringsSection = elf_getscn(elf, Int(dynsym.sh_link)) else { return nil }
        var strings = GElf_Shdr()
        guard gelf_getshdr(stringsSection, &strings) != nil, strings.sh_type == UInt32(SHT_STRTAB),
              strings.sh_flags & compressed == 0 else { return nil }
        for section in [dynsym, hash, strings] {
            guard let sectionEnd = end(section.sh_offset, section.sh_size), sectionEnd <= fileSize else { return nil }
        }
        let is64 = gelf_getclass(elf) == ELFCLASS64
        let entrySize = UInt64(is64 ? MemoryLayout<Elf64_Sym>.size : MemoryLayout<Elf32_Sym>.size)
        let symbolCount = min(dynsym.sh_size / entrySize, UInt64(Int32.max))
        guard symbolCount > 0, hash.sh_size >= 16 else { return nil }

        // The table's head: most libraries' whole table fits in the first read. GNU ld puts .dynsym
        // right after .gnu.hash: then the same read takes the start of .dynsym too (the symbols before
        // the hashed ones, checked below), one pread per file fewer.
        var headLength = min(hash.sh_size, 16 << 10)
        let hashEnd = hash.sh_offset + hash.sh_size
        if hash.sh_size <= 16 << 10, dynsym.sh_offset >= hashEnd, dynsym.sh_offset - hashEnd <= 256 {
            headLength = min(dynsym.sh_offset + dynsym.sh_size, hash.sh_offset + (16 << 10)) - hash.sh_offset
        }
        let head = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(headLength), alignment: 8)
        defer { head.deallocate() }
        guard preadFully(head, at: hash.sh_offset) == head.count else { return nil }
        let bucketCount = UInt64(head.load(as: UInt32.self)), firstHashed = UInt64(head.load(fromByteOffset: 4, as: UInt32.self))
        let bloomWords = UInt64(head.load(fromByteOffset: 8, as: UInt32.self)), bloomShift = head.load(fromByteOffset: 12, as: UInt32.self)
        let bloomWordSize: UInt64 = is64 ? 8 : 4
        let bucketsStart = 16 + bloomWords * bloomWordSize, chainsStart = bucketsStart + bucketCount * 4
        guard bucketCount > 0, firstHashed <= symbolCount, chainsStart <= hash.sh_size else { return nil }

        /// The 32-bit word at byte `offset` of the table, from the head or read on its own.
        func word(at offset: UInt64) -> UInt32? {
            guard offset + 4 <= hash.sh_size else { return nil }
            if offset + 4 <= UInt64(head.count) { return head.loadUnaligned(fromByteOffset: Int(offset), as: UInt32.self) }
            var value: UInt32 = 0
            let got = withUnsafeMutableBytes(of: &value) { preadFully($0, at: hash.sh_offset + offset) }
            return got == 4 ? value : nil
        }
        /// Symbol `symbol`'s name offset, binding and section, when it is a definition.
        func definition(_ symbol: UInt64) -> UInt64?? {
            var entry = (UInt64(0), UInt64(0), UInt64(0))  // 24 bytes: an Elf64_Sym or an Elf32_Sym
            let got = withUnsafeMutableBytes(of: &entry) { raw in
                preadFully(UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(entrySize)]), at: dynsym.sh_offset + symbol * entrySize)
            }
            guard got == Int(entrySize) else { return nil }
            return .some(withUnsafeBytes(of: &entry) { Self.definedName($0.baseAddress!, is64: is64).map(UInt64.init) })
        }
        /// Which of `exportNames` the NUL-terminated name at `offset` of .dynstr is, if any.
        func nameIndex(at offset: UInt64) -> Int?? {
            guard offset < strings.sh_size else { return .some(nil) }
            var bytes = (UInt64(0), UInt64(0), UInt64(0))  // the longest name and its NUL fit in 24 bytes
            let want = Int(min(24, strings.sh_size - offset))
            let got = withUnsafeMutableBytes(of: &bytes) { raw in
                preadFully(UnsafeMutableRawBufferPointer(rebasing: raw[0..<want]), at: strings.sh_offset + offset)
            }
            guard got == want else { return nil }
            return withUnsafeBytes(of: &bytes) { raw -> Int? in
                Self.exportNames.firstIndex { name, _ in
                    let n = name.utf8CodeUnitCount
                    return want > n && raw[n] == 0 && memcmp(raw.baseAddress!, name.utf8Start, n) == 0
                }
            }
        }

        var found = [Bool](repeating: false, count: Self.exportNames.count)
        // Symbols outside the table: undefined ones are skipped on their entry alone.
        if firstHashed > 1 {
            let bytes = Int((firstHashed - 1) * entrySize)
            guard bytes <= 1 << 20 else { return nil }
            let start = dynsym.sh_offset + entrySize
            let unhashed: UnsafeRawBufferPointer
            var owned: UnsafeMutableRawBufferPointer?
            defer { owned?.deallocate() }
            if start >= hash.sh_offset, start - hash.sh_offset + UInt64(bytes) <= UInt64(head.count) {
                unhashed = UnsafeRawBufferPointer(rebasing: head[Int(start - hash.sh_offset)...].prefix(bytes))
            } else {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 8)
                owned = buffer
                guard preadFully(buffer, at: start) == bytes else { return nil }
                unhashed = UnsafeRawBufferPointer(buffer)
            }
            var looked = 0
            for i in 0..<Int(firstHashed - 1) {
                guard let name = Self.definedName(unhashed.baseAddress! + i * Int(entrySize), is64: is64) else { continue }
                looked += 1
                guard looked <= 64, let match = nameIndex(at: UInt64(name)) else { return nil }
                if let match { found[match] = true }
            }
        }
        let bloomBits = UInt32(bloomWordSize * 8)
        for (k, (_, h)) in Self.exportNames.enumerated() where !found[k] {
            // The Bloom filter, as glibc reads it (only where its size is a power of two, as ld writes it).
            if bloomWords > 0, bloomWords & (bloomWords - 1) == 0 {
                let at = 16 + (UInt64(h / bloomBits) & (bloomWords - 1)) * bloomWordSize
                guard let low = word(at: at), let high = is64 ? word(at: at + 4) : 0 else { return nil }
                let bits = UInt64(high) << 32 | UInt64(low)
                let mask = (1 as UInt64) << (h % bloomBits) | (1 as UInt64) << ((h >> bloomShift) % bloomBits)
                if bits & mask != mask { continue }
            }
            guard var symbol = word(at: bucketsStart + UInt64(h) % bucketCount * 4).map(UInt64.init) else { return nil }
            guard symbol != 0 else { continue }
            guard symbol >= firstHashed else { return nil }
            // The chain: same-hash entries (the low bit marks the last) until the end bit.
            while true {
                guard symbol < symbolCount, let value = word(at: chainsStart + (symbol - firstHashed) * 4) else { return nil }
                if value | 1 == h | 1 {
                    guard let nameOffset = definition(symbol) else { return nil }
                    if let nameOffset {
                        guard let match = nameIndex(at: nameOffset) else { return nil }
                        if let match { found[match] = true }
                    }
                }
                if value & 1 != 0 { break }
                symbol += 1
            }
        }
        return Self.exports(found: found)
    }

    mutating func readExports(_ section: (scn: OpaquePointer, link: Int)) throws(ELFReadError) {
        let data = try sectionData(section.scn, ".dynsym")
        let names = try linkedTable(section.link, ".dynsym")
        let entrySize = gelf_fsize(elf, ELF_T_SYM, 1, UInt32(EV_CURRENT))
        let count = entrySize > 0 ? min(data.pointee.d_size / entrySize, Int(Int32.max)) : 0
        // libelf hands .dynsym over in memory layout (Elf32_Sym/Elf64_Sym, host byte order), which is
        // read in place here: gelf_getsym's copy per symbol dominated on libraries with 100,000 exports.
        guard count > 0, let table = data.pointee.d_buf.map(UnsafeRawPointer.init) else { return }
        let is64 = gelf_getclass(elf) == ELFCLASS64
        guard entrySize == (is64 ? MemoryLayout<Elf64_Sym>.size : MemoryLayout<Elf32_Sym>.size),
              data.pointee.d_type == ELF_T_SYM else {
            throw .corrupt(what: ".dynsym", reason: "unexpected symbol table layout")
        }
        var found = [Bool](repeating: false, count: Self.exportNames.count)
        for index in 0..<count {
            let sym = table + index * entrySize
            let name = UInt64(sym.loadUnaligned(as: UInt32.self))  // st_name is the first field of both
            // Every export name starts with O, E, C, g or n: skip the rest before any other check.
            switch names.firstByte(at: name) {
            case UInt8(ascii: "O"), UInt8(ascii: "E"), UInt8(ascii: "C"), UInt8(ascii: "g"), UInt8(ascii: "n"): break
            default: continue
            }
            guard Self.definedName(sym, is64: is64) != nil,
                  let k = Self.exportNames.firstIndex(where: { names.matches(name, $0.name) }) else { continue }
            found[k] = true
        }
        object.exports = Self.exports(found: found)
    }
}

/// pread until `buffer` is full or the file ends; the count read, or -1 with errno set.
func preadFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> Int {
    var got = 0
    while got < buffer.count {
        let n = pread(fd, buffer.baseAddress! + got, buffer.count - got, off_t(offset) + off_t(got))
        if n < 0 { if errno == EINTR { continue }; return -1 }
        if n == 0 { break }
        got += n
    }
    return got
}

/// glibc's memmem, declared in CLibElf's shim.h.
private func memmem(_ haystack: UnsafeRawPointer, _ count: Int, _ needle: UnsafeRawPointer, _ length: Int) -> UnsafeRawPointer? {
    CLibElf.memmem(haystack, count, needle, length).map(UnsafeRawPointer.init)
}

/// A file's read-only data sections, read a window at a time into one buffer: what a search holds in
/// memory does not depend on the sizes a file declares. Holes (SEEK_DATA) are skipped unread: zeros
/// start none of the strings searched for.
private final class ReadOnlyData {
    /// Files declaring more read-only data than this (holes included: a sparse file declares any size
    /// at no cost on disk) are not searched but reported, as every search pass may read all of it.
    static let limit: UInt64 = 1 << 30
    static let windowSize = 1 << 17

    let source: ByteSource
    let sections: [(offset: UInt64, size: UInt64)]
    /// The sections' sizes added up (overlapping sections count twice: each is searched).
    let declared: UInt64
    /// Allocated last in init: an init that throws before it leaks nothing (deinit runs only for a
    /// fully initialised object).
    private let buffer: UnsafeMutableRawBufferPointer

    init(source: ByteSource, sections: [(scn: OpaquePointer, offset: UInt64, size: UInt64)], fileSize: UInt64) throws(ELFReadError) {
        var declared: UInt64 = 0
        for section in sections {
            // A section past the end of the file is refused, whatever it declares.
            guard let sectionEnd = end(section.offset, section.size), sectionEnd <= fileSize else {
                throw .truncated(what: "section \(elf_ndxscn(section.scn))", end: end(section.offset, section.size) ?? .max,
                                 fileSize: fileSize)
            }
            declared = end(declared, section.size) ?? .max
        }
        self.source = source
        self.sections = sections.map { ($0.offset, $0.size) }
        self.declared = declared
        self.buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.windowSize, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Calls `body` with each window of each section, in order, until it returns true (then true).
    /// A section's windows overlap by `overlap` bytes, so a match up to that long lies whole in one of
    /// them; `own` is how many of a window's first bytes are its own: a match starting past them comes
    /// again, whole, at the start of the next window.
    func windows(overlap: Int, _ body: (_ window: UnsafeRawBufferPointer, _ own: Int) -> Bool) throws(ELFReadError) -> Bool {
        for section in sections {
            var position: UInt64 = 0
            while position < section.size {
                let at = section.offset + position
                guard let data = source.dataStart(at: at) else { break }  // a hole to the end of the file
                if data > at { position = min(section.size, data - section.offset); continue }
                let want = Int(min(UInt64(Self.windowSize), section.size - position))
                let got = source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: at)
                guard got >= 0 else { throw .cannotRead(errno: errno) }
                // A short read: the file was cut while it was read; what is there is searched.
                let last = got < want || position + UInt64(want) >= section.size
                let own = last ? got : got - overlap
                if body(UnsafeRawBufferPointer(rebasing: buffer[0..<got]), own) { return true }
                if last { break }
                position += UInt64(own)
            }
        }
        return false
    }
}

/// The OpenSSL build strings, found with memmem over the read-only data, a window at a time.
private enum EmbeddedStrings {
    /// The longest match a search needs whole in one window: a quoted value (up to 4096 bytes) with
    /// its key and quotes, or that value with "/cert.pem" and a NUL.
    static let longestMatch = 8 << 10

    /// What the full search found: OpenSSL's build strings, another library's markers, and the
    /// version text starting with the `versionLine` asked for.
    struct Found {
        var openSSL: EmbeddedOpenSSL?
        var foreign: ForeignCrypto?
        var lineVersion: String?
    }

    /// One pass for the version text, the three directories (the first match of each, in file order)
    /// and the other libraries' markers, and one for the cert defaults where OPENSSLDIR is known.
    /// `versionLine` ("3.7."): a whole string "3.7.<digits>" is looked for too (GnuTLS's version).
    static func find(in data: ReadOnlyData, versionLine: String? = nil) throws(ELFReadError) -> Found {
        var found = EmbeddedOpenSSL()
        var boring = false, awsLC: String?, libre: String?, lineVersion: String?
        let lineNeedle = versionLine.map { [0] + Array($0.utf8) }
        _ = try data.windows(overlap: longestMatch) { window, own in
            if found.versionText == nil { found.versionText = firstMatch(in: window, own: own, "OpenSSL ", versionText(at:in:)) }
            if found.openSSLDir == nil { found.openSSLDir = quotedValue(in: window, own: own, "OPENSSLDIR: \"") }
            if found.modulesDir == nil { found.modulesDir = quotedValue(in: window, own: own, "MODULESDIR: \"") }
            if found.enginesDir == nil { found.enginesDir = quotedValue(in: window, own: own, "ENGINESDIR: \"") }
            // Whole strings only (a NUL before and after): a message that mentions a library is no copy of it.
            if !boring { boring = firstMatch(in: window, own: own, "BoringSSL\0") { at, w in startsString(at, w) ? "" : nil } != nil }
            if awsLC == nil {
                awsLC = firstMatch(in: window, own: own, "AWS-LC ") { at, w in
                    guard startsString(at, w) else { return nil }
                    let fips = hasPrefix(w, at + 7, "FIPS ")
                    return releaseNumber(at: at + (fips ? 12 : 7), in: w).map { fips ? "FIPS " + $0 : $0 }
                }
            }
            if libre == nil {
                libre = firstMatch(in: window, own: own, "LibreSSL ") { at, w in startsString(at, w) ? releaseNumber(at: at + 9, in: w) : nil }
            }
            if lineVersion == nil, let needle = lineNeedle, let base = window.baseAddress {
                var offset = 0
                while offset < own, let hit = needle.withUnsafeBytes({ memmem(base + offset, window.count - offset, $0.baseAddress!, $0.count) }) {
                    let at = hit - base
                    guard at < own else { break }
                    if let v = releaseNumber(at: at + 1, in: window) { lineVersion = v; break }
                    offset = at + 1
                }
            }
            // Done once OpenSSL's four strings or another library's marker are in (one file is not both).
            let openSSL = found.versionText != nil && found.openSSLDir != nil && found.modulesDir != nil && found.enginesDir != nil
            return (openSSL || boring || awsLC != nil || libre != nil) && (lineNeedle == nil || lineVersion != nil)
        }
        let foreign: ForeignCrypto? = if let awsLC { ForeignCrypto(library: .awsLC, version: awsLC) }
            else if let libre { ForeignCrypto(library: .libreSSL, version: libre) }
            else if boring { ForeignCrypto(library: .boringSSL) }
            else { nil }
        return Found(openSSL: try certDefaults(found, in: data), foreign: foreign, lineVersion: lineVersion)
    }

    /// Whether the string at `at` starts one (the window's start, or a NUL before it).
    static func startsString(_ at: Int, _ window: UnsafeRawBufferPointer) -> Bool { at == 0 || window[at - 1] == 0 }

    static func hasPrefix(_ window: UnsafeRawBufferPointer, _ at: Int, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        return at + n <= window.count && memcmp(window.baseAddress! + at, literal.utf8Start, n) == 0
    }

    /// "1.2.3" at `at`, ending a string: digits and dots, at least one dot, then a NUL.
    static func releaseNumber(at: Int, in window: UnsafeRawBufferPointer) -> String? {
        var i = at
        while i < window.count, i - at < 24, window[i] == 0x2e || (window[i] >= 0x30 && window[i] <= 0x39) { i += 1 }
        let text = UnsafeRawBufferPointer(rebasing: window[at..<i])
        guard i < window.count, window[i] == 0, i > at, text.first != 0x2e, text.contains(0x2e) else { return nil }
        return String(decoding: text, as: UTF8.self)
    }

    /// `found` with the compiled-in cert file and folder where OPENSSLDIR is known; nil when empty.
    static func certDefaults(_ found: EmbeddedOpenSSL, in data: ReadOnlyData) throws(ELFReadError) -> EmbeddedOpenSSL? {
        var found = found
        if let dir = found.openSSLDir {
            let file = Array((dir + "/cert.pem").utf8) + [0], certs = Array((dir + "/certs").utf8) + [0]
            var hasFile = false, hasCerts = false
            _ = try data.windows(overlap: longestMatch) { window, _ in
                hasFile = hasFile || contains(window, file)
                hasCerts = hasCerts || contains(window, certs)
                return hasFile && hasCerts
            }
            if hasFile { found.certFile = dir + "/cert.pem" }
            if hasCerts { found.certDir = dir + "/certs" }
        }
        return found == EmbeddedOpenSSL() ? nil : found
    }

    /// Whether `OPENSSLDIR: "`, `MODULESDIR: "` or `ENGINESDIR: "` occurs, or the `OPENSSLDIR: n/a` of
    /// BoringSSL and AWS-LC: the one search every ELF file's read-only data gets (200 MB of it under
    /// /usr/lib). `clibelf_next_dir_candidate` finds the offsets with a `D` and a `"` or `n` five bytes
    /// on, and those are checked in full; memmem's byte-at-a-time hashing was a fifth of a scan's CPU time.
    #if arch(x86_64)
    /// AVX2 where the CPU has it: half the instructions of the SSE2 loop per byte.
    private static let hasAVX2 = clibelf_have_avx2() != 0
    static func nextCandidate(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        hasAVX2 ? clibelf_next_dir_candidate_avx2(p, n) : clibelf_next_dir_candidate(p, n)
    }
    #else
    static func nextCandidate(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int { clibelf_next_dir_candidate(p, n) }
    #endif

    static func hasBuildDirKey(_ buffer: UnsafeRawBufferPointer) -> Bool {
        guard let base = buffer.baseAddress else { return false }
        func check(_ at: Int) -> Bool {
            guard at >= 7, hasPrefix(buffer, at, "DIR: "), isBuildDirKey(buffer, end: at) else { return false }
            return buffer[at + 5] == UInt8(ascii: "\"") || hasPrefix(buffer, at + 5, "n/a\0")
        }
        var i = 0
        while i < buffer.count {
            let at = i + nextCandidate(base.assumingMemoryBound(to: UInt8.self) + i, buffer.count - i)
            guard at + 6 <= buffer.count else { return false }
            if check(at) { return true }
            i = at + 1
        }
        return false
    }

    /// True when the bytes before `DIR: "` at `end` spell OPENSSL, MODULES or ENGINES.
    static func isBuildDirKey(_ buffer: UnsafeRawBufferPointer, end: Int) -> Bool {
        let keys: [StaticString] = ["OPENSSL", "MODULES", "ENGINES"]
        return keys.contains { key in
            let n = key.utf8CodeUnitCount
            return end >= n && memcmp(buffer.baseAddress! + end - n, key.utf8Start, n) == 0
        }
    }

    /// Calls `check` at each occurrence of `needle` starting in the window's `own` bytes (its start, the
    /// bytes from there to the window's end) until it returns a value.
    static func firstMatch(in window: UnsafeRawBufferPointer, own: Int, _ needle: StaticString,
                           _ check: (Int, UnsafeRawBufferPointer) -> String?) -> String? {
        guard let base = window.baseAddress else { return nil }
        var offset = 0
        while offset < own,
              let hit = memmem(base + offset, window.count - offset, needle.utf8Start, needle.utf8CodeUnitCount) {
            let at = hit - base
            guard at < own else { return nil }
            if let value = check(at, window) { return value }
            offset = at + 1
        }
        return nil
    }

    /// `PREFIX"value"\0` → value (ENGINESDIR: N/A has no quote and so gives nil).
    static func quotedValue(in window: UnsafeRawBufferPointer, own: Int, _ prefix: StaticString) -> String? {
        firstMatch(in: window, own: own, prefix) { at, buffer in
            let start = at + prefix.utf8CodeUnitCount
            let limit = min(buffer.count, start + 4097)
            guard start < limit, let base = buffer.baseAddress,
                  let quote = memchr(base + start, Int32(UInt8(ascii: "\"")), limit - start) else { return nil }
            let close = UnsafeRawPointer(quote) - base
            guard close > start, close + 1 < buffer.count, buffer[close + 1] == 0 else { return nil }
            return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[start..<close]), as: UTF8.self)
        }
    }

    /// Whether `needle` (text and its NUL) occurs; a suffix of a longer string counts: linkers
    /// tail-merge strings.
    static func contains(_ window: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Bool {
        guard let base = window.baseAddress else { return false }
        return needle.withUnsafeBytes { memmem(base, window.count, $0.baseAddress!, $0.count) != nil }
    }

    private static let months: [StaticString] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// OPENSSL_VERSION_TEXT at `at`: "OpenSSL 3.5.9 29 Sep 2026", "OpenSSL 1.1.1w  11 Sep 2023",
    /// "OpenSSL 1.0.2k-fips  26 Jan 2017", NUL-terminated; dev builds' "xx XXX xxxx" date counts too.
    static func versionText(at: Int, in buffer: UnsafeRawBufferPointer) -> String? {
        // Longer than any real version text; a longer run is not one.
        let limit = min(buffer.count, at + 80)
        var i = at + 8
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a }
        func skip(max: Int = 80, _ predicate: (UInt8) -> Bool) -> Int {
            let start = i
            while i < limit, i - start < max, predicate(buffer[i]) { i += 1 }
            return i - start
        }
        func take(_ literal: StaticString) -> Bool {
            let n = literal.utf8CodeUnitCount
            guard i + n <= limit, memcmp(buffer.baseAddress! + i, literal.utf8Start, n) == 0 else { return false }
            i += n
            return true
        }
        for part in 0..<3 {
            guard skip(max: 4, isDigit) > 0 else { return nil }
            if part < 2 { guard take(".") else { return nil } }
        }
        // Letter release (1.1.1w) and/or a -suffix (-fips, -alpha1, -dev).
        _ = skip(isLetter)
        if take("-") { _ = skip { isLetter($0) || isDigit($0) || $0 == 0x2e || $0 == 0x2d || $0 == 0x2b } }
        guard skip(max: 4, { $0 == 0x20 }) > 0 else { return nil }
        let dateStart = i
        if !take("xx XXX xxxx") {
            guard skip(max: 2, isDigit) > 0, take(" "), months.contains(where: { take($0) }), take(" "),
                  skip(max: 4, isDigit) == 4 else { return nil }
        }
        guard i > dateStart, i < limit, buffer[i] == 0 else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[at..<i]), as: UTF8.self)
    }
}
