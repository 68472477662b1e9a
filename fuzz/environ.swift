// libFuzzer target: the three /proc/<pid>/environ readers: ProcReader's byte filter (keeps the
// OpenSSL/loader entries only), TargetEnvironment(environ:) and PostTarget.parseEnviron.
import SentinelCore
@testable import SentinelSystem

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnviron(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var copy = bytes
    let kept = copy.withUnsafeMutableBytes { ProcReader.keptEntries($0, count: size) }
    let env = TargetEnvironment(environ: kept)
    _ = TargetEnvironment(environ: bytes, secureExecution: true)
    _ = env.values
    _ = PostTarget.parseEnviron(bytes)
    return 0
}
