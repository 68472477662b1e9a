/// How bad a finding is; ordered, so `--fail-on` can compare.
public enum Severity: String, Sendable, Codable, Comparable, CaseIterable {
    case info, warning, error, critical
    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// The stable finding codes (README, Finding codes): a public contract (codes keep their meaning forever).
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
    case foreignCryptoLibrary = "foreign-crypto-library"
    // live processes
    case processSplitLibcrypto = "process-split-libcrypto"
    case processFIPSShared = "process-fips-shared"
    case processDeletedLibrary = "process-deleted-library"
    case processStaticOpenSSL = "process-static-openssl"
    case processForeignCrypto = "process-foreign-crypto"
    case processFIPSNotLoaded = "process-fips-not-loaded"
    case processEnvDrift = "process-env-drift"
    case processUnreadable = "process-unreadable"
    // daemon
    case serviceNotRunning = "service-not-running"
    case bundleUnreadable = "bundle-unreadable"
    // POST
    case postConfigError = "post-config-error"
    case hostFIPSDisabled = "host-fips-disabled"
    case fipsProviderUnvalidated = "fips-provider-unvalidated"
    case fipsCertificateHistorical = "fips-certificate-historical"
    case fipsConfigRelaxed = "fips-config-relaxed"
    case postFIPSNotActive = "post-fips-not-active"
    case postSelfTestFailed = "post-self-test-failed"
    case postDRBGFailed = "post-drbg-failed"
    case postApprovedFailed = "post-approved-failed"
    case postUnapprovedAllowed = "post-unapproved-allowed"
    case postInitErrorQueue = "post-init-error-queue"
    case postTimeout = "post-timeout"
    case postCrashed = "post-crashed"
    case postCommandFailed = "post-command-failed"
    case postRequiredRefused = "post-required-refused"
    case postForbiddenAllowed = "post-forbidden-allowed"

    public var severity: Severity {
        switch self {
        case .splitLibcrypto, .processSplitLibcrypto, .processFIPSShared, .postFIPSNotActive, .postSelfTestFailed, .postDRBGFailed,
             .postApprovedFailed, .postUnapprovedAllowed, .postForbiddenAllowed:
            return .critical
        case .mangledOpenSSLName, .opensslUnresolved, .bundleUnreadable, .fipsModuleMissing, .processFIPSNotLoaded, .postConfigError,
             .postTimeout, .postCrashed, .postCommandFailed, .postRequiredRefused:
            return .error
        case .duplicateOpenSSLCopy, .staticOpenSSLCopy, .opensslVersionSkew, .trustStoreMissing, .modulesDirMissing,
             .mixedPythonABI, .processDeletedLibrary, .processStaticOpenSSL, .processEnvDrift, .processUnreadable,
             .serviceNotRunning,
             .postInitErrorQueue, .hostFIPSDisabled, .fipsProviderUnvalidated, .fipsConfigRelaxed:
            return .warning
        case .orphanOpenSSLCopy, .fipsCertificateHistorical, .foreignCryptoLibrary, .processForeignCrypto:
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
        case .foreignCryptoLibrary:
            return "a second TLS stack (BoringSSL, AWS-LC, LibreSSL, GnuTLS) beside OpenSSL has its own configuration, trust store and random generator, and lies outside OpenSSL's FIPS provider boundary"
        case .processSplitLibcrypto:
            return "the running process has two OpenSSL states: providers, DRBG and FIPS mode differ between its consumers until it is restarted on one libcrypto"
        case .processFIPSShared:
            return "one fips.so cannot serve two libcrypto instances in one process (OpenSSL issue #27691): the second libcrypto's FIPS state is undefined, and a self-test or an approved operation can fail in either"
        case .processDeletedLibrary:
            return "the process still runs the old library code; the upgrade on disk takes effect only after a restart"
        case .processStaticOpenSSL:
            return "a statically linked OpenSSL in a mapped object never reads the shared libcrypto's providers or FIPS configuration"
        case .processForeignCrypto:
            return "the running process holds a second TLS stack beside OpenSSL: connections made through it ignore OPENSSL_CONF and the FIPS provider"
        case .processFIPSNotLoaded:
            return "no fips.so is mapped, so nothing in this process can be running FIPS-approved algorithms from the FIPS provider"
        case .processEnvDrift:
            return "the service did not start with the OpenSSL configuration the appliance expects, whatever an interactive shell shows"
        case .processUnreadable:
            return "what cannot be read cannot be vouched for: grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, or the process is gone"
        case .serviceNotRunning:
            return "a configured service with no running process is not serving; its POST ran under the configured environment instead of the live one"
        case .bundleUnreadable:
            return "a configured bundle whose root, or part of whose tree, cannot be read cannot be audited there: its linkage is unknown, not clean"
        case .hostFIPSDisabled:
            return "a FIPS provider in a kernel that is not in FIPS mode is not a FIPS deployment: the kernel's own crypto, its DRBG seeding and the distribution's policies run unrestricted"
        case .postConfigError:
            return "services load OpenSSL config with errors ignored, so a broken include silently runs them without FIPS"
        case .postFIPSNotActive:
            return "under the service's own environment the FIPS provider is not active, so FIPS is not enforced"
        case .postSelfTestFailed:
            return "a FIPS provider whose integrity or known-answer tests fail enters its error state and refuses all crypto"
        case .postDRBGFailed:
            return "without a working DRBG every TLS handshake and key generation fails ('unable to fetch drbg')"
        case .postApprovedFailed:
            return "an approved algorithm failing means crypto is broken under this environment, not just unapproved"
        case .postUnapprovedAllowed:
            return "MD5 succeeding means FIPS is not enforced for this process's default library context"
        case .postInitErrorQueue:
            return "errors left on the queue at init surface later as 'Unknown OpenSSL error' in callers that expect an empty queue"
        case .postTimeout:
            return "a POST that hangs would hang the service the same way at start-up"
        case .postCrashed:
            return "a POST child that crashes means the library or its configuration would crash the service"
        case .postCommandFailed:
            return "the product's own POST program fails under the service's environment and user"
        case .postRequiredRefused:
            return "an operation the product performs is refused under this configuration, so the product fails at that step in production (e.g. SHA-1 certificate signing under FIPS)"
        case .postForbiddenAllowed:
            return "an operation that policy says must fail succeeds, so the configuration does not enforce what the appliance claims"
        case .fipsProviderUnvalidated:
            return "a FIPS provider without a CMVP certificate enforces FIPS rules but is not a validated module: an audit that requires validated cryptography fails"
        case .fipsCertificateHistorical:
            return "a certificate on the historical list is no longer valid for new procurements; existing deployments should plan a move to an active one"
        case .fipsConfigRelaxed:
            return "a module section with checks set to 0 lets non-approved uses through (or keeps working after a failed conditional test), which an auditor reads as not FIPS-enforcing"
        }
    }
}

/// One finding: what, where, the evidence, and how to fix it.
public struct Finding: Sendable, Codable, Hashable {
    public var code: FindingCode
    public var severity: Severity
    public var target: String
    /// What the finding is about (the copies' device:inode, a path, a variable, a library): with target
    /// and code, its identity across cycles and restarts, so rewording a summary changes nothing.
    /// Nil only in a report restored from a state file written before findings had one.
    public var subject: String?
    /// One line a person can act on.
    public var summary: String
    public var evidence: JSONValue
    /// Concrete steps (shell commands where possible), in order.
    public var fix: [String]
    /// Set when a waiver accepts the finding: it is reported, but counts toward no state or exit status.
    public var waived: Waiver.Mark?

    public init(code: FindingCode, target: String, subject: String, summary: String, evidence: JSONValue = .object([:]),
                fix: [String] = [], severity: Severity? = nil) {
        self.code = code; self.severity = severity ?? code.severity; self.target = target; self.subject = subject
        self.summary = summary; self.evidence = evidence; self.fix = fix
    }
}

extension Finding {
    /// The subject of a finding about several files of one library: which files, by device and inode.
    public static func subject(_ library: String, copies: [FileIdentity]) -> String {
        library + " " + copies.map(\.description).sorted().joined(separator: ", ")
    }
}
