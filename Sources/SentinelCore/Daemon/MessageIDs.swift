/// journald MESSAGE_IDs: 128-bit lowercase hex, one per finding code and per daemon event. They are a
/// public contract like the codes themselves (catalog entries, `journalctl MESSAGE_ID=…` in operators'
/// scripts), so each is hard-coded and never changes; a new code gets a new random id.
extension FindingCode {
    public var messageID: String {
        switch self {
        case .splitLibcrypto: return "b59c70130b7d47788a8acb459dba45cf"
        case .mangledOpenSSLName: return "a68aafd725224585b6ecde935a28879c"
        case .duplicateOpenSSLCopy: return "676c80a5e7454a6da60a3a165c5be8ea"
        case .orphanOpenSSLCopy: return "f55d943ea3af4c98a4966c0df2a25af2"
        case .staticOpenSSLCopy: return "527d5032a3b340c189d3ac8aa2f5d7a6"
        case .opensslUnresolved: return "799a3651a7a245458125a9d9e9326a7a"
        case .opensslVersionSkew: return "3050fee0b9be421298bfda947db6fd6c"
        case .trustStoreMissing: return "2e45b85c313a464389bb52b0482337f4"
        case .modulesDirMissing: return "3ad7defb4e984015b37817a1b7d54644"
        case .fipsModuleMissing: return "9005ffa2dffc400eb5e37d58b0aa4b84"
        case .mixedPythonABI: return "e4fff6b05df84f1e81742fb6c88ea804"
        case .foreignCryptoLibrary: return "c6b34447afd74350a0695aa2547eccfe"
        case .processSplitLibcrypto: return "16a271856775431b83a14a969a7f0daf"
        case .processFIPSShared: return "cd6f776a2e484aa5ae8a4bbb8dcf5147"
        case .hostFIPSDisabled: return "8cbdbb82878740b18ea9197a036543dc"
        case .processDeletedLibrary: return "79c5ea994598409fb8dad4fdd057860f"
        case .processStaticOpenSSL: return "e4d39d79ae5c46629b17d9136452e9ca"
        case .processForeignCrypto: return "7f12c8b9c8ea4a3db1535189d82d771f"
        case .processFIPSNotLoaded: return "156b5c58da4e4f6084a57659d73902ce"
        case .processEnvDrift: return "2d85a7feeec144999a2d8aec1c83fc48"
        case .processUnreadable: return "ff2aa70adff1420f945a20a986ac3246"
        case .serviceNotRunning: return "a4bd6f1fa6c149759a2adec5168e6c81"
        case .bundleUnreadable: return "120cf7519e96450a969b87273cbecd4e"
        case .postConfigError: return "d5589bd6b9134716a42b654e6c182137"
        case .postFIPSNotActive: return "57703d8245ad49459a8d414c47594d6f"
        case .postSelfTestFailed: return "01fc7e02bddd4da7a86d05ee801a0c3f"
        case .postDRBGFailed: return "2c6e851dfb3e4076adb666e4c4e95efb"
        case .postApprovedFailed: return "2c67614f65414379ab3a36f2166446dd"
        case .postUnapprovedAllowed: return "6d669c852ee449158db251723d6bde90"
        case .postInitErrorQueue: return "63cc556ccc0749dfb987265f023e74f0"
        case .postTimeout: return "5d981d50107b4ac7891887335737be3c"
        case .postCrashed: return "0e930eeea1f4416881ee394105f10e68"
        case .postCommandFailed: return "c743d03d9f59497c985776ca2a1e8027"
        case .postRequiredRefused: return "2139106dea7c4ac1b29cc5511bb05fe9"
        case .postForbiddenAllowed: return "feba9556756644c8956cb7b00a1abe1e"
        case .fipsProviderUnvalidated: return "ac1f16f48ec04fbcb553f2de7376add9"
        case .fipsCertificateHistorical: return "8c8ff38d385a43628bcd5f2d899f7de3"
        case .fipsConfigRelaxed: return "9bdc799224014a20b97928328c2ac562"
        }
    }
}

/// MESSAGE_IDs of the daemon's own events (not tied to a finding code).
public enum DaemonMessageID {
    /// A target's state changed (healthy, degraded, failed).
    public static let targetState = "dc5181a1772748fd9127c3d44175cbfc"
    /// A configuration file (at start or on SIGHUP) was rejected; the running one is kept.
    public static let configRejected = "c24aa2aa5e0048e6a931ab88b221a2e6"
    /// SIGHUP: a new configuration was validated and swapped in.
    public static let configReloaded = "de96d5767f564b3387ffad738dd4abff"
    /// The daemon is up: socket listening, first cycle done.
    public static let started = "6090e506cb764f88be2e58efda84f4da"
    /// SIGTERM: the daemon is stopping.
    public static let stopping = "f1ab81d27b3c4f468d8a8f5008995ddb"
    /// A cycle could not complete (a step threw or timed out); the last good report stays published.
    public static let cycleFailed = "a9b5ab196a344ce4bb5cf5d51328ac09"

    /// Every daemon event id with a stable name (catalog generation, tests).
    public static let all: [(name: String, id: String)] = [
        ("target-state", targetState), ("config-rejected", configRejected), ("config-reloaded", configReloaded),
        ("started", started), ("stopping", stopping), ("cycle-failed", cycleFailed),
    ]
}
