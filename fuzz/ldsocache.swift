// libFuzzer target: SentinelCore's ld.so.cache parser (old and new formats, the hwcaps extension),
// then a lookup so the parsed entries' keys and values are walked too.
import SentinelCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLdSoCache(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let cache = try? LdSoCache(bytes: bytes) {
        _ = cache.lookup("libcrypto.so.3", flags: 0x0303, hwcapsSubdirs: ["x86-64-v3", "x86-64-v2"])
        _ = cache.lookup("libc.so.6", flags: 0x0303, hwcapsSubdirs: [])
    }
    return 0
}
