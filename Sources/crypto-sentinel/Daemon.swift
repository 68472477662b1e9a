import ArgumentParser
import Dispatch
import FoundationEssentials
import Glibc
import SentinelCore
import SentinelDaemon

struct Daemon: ParsableCommand {
    static let defaultConfig = "/etc/crypto-sentinel/config.yaml"

    /// The file read (when it exists) without --config: $CRYPTO_SENTINEL_CONFIG, which the installed unit
    /// sets when make install's CONFDIR is not /etc/crypto-sentinel, else defaultConfig.
    static var configFile: String {
        ProcessInfo.processInfo.environment["CRYPTO_SENTINEL_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultConfig
    }

    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the long-running health daemon (systemd Type=notify; Unix-socket API; journal alerts).",
        discussion: """
        Each cycle scans the configured bundles (cached), inspects each service's live processes, reruns the \
        POST under each service's environment and user, and — on the embedded default, or with discover: — \
        inspects every other process that maps OpenSSL. Cycles run every interval (with jitter), at once on \
        POST /v1/scan and when a service starts or stops. Changes (a finding appears or resolves, a target's \
        state changes) go to the journal, one entry each; the report is served on the socket.

        Configuration: --config PATH, else $CRYPTO_SENTINEL_CONFIG or \(defaultConfig) when it exists, else the \
        embedded default \
        (every process that maps OpenSSL). Folders: $RUNTIME_DIRECTORY and $STATE_DIRECTORY (systemd's \
        RuntimeDirectory=/StateDirectory=) or the config keys. Signals: SIGHUP reloads the file (a bad file \
        keeps the running config), SIGTERM stops after STOPPING=1.

        Examples:
          crypto-sentinel daemon --check --config /etc/crypto-sentinel/config.yaml
          RUNTIME_DIRECTORY=/tmp/cs STATE_DIRECTORY=/tmp/cs crypto-sentinel daemon
          curl --unix-socket /run/crypto-sentinel/api.sock http://localhost/v1/report
        """)

    @Option(help: ArgumentHelp("The YAML configuration (see config/crypto-sentinel.example.yaml).", valueName: "PATH"))
    var config: String?

    @Flag(help: "Validate the configuration, print what it audits, and exit (0 valid, 2 invalid).")
    var check = false

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        if check {
            let (cfg, source): (DaemonConfig, String)
            do { (cfg, source) = try DaemonMain.loadConfig(path: config ?? Self.configFile, required: config != nil) } catch {
                warn(error.description)
                throw ExitCode(2)
            }
            print("""
            configuration: \(source)
            interval: \(cfg.interval) s (jitter ±\(Int(cfg.jitter * 100))%), POST timeout \(cfg.postTimeout) s
            socket: \(cfg.resolvedSocketPath(environment: env))\(cfg.socketGroup.map { " (group \($0) may POST /v1/scan)" } ?? "")
            state: \(cfg.resolvedStateDirectory(environment: env)) (history of \(cfg.historyLimit) changes)
            bundles: \(cfg.bundles.isEmpty ? "none" : cfg.bundles.map { "\($0.name) (\($0.root))" }.joined(separator: ", "))
            services: \(cfg.services.isEmpty ? "none" : cfg.services.map(\.name).joined(separator: ", "))
            discover: \(cfg.discover.enabled ? "every other process that maps OpenSSL" + (cfg.discover.post ? ", with POST" : "") : "off")
            """)
            return
        }
        // One malloc arena for every thread: the daemon allocates little and rarely from several
        // threads at once, and each extra arena (one per contending thread by default) keeps its own
        // free pages: about 0.4 MiB of the resident set (README, Benchmarks). mallopt is declared in
        // <malloc.h>, which the Glibc module does not export; M_ARENA_MAX is -8 there.
        if let mallopt = dlsym(nil, "mallopt") {
            _ = unsafeBitCast(mallopt, to: (@convention(c) (Int32, Int32) -> Int32).self)(-8, 1)
        }
        let main = DaemonMain(options: .init(configPath: config ?? Self.configFile, configRequired: config != nil,
                                             toolVersion: toolVersion, environment: env))
        let done = DispatchSemaphore(value: 0)
        let failure = StartFailure()
        // .medium (nice 0): a task made on the main thread is .high on Linux, whose worker threads
        // libdispatch renices to -2: the daemon's work would outrank the services it audits, and without
        // CAP_SYS_NICE each new thread logs "Failed to set thread priority". Every child task inherits.
        Task(priority: .medium) {
            do { try await main.run() } catch { failure.reason.withLock { $0 = "\(error)" } }
            done.signal()
        }
        done.wait()
        if let why = failure.reason.withLock({ $0 }) {
            warn(why)
            throw ExitCode(2)
        }
    }
}

/// The start-up failure handed from the daemon's task back to the blocked main thread.
final class StartFailure: Sendable {
    let reason = Locked<String?>(nil)
}
