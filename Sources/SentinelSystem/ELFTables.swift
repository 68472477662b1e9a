import CLibElf
import Glibc

/// The program header and section header tables of an ELF file open in libelf, read with the checks
/// both readers need: the scan's (ELFFileReader) and the repair's (DynamicStringsReader), which must
/// refuse the same hostile files for the same reasons. What each keeps of the headers, and what a file
/// without any means to it, stays with the reader.
enum ELFTables {
    /// Why a table was refused. Each reader's error has these two cases with the same payloads
    /// (`ReaderError`), so a failure reads the same whichever reader met it.
    enum Failure: Error {
        case truncated(what: String, end: UInt64, fileSize: UInt64)
        case corrupt(what: String, reason: String)

        /// The same case of the reader's own error.
        func mapped<E: ReaderError>() -> E {
            switch self {
            case .truncated(let what, let end, let fileSize): .truncated(what: what, end: end, fileSize: fileSize)
            case .corrupt(let what, let reason): .corrupt(what: what, reason: reason)
            }
        }
    }

    /// A reader's error, whose cases of these names and payloads a `Failure` maps onto.
    protocol ReaderError: Error {
        static func truncated(what: String, end: UInt64, fileSize: UInt64) -> Self
        static func corrupt(what: String, reason: String) -> Self
    }

    /// A section as elf_nextscn gives it: libelf's handle, its index and its header.
    struct Section {
        let scn: OpaquePointer
        let index: Int
        let header: GElf_Shdr
    }

    /// Every program header, in table order; none when the ELF header declares none.
    static func programHeaders(_ elf: OpaquePointer, _ ehdr: GElf_Ehdr, fileSize: UInt64) throws(Failure) -> [GElf_Phdr] {
        var count = 0
        guard elf_getphdrnum(elf, &count) == 0 else {
            throw .corrupt(what: "program header table", reason: libelfError())
        }
        // libelf quietly clamps a table cut off by the end of the file; the header says how many there are.
        let declared = ehdr.e_phnum == UInt16(PN_XNUM) ? UInt64(count) : UInt64(ehdr.e_phnum)
        guard declared > 0 else { return [] }
        let entrySize = UInt64(gelf_fsize(elf, ELF_T_PHDR, 1, UInt32(EV_CURRENT)))
        guard UInt64(ehdr.e_phentsize) == entrySize else {
            throw .corrupt(what: "program header table", reason: "entry size \(ehdr.e_phentsize), expected \(entrySize)")
        }
        guard let tableEnd = end(ehdr.e_phoff, count: declared, entrySize: entrySize) else {
            throw .corrupt(what: "program header table", reason: "offset \(ehdr.e_phoff) out of range")
        }
        guard tableEnd <= fileSize, UInt64(count) == declared else {
            throw .truncated(what: "program header table", end: tableEnd, fileSize: fileSize)
        }
        // The table is in the file, so `count` is bounded by its size.
        var headers: [GElf_Phdr] = []
        headers.reserveCapacity(count)
        for index in 0..<count {
            var phdr = GElf_Phdr()
            guard gelf_getphdr(elf, Int32(index), &phdr) != nil else {
                throw .corrupt(what: "program header \(index)", reason: libelfError())
            }
            headers.append(phdr)
        }
        return headers
    }

    /// The section count (section 0 included; 0 for a file without a section table, as sstrip leaves
    /// it) and every section from 1 on, in index order (elf_nextscn starts past section 0).
    static func sections(_ elf: OpaquePointer, _ ehdr: GElf_Ehdr,
                         fileSize: UInt64) throws(Failure) -> (count: Int, sections: [Section]) {
        var count = 0
        guard elf_getshdrnum(elf, &count) == 0 else { throw .corrupt(what: "section table", reason: libelfError()) }
        let entrySize = UInt64(gelf_fsize(elf, ELF_T_SHDR, 1, UInt32(EV_CURRENT)))
        // libelf reports no sections at all when the table is cut off; check what the header declares.
        let declared: UInt64
        if ehdr.e_shnum != 0 {
            declared = UInt64(ehdr.e_shnum)
        } else if ehdr.e_shoff != 0 {
            // Extended numbering: section 0's sh_size holds the count, so section 0 must be in the file.
            guard let firstEnd = end(ehdr.e_shoff, entrySize), firstEnd <= fileSize else {
                throw .truncated(what: "section table", end: end(ehdr.e_shoff, entrySize) ?? .max, fileSize: fileSize)
            }
            declared = UInt64(count)
        } else {
            declared = 0
        }
        guard declared > 0 else { return (0, []) }
        guard UInt64(ehdr.e_shentsize) == entrySize else {
            throw .corrupt(what: "section table", reason: "entry size \(ehdr.e_shentsize), expected \(entrySize)")
        }
        guard let tableEnd = end(ehdr.e_shoff, count: declared, entrySize: entrySize) else {
            throw .corrupt(what: "section table", reason: "offset \(ehdr.e_shoff) out of range")
        }
        guard tableEnd <= fileSize else { throw .truncated(what: "section table", end: tableEnd, fileSize: fileSize) }
        guard UInt64(count) == declared else {
            throw .corrupt(what: "section table", reason: "libelf sees \(count) of \(declared) sections")
        }
        var sections: [Section] = []
        sections.reserveCapacity(count - 1)
        var scn: OpaquePointer? = nil
        while let next = elf_nextscn(elf, scn) {
            scn = next
            var header = GElf_Shdr()
            guard gelf_getshdr(next, &header) != nil else {
                throw .corrupt(what: "section table", reason: "section \(elf_ndxscn(next)): \(libelfError())")
            }
            sections.append(Section(scn: next, index: elf_ndxscn(next), header: header))
        }
        return (count, sections)
    }

    /// d_tag and d_un (d_val and d_ptr are the same bits).
    typealias DynamicEntry = (tag: Int64, value: UInt64)
    typealias DynamicTable = (data: UnsafeMutablePointer<Elf_Data>, entries: [DynamicEntry])

    /// The entries of a dynamic table at `offset` (PT_DYNAMIC, or a .dynamic section read as raw bytes)
    /// up to DT_NULL, and libelf's data for them; nil when `size` is 0.
    static func dynamicEntries(_ elf: OpaquePointer, at offset: UInt64, size: UInt64, _ what: String,
                               fileSize: UInt64) throws(Failure) -> DynamicTable? {
        guard let dataEnd = end(offset, size), dataEnd <= fileSize else {
            throw .truncated(what: what, end: end(offset, size) ?? .max, fileSize: fileSize)
        }
        guard size > 0 else { return nil }
        guard let data = elf_getdata_rawchunk(elf, Int64(offset), Int(size), ELF_T_DYN) else {
            throw .corrupt(what: what, reason: libelfError())
        }
        let entrySize = gelf_fsize(elf, ELF_T_DYN, 1, UInt32(EV_CURRENT))
        let count = entrySize > 0 ? min(data.pointee.d_size / entrySize, Int(Int32.max)) : 0
        var entries: [DynamicEntry] = []
        for index in 0..<count {
            var dyn = GElf_Dyn()
            guard gelf_getdyn(data, Int32(index), &dyn) != nil else { throw .corrupt(what: what, reason: libelfError()) }
            if dyn.d_tag == Int64(DT_NULL) { break }
            entries.append((dyn.d_tag, dyn.d_un.d_val))
        }
        return (data, entries)
    }
}

// Shared by both readers and their other libelf calls.

func libelfError() -> String {
    guard let text = elf_errmsg(-1) else { return "unknown libelf error" }
    return String(cString: text)
}

/// `offset + length`, or nil on overflow.
func end(_ offset: UInt64, _ length: UInt64) -> UInt64? {
    let (sum, overflow) = offset.addingReportingOverflow(length)
    return overflow ? nil : sum
}

/// `offset + count * entrySize`, or nil on overflow.
func end(_ offset: UInt64, count: UInt64, entrySize: UInt64) -> UInt64? {
    let (length, overflow) = count.multipliedReportingOverflow(by: entrySize)
    return overflow ? nil : end(offset, length)
}
