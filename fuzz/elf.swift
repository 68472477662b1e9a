// libFuzzer target: SentinelSystem's ELFFileReader (libelf underneath) on arbitrary bytes.
// The reader takes a file descriptor (it fstat()s and pread()s before elf_begin), so the input goes
// through one unlinked file in /dev/shm (memfd_create is not imported by Glibc's module), rewritten per
// run: the same path a real file takes, no disk I/O.
import Glibc
import SentinelSystem

nonisolated(unsafe) private var memfd: Int32 = -1

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzELF(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    if memfd < 0 {
        var template = Array("/dev/shm/fuzz-elf-XXXXXX".utf8CString)
        memfd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(memfd >= 0, "mkstemp in /dev/shm failed")
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    }
    // Shrink first: a shorter input must not keep the previous input's tail.
    guard ftruncate(memfd, 0) == 0 else { return 0 }
    var written = 0
    while written < size {
        let n = pwrite(memfd, data + written, size - written, off_t(written))
        if n <= 0 { return 0 }
        written += n
    }
    _ = try? ELFFileReader.read(fd: memfd, path: "fuzz-input")
    return 0
}
