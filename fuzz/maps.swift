// libFuzzer target: SentinelCore's /proc/<pid>/maps parser, through every public entry point the
// daemon and the CLI use (whole parse, file groups, the raw per-line callback with path decoding).
import SentinelCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMaps(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)
    for m in MapsParser.parse(buffer) { _ = m.device }
    _ = MapsParser.fileGroups(buffer)
    MapsParser.forEachFileLine(buffer) { line in _ = line.decodedPathname }
    return 0
}
