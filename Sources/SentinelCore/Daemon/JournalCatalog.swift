/// The journal catalog (systemd/crypto-sentinel.catalog): what `journalctl -x` prints under an alert.
/// Generated from the codes themselves (FindingCode.why is the cause) so the file cannot drift from the
/// code list; a test compares the shipped file with `render()` and rewrites it on request.
public enum JournalCatalog {
    /// Where `make install` puts the operator documentation the entries point at.
    public static let documentation = "file:///usr/local/share/doc/crypto-sentinel/README.md"

    public static func render() -> String {
        var out = """
        # crypto-sentinel journal catalog: one entry per finding code and per daemon event.
        # GENERATED from Sources/SentinelCore/Daemon/JournalCatalog.swift; do not edit by hand.
        # Regenerate: SENTINEL_WRITE_CATALOG=1 swift test --filter JournalCatalogTests
        # Install: copy to /usr/lib/systemd/catalog/ and run journalctl --update-catalog (make install does both).

        """
        for code in FindingCode.allCases {
            out += "\n" + entry(id: code.messageID,
                                subject: "\(code.rawValue) (\(code.severity.rawValue)) on @SENTINEL_TARGET@: @SENTINEL_STATE@",
                                body: findingBody(code))
        }
        for event in DaemonMessageID.all {
            let (subject, body) = daemonText(event.name)
            out += "\n" + entry(id: event.id, subject: subject, body: body)
        }
        return out
    }

    private static func entry(id: String, subject: String, body: String) -> String {
        """
        -- \(id)
        Subject: \(subject)
        Defined-By: crypto-sentinel
        Documentation: \(documentation)

        \(body)

        """
    }

    private static func findingBody(_ code: FindingCode) -> String {
        let steps = fix(code).map { "    " + $0 }.joined(separator: "\n")
        return """
        crypto-sentinel reports \(code.rawValue) (severity @SENTINEL_SEVERITY@) on target @SENTINEL_TARGET@.
        State @SENTINEL_STATE@: "new" means the last cycle found it, "resolved" means it is gone.

        Why it matters: \(sentence(code.why))

        How to fix it:
        \(steps)

        The evidence is in this entry's SENTINEL_EV_* fields (journalctl -o verbose MESSAGE_ID=\(code.messageID));
        the whole current report: crypto-sentinel status --format json, or
            curl --unix-socket /run/crypto-sentinel/api.sock http://localhost/v1/targets/@SENTINEL_TARGET@
        """
    }

    private static func sentence(_ text: String) -> String {
        guard let first = text.first else { return text }
        return first.uppercased() + text.dropFirst() + (text.hasSuffix(".") ? "" : ".")
    }

    /// The generic fix per code; the finding's own `fix` (in the report) names the exact files.
    public static func fix(_ code: FindingCode) -> [String] {
        switch code {
        case .splitLibcrypto:
            return ["Make every OpenSSL consumer of the bundle resolve to ONE libcrypto and ONE libssl file:",
                    "crypto-sentinel scan <bundle root> prints the patchelf --replace-needed commands for this tree.",
                    "Until then, do not chase FIPS policy bugs: they are symptoms of the split."]
        case .mangledOpenSSLName:
            return ["Copy the hashed file to its canonical name (libcrypto.so.3, libssl.so.3), patchelf --set-soname it,",
                    "patchelf --replace-needed <hashed> <canonical> in every consumer, then remove the hashed copy.",
                    "crypto-sentinel scan <bundle root> prints these commands with the real file names."]
        case .duplicateOpenSSLCopy:
            return ["Keep one copy and make every other path a symlink to it (ln -sf <kept file> <other path>)."]
        case .orphanOpenSSLCopy:
            return ["Remove the file unless the product loads it by path at run time."]
        case .staticOpenSSLCopy:
            return ["Build this module against the bundle's shared libcrypto (e.g. cryptography from source with",
                    "OPENSSL_DIR, or the distribution's python3-cryptography) so one OpenSSL serves the process."]
        case .opensslUnresolved:
            return ["Ship the missing library in the bundle and reach it by RUNPATH $ORIGIN, or fix the service's",
                    "LD_LIBRARY_PATH; crypto-sentinel scan <bundle root> lists the folders the loader tried."]
        case .opensslVersionSkew:
            return ["Ship libssl, libcrypto and the FIPS provider from one OpenSSL release line and make libssl's",
                    "RUNPATH ($ORIGIN) reach its own libcrypto."]
        case .trustStoreMissing:
            return ["Set SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt (or SSL_CERT_DIR=/etc/ssl/certs) in the",
                    "service's environment (systemctl edit <unit>: Environment=...), then restart it."]
        case .modulesDirMissing:
            return ["Set OPENSSL_MODULES to a folder holding the providers this libcrypto needs (legacy.so, fips.so)",
                    "in the service's environment, then restart it."]
        case .fipsModuleMissing:
            return ["Install the FIPS provider where this libcrypto looks and run openssl fipsinstall, or point",
                    "OPENSSL_MODULES at the folder that holds fips.so; then crypto-sentinel post proves it loads."]
        case .mixedPythonABI:
            return ["Remove the extension modules built for the other CPython (their ABI tag differs from the",
                    "interpreter's) and rebuild the bundle from a clean folder."]
        case .foreignCryptoLibrary:
            return ["Decide whether the product needs this library. If FIPS is required, every TLS connection must go",
                    "through the OpenSSL with the FIPS provider: build the module against it (grpcio from source with",
                    "GRPC_PYTHON_BUILD_SYSTEM_OPENSSL=1), or have the library's own FIPS build validated."]
        case .processForeignCrypto:
            return ["Find which module brought the library in (SENTINEL_EV_PATH); under a FIPS requirement, replace it",
                    "with a build that uses the process's OpenSSL, then restart the service."]
        case .processSplitLibcrypto:
            return ["Fix the bundle first (crypto-sentinel repair <bundle root> --in-place), then restart the service",
                    "(systemctl restart <unit>): a running process keeps both copies mapped until it exits."]
        case .hostFIPSDisabled:
            return ["Boot the host in FIPS mode (fips=1 on the kernel command line), or turn the check off",
                    "(host_fips_check: false) if the provider alone is the requirement."]
        case .processFIPSShared:
            return ["Make the process load one libcrypto (crypto-sentinel repair <bundle root> --in-place), then",
                    "restart the service: until then the fips provider serves two libcrypto instances."]
        case .processDeletedLibrary:
            return ["Restart the service (systemctl restart <unit>): it keeps running the old library code until then."]
        case .processStaticOpenSSL:
            return ["Use a build of this module that links the process's one libcrypto dynamically (e.g. Debian's",
                    "python3-cryptography instead of the PyPI wheel), then restart the service."]
        case .processFIPSNotLoaded:
            return ["Check that the service's OPENSSL_CONF activates the fips provider and OPENSSL_MODULES holds",
                    "fips.so; crypto-sentinel post --pid <pid> --expect-fips shows what fails under its environment."]
        case .processEnvDrift:
            return ["Set the expected OPENSSL_CONF / OPENSSL_MODULES / LD_LIBRARY_PATH in the service's unit",
                    "(systemctl edit <unit>), or correct the expectation in /etc/crypto-sentinel/config.yaml; restart it."]
        case .processUnreadable:
            return ["Run crypto-sentinel as root with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (the shipped unit",
                    "keeps both); if the process is gone, check whether the service restarted."]
        case .serviceNotRunning:
            return ["Start the service (systemctl start <unit>) or see why it stopped (systemctl status <unit>,",
                    "journalctl -u <unit>); remove it from the configuration if it is retired."]
        case .bundleUnreadable:
            return ["Check that the configured root exists (ls -ld <bundle root>) and that the daemon may read it and",
                    "every path in the evidence (SENTINEL_EV_PATHS: the folders and files it was denied):",
                    "the unit runs with ProtectHome=yes (bundles under /home need ProtectHome=read-only in a drop-in)",
                    "and CAP_DAC_READ_SEARCH; fix the path in /etc/crypto-sentinel/config.yaml if it moved."]
        case .postConfigError:
            return ["Load the service's config strictly to see every error:",
                    "OPENSSL_CONF=<file> openssl list -providers   (with config_diagnostics = 1 in the file)",
                    "A typo in an .include leaves the service running without FIPS."]
        case .postFIPSNotActive:
            return ["Make OPENSSL_CONF activate the fips and base providers with default_properties = fips=yes,",
                    "and OPENSSL_MODULES (or the compiled-in MODULESDIR) hold fips.so; rerun crypto-sentinel post --expect-fips."]
        case .postSelfTestFailed:
            return ["Reinstall fips.so from its package (an integrity failure means the file changed after fipsinstall),",
                    "rerun openssl fipsinstall for the module config, then restart the service."]
        case .postDRBGFailed:
            return ["Check that the providers the config asks for load (fips.so in OPENSSL_MODULES when",
                    "default_properties = fips=yes); crypto-sentinel post shows the OpenSSL error strings."]
        case .postApprovedFailed:
            return ["Read the OpenSSL errors in the report (crypto-sentinel post); fix the provider configuration",
                    "or library that fails SHA-256 before anything else: crypto is broken under this environment."]
        case .postUnapprovedAllowed:
            return ["Set default_properties = fips=yes in the algorithm section of OPENSSL_CONF and activate the fips",
                    "provider, so non-approved algorithms like MD5 are refused."]
        case .postInitErrorQueue:
            return ["Remove the failing optional load from the config (the error strings are in the report), or make",
                    "the application clear the queue after init (ERR_clear_error)."]
        case .postTimeout:
            return ["Find the stage the POST child hung in (SENTINEL_EV_* fields, crypto-sentinel post); a provider",
                    "or config load that blocks would block the service at start-up the same way."]
        case .postCrashed:
            return ["Rerun crypto-sentinel post for this target to see the stage and signal; check the libcrypto",
                    "and provider files (a truncated or mismatched fips.so crashes at load)."]
        case .postCommandFailed:
            return ["Run the product's POST command by hand under the service's user and environment and read its",
                    "output (it is in the report's evidence)."]
        case .postRequiredRefused:
            return ["Change the product to an operation this configuration allows (x509-sign-sha256 instead of",
                    "x509-sign-sha1), or relax the module option the error names if policy permits the non-approved use;",
                    "crypto-sentinel post --pid <pid> --require <op> shows the OpenSSL error."]
        case .postForbiddenAllowed:
            return ["Make OPENSSL_CONF activate only the fips and base providers with default_properties = fips=yes,",
                    "then restart the service; crypto-sentinel post --pid <pid> --forbid <op> proves it is refused."]
        case .fipsProviderUnvalidated:
            return ["Use a provider version with a CMVP certificate (OpenSSL 3.1.2, #4985), built as its security",
                    "policy says; or, if the data is out of date, update /etc/crypto-sentinel/fips-validations.json."]
        case .fipsCertificateHistorical:
            return ["Plan a move to a provider version whose certificate is active (see the validation data:",
                    "/etc/crypto-sentinel/fips-validations.json, else the copy built in)."]
        case .fipsConfigRelaxed:
            return ["Rerun openssl fipsinstall without -no_conditional_errors / -no_security_checks (3.5: with",
                    "-pedantic), or set each option named in SENTINEL_EV_RELAXED to 1 in the module section; restart."]
        }
    }

    private static func daemonText(_ name: String) -> (subject: String, body: String) {
        switch name {
        case "target-state":
            return ("target @SENTINEL_TARGET@ is now @SENTINEL_STATE@", """
            The state of target @SENTINEL_TARGET@ changed to @SENTINEL_STATE@: "failed" when a finding of
            severity error or critical is open, "degraded" for a warning, "healthy" when none is left.

            The entries with SENTINEL_TARGET=@SENTINEL_TARGET@ around this one name the findings that changed:
                journalctl SENTINEL_TARGET=@SENTINEL_TARGET@ -x
            Each of those explains its cause and fix.
            """)
        case "config-rejected":
            return ("configuration rejected, the running one is kept", """
            The configuration file could not be used; the message names the file, line and key. The daemon keeps
            running with the configuration it had (at start: it does not start).

            Fix the file, check it, then reload:
                systemctl reload crypto-sentinel
            """)
        case "config-reloaded":
            return ("configuration reloaded", """
            A new configuration was validated and swapped in (SIGHUP, systemctl reload crypto-sentinel).
            The next cycle uses it. Nothing needs doing.
            """)
        case "started":
            return ("daemon started", """
            The daemon is ready: its socket listens and the first cycle is done.
            Query it with crypto-sentinel status, or
                curl --unix-socket /run/crypto-sentinel/api.sock http://localhost/v1/report
            """)
        case "stopping":
            return ("daemon stopping", """
            The daemon received SIGTERM, finished or cancelled its cycle and is exiting. Nothing is being
            watched until it starts again.
            """)
        case "cycle-failed":
            return ("a cycle did not complete", """
            A cycle could not complete: a step failed or timed out (the message says which). The last good report
            is still served and the next cycle runs on schedule. If it repeats, run the step by hand
            (crypto-sentinel scan / inspect / post) to see the error.
            """)
        default:
            return ("event \(name)", "A crypto-sentinel daemon event.")
        }
    }
}
