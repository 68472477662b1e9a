import Glibc

/// A hand-made 64-bit shared object with one read-only data section (.rodata, PROGBITS, ALLOC) at
/// offset 4096, declared `declared` bytes long, holding `strings` (NUL-terminated) at their offsets in
/// it. `sized`: the file is then cut to the section's end with ftruncate, so all but the pages written
/// is a hole; otherwise it ends after the last string and the section runs past its end.
public enum SparseELF {
    public struct WriteError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func write(_ path: String, declared: UInt64, strings: [(offset: UInt64, text: String)],
                             sized: Bool = true) throws {
        var header = [UInt8](repeating: 0, count: 4096)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { header[offset + i] = b } }
        }
        header.replaceSubrange(0..<7, with: [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1])  // ELF64, little endian, EV_CURRENT
        put(UInt16(3), at: 16)       // ET_DYN
        put(UInt16(62), at: 18)      // EM_X86_64
        put(UInt32(1), at: 20)       // e_version
        put(UInt64(0x100), at: 40)   // e_shoff
        put(UInt16(64), at: 52)      // e_ehsize
        put(UInt16(56), at: 54)      // e_phentsize
        put(UInt16(64), at: 58)      // e_shentsize
        put(UInt16(3), at: 60)       // e_shnum
        put(UInt16(2), at: 62)       // e_shstrndx
        let names = Array("\0.rodata\0.shstrtab\0".utf8)
        header.replaceSubrange(0x80..<0x80 + names.count, with: names)
        // Section 1: .rodata (name, type, flags, addr, offset, size, alignment); section 2: .shstrtab.
        put(UInt32(1), at: 0x140); put(UInt32(1), at: 0x144); put(UInt64(2), at: 0x148)
        put(UInt64(0x1000), at: 0x150); put(UInt64(0x1000), at: 0x158); put(declared, at: 0x160); put(UInt64(16), at: 0x170)
        put(UInt32(9), at: 0x180); put(UInt32(3), at: 0x184); put(UInt64(0x80), at: 0x198); put(UInt64(names.count), at: 0x1a0)

        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(description: "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var ok = pwrite(fd, header, header.count, 0) == header.count
        for (offset, text) in strings {
            let bytes = Array(text.utf8) + [0]
            ok = ok && pwrite(fd, bytes, bytes.count, off_t(0x1000 + offset)) == bytes.count
        }
        if sized { ok = ok && ftruncate(fd, off_t(0x1000 + declared)) == 0 }
        guard ok else { throw WriteError(description: "write \(path): \(String(cString: strerror(errno)))") }
    }
}
