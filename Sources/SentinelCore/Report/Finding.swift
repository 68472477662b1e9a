/// How bad a finding is; ordered, so `--fail-on` can compare.
public enum Severity: String, Sendable, Codable, Comparable, CaseIterable {
    case info, warning, error, critical
    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// The stable finding codes of PRODUCT.md: a public contract (codes keep their meaning forever).
public enum FindingCode: String, Sendable, Codable, CaseIterable {
    // bundle audit
    case splitLibcrypto = "split-libcrypto"
    case mangledOpenSSLName = "mangled-openssl-name"
    case duplicateOpenSSLCopy = "duplicate-openssl-copy"
    case orphanOpenSSLCopy = "orphan-openssl-copy"
    case staticOpenSSLCopy = "static-openssl-copy"
    case opensslUnresolved = "openssl-unresolved"
    case opensslVersionSkew = "openssl-version-skew"
    case trustStoreMissing = "trust-store-missing"
    case modulesDirMissing = "modules-dir-missing"
    case fipsModuleMissing = "fips-module-missing"
    case mixedPythonABI = "mixed-python-abi"
    // live processes
    case processSplitLibcrypto = "process-split-libcrypto"
    case processDeletedLibrary = "process-deleted-library"
    case processStaticOpenSSL = "process-static-openssl"
    case processFIPSNotLoaded = "process-fips-not-loaded"
    case processEnvDrift = "process-env-drift"
    case processUnreadable = "process-unreadable"
    // POST
    case postConfigError = "post-config-error"
    case postFIPSNotActive = "post-fips-not-active"
    case postSelfTestFailed = "post-self-test-failed"
    case postDRBGFailed = "post-drbg-failed"
    case postApprovedFailed = "post-approved-failed"
    case postUnapprovedAllowed = "post-unapproved-allowed"
    case postInitErrorQueue = "post-init-error-queue"
    case postTimeout = "post-timeout"
    case postCrashed = "post-crashed"
    case postCommandFailed = "post-command-failed"

    public var severity: Severity {
        switch self {
        case .splitLibcrypto, .processSplitLibcrypto, .postFIPSNotActive, .postSelfTestFailed, .postDRBGFailed,
             .postApprovedFailed, .postUnapprovedAllowed:
            return .critical
        case .mangledOpenSSLName, .opensslUnresolved, .fipsModuleMissing, .processFIPSNotLoaded, .postConfigError,
             .postTimeout, .postCrashed, .postCommandFailed:
            return .error
        case .duplicateOpenSSLCopy, .staticOpenSSLCopy, .opensslVersionSkew, .trustStoreMissing, .modulesDirMissing,
             .mixedPythonABI, .processDeletedLibrary, .processStaticOpenSSL, .processEnvDrift, .processUnreadable,
             .postInitErrorQueue:
            return .warning
        case .orphanOpenSSLCopy:
            return .info
        }
    }

    /// Why it matters, in one sentence a person can act on (text output, journal catalog).
    public var why: String {
        switch self {
        case .splitLibcrypto:
            return "two libcrypto (or libssl) files in one process mean two sets of providers, DRBGs and error queues: FIPS can be on for one consumer and off for the other, and errors like 'unable to fetch drbg' follow"
        case .mangledOpenSSLName:
            return "a hashed name lets a second copy load beside the canonical one (libcrypto.so.3, libssl.so.3) instead of sharing it"
        case .duplicateOpenSSLCopy:
            return "two files with distinct inodes load twice if anything reaches both; keep one copy"
        case .orphanOpenSSLCopy:
            return "nothing in the tree loads it; it only confuses audits (or is loaded by name at run time)"
        case .staticOpenSSLCopy:
            return "a statically linked OpenSSL never shows up as a libcrypto mapping yet is a second OpenSSL with its own config, providers and FIPS state"
        case .opensslUnresolved:
            return "the consumer fails to load (or the import fails) under this environment"
        case .opensslVersionSkew:
            return "libssl, libcrypto and the FIPS provider must come from one OpenSSL release line"
        case .trustStoreMissing:
            return "TLS verification fails with 'unknown CA' when no CA file or directory is found"
        case .modulesDirMissing:
            return "providers (legacy, fips) fail to load from a compiled-in folder that does not exist on this host"
        case .fipsModuleMissing:
            return "without fips.so where this libcrypto looks, the FIPS provider cannot activate"
        case .mixedPythonABI:
            return "extension modules for another CPython are leftovers that confuse audits and packaging"
        default:
            return ""
        }
    }
}

/// One finding: what, where, the evidence, and how to fix it.
public struct Finding: Sendable, Codable, Hashable {
    public var code: FindingCode
    public var severity: Severity
    public var target: String
    /// One line a person can act on.
    public var summary: String
    public var evidence: JSONValue
    /// Concrete steps (shell commands where possible), in order.
    public var fix: [String]

    public init(code: FindingCode, target: String, summary: String, evidence: JSONValue = .object([:]),
                fix: [String] = [], severity: Severity? = nil) {
        self.code = code; self.severity = severity ?? code.severity; self.target = target
        self.summary = summary; self.evidence = evidence; self.fix = fix
    }
}
