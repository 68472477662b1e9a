import Dispatch
import FoundationEssentials
import Glibc
import Logging
import SentinelCore
import SentinelSystem
import ServiceLifecycle
import UnixSignals

/// The long-running service, wired: config source, state folder, API socket, scheduler, sd_notify,
/// journal, metrics, signals. SIGTERM/SIGINT shut down gracefully (STOPPING=1, the cycle abandoned,
/// exit 0); SIGHUP re-reads the config and swaps it, or keeps the running one and says why.
public final class DaemonMain: Sendable {
    public struct Options: Sendable {
        /// The file to read (and re-read on SIGHUP); nil runs on the embedded default.
        public var configPath: String?
        /// When true, a missing configPath is an error; otherwise it falls back to the embedded default.
        public var configRequired: Bool
        public var toolVersion: String
        public var environment: [String: String]
        public init(configPath: String?, configRequired: Bool, toolVersion: String, environment: [String: String]) {
            self.configPath = configPath; self.configRequired = configRequired
            self.toolVersion = toolVersion; self.environment = environment
        }
    }

    public struct StartupError: Error, CustomStringConvertible { public var description: String }

    let options: Options
    let journal: JournalWriter
    let notifier = ServiceNotifier()
    let metrics: DaemonMetrics
    let board = StateBoard()

    public init(options: Options, journal: JournalWriter = JournalWriter()) {
        self.options = options
        self.journal = journal
        metrics = DaemonMetrics(version: options.toolVersion)
    }

    /// Reads the configuration source: the file when it exists (or is required), else the embedded default.
    public static func loadConfig(path: String?, required: Bool) throws(StartupError) -> (DaemonConfig, String) {
        guard let path else { return (.embeddedDefault, "embedded default") }
        guard access(path, F_OK) == 0 || required else { return (.embeddedDefault, "embedded default (\(path) absent)") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StartupError(description: "\(path): cannot read: \(String(cString: strerror(errno)))")
        }
        do {
            return (try DaemonConfig.parse(bytes: [UInt8](data), file: path), path)
        } catch {
            throw StartupError(description: error.description)
        }
    }

    static func groupID(_ name: String?) throws(StartupError) -> gid_t? {
        guard let name else { return nil }
        if let gid = gid_t(name) { return gid }
        guard let g = getgrnam(name) else { throw StartupError(description: "socket_group \(name): no such group") }
        return g.pointee.gr_gid
    }

    /// Runs until SIGTERM/SIGINT. Throws only for start-up failures (bad config, socket not bindable).
    public func run() async throws {
        let (config, source) = try Self.loadConfig(path: options.configPath, required: options.configRequired)
        let env = options.environment
        let probe = PostRunner.locateProbe()
        if probe == nil {
            let named = env["SENTINEL_PROBE"].flatMap { $0.isEmpty ? nil : $0 }
            let why = named.map { "SENTINEL_PROBE=\($0) is not an executable file" } ?? "sentinel-probe not found beside the executable (or $SENTINEL_PROBE)"
            journal.log(priority: 4, message: why + ": POSTs are skipped, inspection and scans go on")
        }
        let store = StateStore(directory: config.resolvedStateDirectory(environment: env), historyLimit: config.historyLimit)
        do { try store.checkFolder() } catch { throw StartupError(description: error.description) }
        let journal = self.journal, notifier = self.notifier, metrics = self.metrics
        var hooks = Scheduler.Hooks()
        hooks.alert = { journal.send($0) }
        hooks.log = { priority, line in journal.log(priority: priority, message: line) }
        let textfileProblem = Locked<String?>(nil)
        hooks.cycleCompleted = { report, status, seconds, first, config in
            metrics.record(report: report, cycleSeconds: seconds, finishedAt: Date().timeIntervalSince1970, intervalSeconds: config.interval)
            if let path = config.textfile {
                // One journal line when writing starts failing or its cause changes, one when it works again.
                let problem = Textfile.write(metrics.render(), to: path)
                let before = textfileProblem.withLock { p in defer { p = problem }; return p }
                if let problem, problem != before { journal.log(priority: 4, message: "metrics textfile not written: \(problem) (the cycle goes on)") }
                if problem == nil, let before { journal.log(priority: 5, message: "metrics textfile written again (was: \(before))") }
            }
            if first { notifier.ready(status: status) } else { notifier.status(status) }
        }
        hooks.cycleAbandoned = { metrics.recordCycleFailure() }
        let scheduler = Scheduler(config: config, board: board, store: store,
                                  runner: CycleRunner(toolVersion: options.toolVersion), probe: probe, hooks: hooks)
        scheduler.restore()

        let socketPath = config.resolvedSocketPath(environment: env)
        let runtimeDir = LoaderResolver.dirname(socketPath)
        if mkdir(runtimeDir, 0o755) != 0 && errno != EEXIST {
            throw StartupError(description: "\(runtimeDir): cannot create: \(String(cString: strerror(errno)))")
        }
        let server = APIServer(board: board, metrics: metrics, scanGroup: try Self.groupID(config.socketGroup)) {
            scheduler.requestScan() ? .started : .alreadyPending
        }
        do { try await server.start(socketPath: socketPath, group: try Self.groupID(config.socketGroup)) } catch {
            throw StartupError(description: "\(error)")  // the server's errors name the socket path
        }
        journal.log(priority: 6, message: "crypto-sentinel \(options.toolVersion) started: config \(source), socket \(server.isSocketActivated ? "inherited from systemd (LISTEN_FDS)" : socketPath), state \(store.directory)",
                    messageID: DaemonMessageID.started)
        notifier.status("first cycle running (config: \(source))")

        let logger = Logger(label: "crypto-sentinel") { _ in
            var h = StreamLogHandler.standardError(label: "crypto-sentinel")
            h.logLevel = .warning
            return h
        }
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: CycleService(scheduler: scheduler, notifier: notifier)),
                .init(service: APIService(server: server)),
                .init(service: WatchdogService(notifier: notifier), successTerminationBehavior: .ignore),
                .init(service: ReloadService(daemon: self, scheduler: scheduler), successTerminationBehavior: .ignore),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        journal.log(priority: 6, message: "crypto-sentinel stopped after \(scheduler.cyclesCompleted) cycle(s)", messageID: DaemonMessageID.stopping)
    }

    /// SIGHUP: a valid file is swapped in atomically (RELOADING=1, then READY=1) and a cycle runs at
    /// once; a bad one leaves the running configuration in place, and the journal, STATUS and
    /// /v1/health say why until a good one is loaded.
    func reload(_ scheduler: Scheduler) {
        notifier.reloading()
        do {
            let (next, source) = try Self.loadConfig(path: options.configPath, required: options.configRequired)
            let running = scheduler.currentConfig
            var notes: [String] = []
            if next.resolvedSocketPath(environment: options.environment) != running.resolvedSocketPath(environment: options.environment) {
                notes.append("socket path changes take effect after a restart")
            }
            scheduler.swap(next)
            board.setReloadError(nil)
            journal.log(priority: 5, message: "configuration reloaded from \(source)" + (notes.isEmpty ? "" : "; " + notes.joined(separator: "; ")),
                        messageID: DaemonMessageID.configReloaded)
            notifier.ready(status: "configuration reloaded from \(source); cycle running")
        } catch {
            journal.log(priority: 3, message: "configuration NOT reloaded, the running one stays: \(error.description)",
                        messageID: DaemonMessageID.configRejected)
            board.setReloadError(error.description)
            notifier.ready(status: board.current().statusLine)
        }
    }
}

/// The cycle loop as a lifecycle service: on graceful shutdown, STOPPING=1 first, then the running
/// cycle is abandoned and its POST children killed.
struct CycleService: Service {
    let scheduler: Scheduler
    let notifier: ServiceNotifier
    func run() async {
        await withGracefulShutdownHandler {
            await scheduler.run()
        } onGracefulShutdown: {
            notifier.stopping(status: "stopping")
            scheduler.stop()
        }
    }
}

/// WATCHDOG=1 every half WATCHDOG_USEC, from its own task: a hanging cycle step (it runs on its own
/// thread) never stops it.
struct WatchdogService: Service {
    let notifier: ServiceNotifier
    func run() async {
        guard let every = ServiceNotifier.watchdogInterval() else { return }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                notifier.watchdog()
                try? await Task.sleep(for: every)
            }
        }
    }
}

struct ReloadService: Service {
    let daemon: DaemonMain
    let scheduler: Scheduler
    func run() async {
        let hups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hups { daemon.reload(scheduler) }
        }
    }
}
