// libFuzzer target: the one /proc/<pid>/environ parser, as the kept-keys view and as the whole
// environment a POST child gets: keys are non-empty and hold no '=', values turn back into bytes
// without a NUL (what the child's environment block needs).
import SentinelCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnviron(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let kept = TargetEnvironment(environ: bytes, secureExecution: true)
    _ = kept.libraryPath
    _ = kept.preload
    for (key, value) in TargetEnvironment.parse(environ: bytes) {
        precondition(!key.isEmpty && !key.utf8.contains(UInt8(ascii: "=")))
        precondition(!EscapedBytes.bytes(value).contains(0))
    }
    return 0
}
