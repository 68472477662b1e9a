import CZlib
import Dispatch
import Glibc
import SentinelCore

/// A PyInstaller executable's archive as its bootloader would extract it, read through pread and
/// zlib in memory: nothing is written anywhere. Its ELF members are read with the ELF reader as the
/// files they become in the extraction folder.
public struct PyInstallerArchive: Sendable {
    public struct Member: Sendable {
        public var index: Int
        public var name: String
        public var object: ELFObject
        public var size: UInt64
    }

    public var cookie: CArchive.Cookie
    public var entries: [CArchive.Entry]
    public var members: [Member]
    /// Symlink entries (PyInstaller 6): the link's name and the member name it points to.
    public var symlinks: [(name: String, target: String)]
    /// Members that could not be audited, one line each ("name: reason").
    public var warnings: [String]

    /// onefile: the bootloader extracts the archive and runs the app from there (pyi_archive.c
    /// sets onefile semantics as soon as one entry is extractable).
    public var isOnefile: Bool { entries.contains(where: \.isExtractable) }
    /// onedir: the folder beside the executable that holds the collected files ("_internal").
    public var contentsDirectory: String? { CArchive.option("pyi-contents-directory", in: entries) }

    /// Members larger than this are not inflated (the ELF reader's read-only-data limit), nor is
    /// more than `totalLimit` inflated from one archive: a hostile archive cannot make a scan
    /// allocate or spin without bound.
    static let memberLimit: UInt32 = 1 << 30
    static let totalLimit: UInt64 = 4 << 30

    public enum ReadError: Error, Sendable, CustomStringConvertible {
        case cannotRead(Int32)
        case corrupt(String)
        public var description: String {
            switch self {
            case .cannotRead(let code): return "cannot read the PyInstaller archive: \(String(cString: strerror(code)))"
            case .corrupt(let why): return why
            }
        }
    }

    /// Reads the archive in `range` of `path` (the `pydata` section).
    public static func read(path: String, range: FileRange) throws(ReadError) -> PyInstallerArchive {
        let fd = open(EscapedBytes.cString(path), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw .cannotRead(errno) }
        defer { close(fd) }
        return try read(fd: fd, range: range)
    }

    static func read(fd: Int32, range: FileRange) throws(ReadError) -> PyInstallerArchive {
        guard range.size >= UInt64(CArchive.cookieSize) else { throw .corrupt("corrupt PyInstaller archive: pydata section too small") }
        let tail = try bytes(fd, at: range.offset + range.size - UInt64(CArchive.cookieSize), count: CArchive.cookieSize)
        let cookie: CArchive.Cookie
        let entries: [CArchive.Entry]
        do {
            cookie = try CArchive.cookie(tail, available: range.size)
            let start = range.offset + range.size - UInt64(cookie.archiveLength)
            entries = try CArchive.entries(toc: try bytes(fd, at: start + UInt64(cookie.tocOffset), count: Int(cookie.tocLength)),
                                           cookie: cookie)
        } catch let error as CArchive.ParseError {
            throw .corrupt(error.description)
        } catch {
            throw error as! ReadError
        }
        let start = range.offset + range.size - UInt64(cookie.archiveLength)
        // Largest first, so the workers finish together; each one reuses its buffers from member to member
        // (a fresh buffer per member cost a page fault per page and a munmap each time).
        let candidates = entries.indices.filter { entries[$0].mayBeELF }
            .sorted { entries[$0].uncompressedLength > entries[$1].uncompressedLength }
        let results = Locked<[Int: Result<Member?, ReadError>]>([:])
        let budget = Locked<UInt64>(totalLimit)
        let taken = Locked(0)
        let workers = min(candidates.count, max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        // In memory there is no read-ahead to wait for: one worker per core.
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let scratch = Scratch()
            while true {
                let k = taken.withLock { next -> Int in defer { next += 1 }; return next }
                guard k < candidates.count else { return }
                let index = candidates[k]
                let entry = entries[index]
                let result: Result<Member?, ReadError>
                if entry.uncompressedLength > memberLimit
                    || !budget.withLock({ left in
                        guard UInt64(entry.uncompressedLength) <= left else { return false }
                        left -= UInt64(entry.uncompressedLength)
                        return true
                    }) {
                    result = .failure(.corrupt("\(entry.uncompressedLength) bytes inflated: over the limit of what a scan inflates, not audited"))
                } else {
                    result = Result { () throws(ReadError) -> Member? in
                        try member(fd, start: start, entry: entry, index: index, scratch: scratch)
                    }
                }
                results.withLock { $0[index] = result }
            }
        }
        var members: [Member] = [], warnings: [String] = []
        for (index, result) in results.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            switch result {
            case .success(let member?): members.append(member)
            case .success(nil): break
            case .failure(let error): warnings.append("\(entries[index].name): \(error)")
            }
        }
        var symlinks: [(name: String, target: String)] = []
        let scratch = Scratch()
        for entry in entries where entry.isSymlink && entry.length <= 4096 {
            let target = try withContents(fd, start: start, entry: entry, onlyELF: false, scratch: scratch) { (data) throws(ReadError) in
                CArchive.symlinkTarget(of: entry.name, data: data.bindMemory(to: UInt8.self))
            }
            if let target = target.flatMap({ $0 }) {
                symlinks.append((entry.name, target))
            }
        }
        return PyInstallerArchive(cookie: cookie, entries: entries, members: members, symlinks: symlinks, warnings: warnings)
    }

    /// The member's ELF model, or nil when it is not an ELF file (decided after its first bytes).
    static func member(_ fd: Int32, start: UInt64, entry: CArchive.Entry, index: Int, scratch: Scratch) throws(ReadError) -> Member? {
        let object = try withContents(fd, start: start, entry: entry, onlyELF: true, scratch: scratch) { (image) throws(ReadError) -> ELFObject? in
            do { return try ELFFileReader.read(memory: image) } catch { throw .corrupt("\(error)") }
        }
        return object.flatMap { $0 }.map { Member(index: index, name: entry.name, object: $0, size: UInt64(entry.uncompressedLength)) }
    }

    /// Calls `body` with an entry's bytes as the bootloader writes them out, in `scratch`'s buffer (reused
    /// for the next member). `onlyELF`: nil, without inflating further, when the first four bytes are not
    /// \x7fELF (most data members).
    static func withContents<T>(_ fd: Int32, start: UInt64, entry: CArchive.Entry, onlyELF: Bool, scratch: Scratch,
                                _ body: (UnsafeMutableRawBufferPointer) throws(ReadError) -> T) throws(ReadError) -> T? {
        let at = start + UInt64(entry.offset)
        let size = Int(entry.uncompressedLength)
        let output = try scratch.output(size)
        guard entry.compressed else {
            guard entry.length == entry.uncompressedLength else { throw .corrupt("stored member's two lengths differ") }
            if onlyELF, !isELF(try bytes(fd, at: at, count: min(4, size))) { return nil }
            let got = preadFully(fd, output, at: at)
            guard got == size else { throw got < 0 ? .cannotRead(errno) : .corrupt("member data past the end of the file") }
            return try body(output)
        }
        if onlyELF, !isELF(try inflatedHead(fd, at: at, length: entry.length)) { return nil }
        let input = try scratch.input(Int(entry.length))
        let got = preadFully(fd, input, at: at)
        guard got == input.count else { throw got < 0 ? .cannotRead(errno) : .corrupt("member data past the end of the file") }
        var produced = 0
        switch libdeflate_zlib_decompress(scratch.decompressor, input.baseAddress, input.count, output.baseAddress, size, &produced) {
        case LIBDEFLATE_SUCCESS:
            guard produced == size else { throw .corrupt("zlib stream gives \(produced) bytes, \(size) declared") }
        case LIBDEFLATE_INSUFFICIENT_SPACE:
            throw .corrupt("zlib stream longer than its declared \(size) bytes")
        default:
            throw .corrupt("zlib: invalid or truncated stream, or wrong checksum")
        }
        return try body(output)
    }

    /// Up to the first four bytes of a compressed member: zlib's streaming inflate stops there, so a
    /// large data member is told from an ELF file without inflating it.
    static func inflatedHead(_ fd: Int32, at: UInt64, length: UInt32) throws(ReadError) -> [UInt8] {
        var stream = z_stream()
        guard czlib_inflate_init(&stream) == Z_OK else { throw .corrupt("zlib: cannot start inflating") }
        defer { inflateEnd(&stream) }
        // A block's Huffman tables take at most a few hundred bytes: one read nearly always does.
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { input.deallocate() }
        var head = [UInt8](repeating: 0, count: 4)
        var consumed: UInt64 = 0, produced = 0
        while produced < 4 {
            if stream.avail_in == 0 {
                guard consumed < UInt64(length) else { break }
                let want = Int(min(UInt64(input.count), UInt64(length) - consumed))
                let got = preadFully(fd, UnsafeMutableRawBufferPointer(rebasing: input[0..<want]), at: at + consumed)
                guard got == want else { throw got < 0 ? .cannotRead(errno) : .corrupt("member data past the end of the file") }
                consumed += UInt64(got)
                stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = UInt32(got)
            }
            let status = head.withUnsafeMutableBufferPointer { out in
                stream.next_out = out.baseAddress! + produced
                stream.avail_out = UInt32(4 - produced)
                defer { produced = 4 - Int(stream.avail_out) }
                return inflate(&stream, Z_NO_FLUSH)
            }
            if status == Z_STREAM_END { break }
            guard status == Z_OK || (status == Z_BUF_ERROR && stream.avail_in == 0) else {
                throw .corrupt("zlib: " + (stream.msg.map { String(cString: $0) } ?? "error \(status)"))
            }
        }
        return Array(head[0..<produced])
    }

    /// One worker's buffers, grown as members need them and kept until the worker is done, with its
    /// libdeflate decompressor (not shareable between threads).
    final class Scratch {
        private var outputBuffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        private var inputBuffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        let decompressor: OpaquePointer = libdeflate_alloc_decompressor()

        /// Every byte is written (read, or inflated) before it is used.
        func output(_ count: Int) throws(ReadError) -> UnsafeMutableRawBufferPointer { try Self.grow(&outputBuffer, count) }
        func input(_ count: Int) throws(ReadError) -> UnsafeMutableRawBufferPointer { try Self.grow(&inputBuffer, count) }

        /// Mapped in 2 MiB steps and marked for huge pages: a large buffer touched 4 KiB at a time costs
        /// a page fault per page, which showed in a onefile scan's profile.
        private static func grow(_ buffer: inout UnsafeMutableRawBufferPointer, _ count: Int) throws(ReadError) -> UnsafeMutableRawBufferPointer {
            if buffer.baseAddress == nil || buffer.count < count {
                if let old = buffer.baseAddress { munmap(old, buffer.count) }
                buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
                let size = (max(count, 1) + (2 << 20) - 1) & ~((2 << 20) - 1)
                guard let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                      mapped != MAP_FAILED else { throw .cannotRead(errno) }
                madvise(mapped, size, MADV_HUGEPAGE)
                buffer = UnsafeMutableRawBufferPointer(start: mapped, count: size)
            }
            return UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
        }

        deinit {
            for buffer in [outputBuffer, inputBuffer] { if let base = buffer.baseAddress { munmap(base, buffer.count) } }
            libdeflate_free_decompressor(decompressor)
        }
    }

    private static func isELF(_ head: [UInt8]) -> Bool { head.count >= 4 && head[0...3].elementsEqual([0x7f, 0x45, 0x4c, 0x46]) }

    private static func bytes(_ fd: Int32, at offset: UInt64, count: Int) throws(ReadError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let got = buffer.withUnsafeMutableBytes { preadFully(fd, $0, at: offset) }
        guard got == count else { throw got < 0 ? .cannotRead(errno) : .corrupt("corrupt PyInstaller archive: runs past the end of the file") }
        return buffer
    }
}
