// libFuzzer target: SentinelCore's PyInstaller CArchive parser (cookie, table of contents, member
// names and symlink targets) on an archive's bytes, the cookie taken from the end as `scan` does.
import SentinelCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCArchive(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard size >= CArchive.cookieSize,
          let cookie = try? CArchive.cookie(bytes.suffix(CArchive.cookieSize), available: UInt64(size)) else { return 0 }
    let start = size - Int(cookie.archiveLength)
    let toc = bytes[(start + Int(cookie.tocOffset))..<(start + Int(cookie.tocOffset) + Int(cookie.tocLength))]
    guard let entries = try? CArchive.entries(toc: toc, cookie: cookie) else { return 0 }
    _ = CArchive.option("pyi-contents-directory", in: entries)
    for entry in entries where entry.isSymlink {
        let from = start + Int(entry.offset)
        _ = CArchive.symlinkTarget(of: entry.name, data: bytes[from..<(from + Int(entry.length))])
    }
    return 0
}
