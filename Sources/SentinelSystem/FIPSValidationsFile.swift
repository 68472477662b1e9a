import Glibc
import SentinelCore

/// The validation data an operator may keep beside the configuration, read at run time; the copy built
/// into the binary otherwise. A file that cannot be used never stops a POST: the embedded copy is
/// used and the reason (file:line for a malformed one) is returned for one line on stderr or in the
/// journal.
public enum FIPSValidationsFile {
    /// Beside the daemon's configuration: the folder of $CRYPTO_SENTINEL_CONFIG (the installed unit
    /// sets it for its PREFIX), else /etc/crypto-sentinel.
    public static var defaultPath: String {
        let config = getenv("CRYPTO_SENTINEL_CONFIG").map { String(cString: $0) } ?? ""
        let folder = config.hasPrefix("/") ? LoaderResolver.dirname(config) : "/etc/crypto-sentinel"
        return folder + "/fips-validations.json"
    }

    /// `path` nil: the default path when it exists. A path that was named must exist.
    public static func load(_ path: String?) -> (data: FIPSValidations, problem: String?) {
        let file = path ?? defaultPath
        if path == nil && access(file, F_OK) != 0 { return (.embedded, nil) }
        let embedded = "using the embedded copy (checked \(FIPSValidations.embedded.checked))"
        switch ProcReader.readWhole(file, limit: 1 << 20) {
        case .failure(let e):
            return (.embedded, "\(file): cannot read: \(String(cString: strerror(e.code))); \(embedded)")
        case .success(let bytes):
            do { return (try FIPSValidations.parse(bytes, origin: file), nil) } catch {
                return (.embedded, "\(error); \(embedded)")
            }
        }
    }
}
