// libFuzzer target: the daemon's YAML config parser (libyaml underneath, then the schema checks).
// Every input must end in a DaemonConfig or a ConfigError, never a trap.
import SentinelCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let config = try DaemonConfig.parse(bytes: bytes, file: "fuzz.yaml")
        _ = config.resolvedStateDirectory(environment: [:])
    } catch {
        _ = error.description
    }
    return 0
}
