import Dispatch
import FoundationEssentials
import Glibc
import SentinelCore
import SentinelSystem
import Synchronization

/// Runs cycles: one at a time, every interval (± jitter), at once on request (POST /v1/scan, a reload)
/// or when the live picture changes. After each cycle: diff against the previous report → alerts,
/// history and report persisted, the report published for the API, STATUS updated.
public final class Scheduler: Sendable {
    /// Where results go; closures so the scheduler stays free of the adapters' types (journal,
    /// sd_notify, metrics) and each can be wired or left out.
    public struct Hooks: Sendable {
        public var alert: @Sendable (Alert) -> Void = { _ in }
        /// After each completed cycle: the STATUS line, and whether it was the first of this run.
        public var cycleCompleted: @Sendable (_ report: Report, _ statusLine: String, _ seconds: Double, _ first: Bool,
                                              _ config: DaemonConfig) -> Void = { _, _, _, _, _ in }
        public var cycleAbandoned: @Sendable () -> Void = {}
        /// Daemon events for the journal/stderr: priority (syslog numbers) and one line.
        public var log: @Sendable (_ priority: Int32, _ message: String) -> Void = { _, _ in }
        public init() {}
    }

    public let board: StateBoard
    let store: StateStore?
    let runner: CycleRunner
    let probe: String?
    let hooks: Hooks
    let config: Locked<DaemonConfig>
    let wakeup = Wakeup()
    let stopping = Atomic<Bool>(false)
    let previous = Locked<Report?>(nil)
    let history = Locked<[Alert]>([])
    let persistProblem = Locked<String?>(nil)
    let completed = Atomic<Int>(0)
    /// Seconds between live-picture checks.
    let watchEvery: Duration

    public init(config: DaemonConfig, board: StateBoard, store: StateStore?, runner: CycleRunner, probe: String?,
                hooks: Hooks, watchEvery: Duration = .seconds(2)) {
        self.config = Locked(config); self.board = board; self.store = store; self.runner = runner
        self.probe = probe; self.hooks = hooks; self.watchEvery = watchEvery
    }

    public var currentConfig: DaemonConfig { config.withLock { $0 } }
    public var cyclesCompleted: Int { completed.load(ordering: .relaxed) }

    /// What the last run left in the state folder: served until the first cycle of this run
    /// completes, and the base of the first diff (so a restart does not re-alert every finding).
    public func restore() {
        guard let store else { return }
        let (report, saved, warnings) = store.load()
        for w in warnings { hooks.log(4, w) }
        history.withLock { $0 = saved }
        if let report {
            previous.withLock { $0 = report }
            board.publish(report, source: "restored", cycleSeconds: nil)
        }
    }

    /// POST /v1/scan: true when a cycle was not already pending.
    public func requestScan() -> Bool { wakeup.ring() }

    /// SIGHUP with a valid file: the next cycle (run at once) uses it.
    public func swap(_ next: DaemonConfig) {
        config.withLock { $0 = next }
        wakeup.ring()
    }

    /// SIGTERM: no new cycle starts; the running one is abandoned at its next step and its POST
    /// children are killed.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        PostRunner.killRunning()
        wakeup.ring()
    }

    /// The cycle loop; returns after stop().
    public func run() async {
        // The watcher's first picture is taken before the first cycle reads anything: a change in
        // between (a service's pid handed to another process, a service started) must show as a
        // change, not become the baseline the next ticks compare against.
        var watcher: Task<Void, Never>?
        await withCheckedContinuation { (baseline: CheckedContinuation<Void, Never>) in
            watcher = Task.detached { [self] in await self.watchLive(baselineTaken: baseline) }
        }
        defer { watcher?.cancel() }
        while !stopping.load(ordering: .relaxed) {
            let started = ContinuousClock.now
            let cfg = currentConfig
            let report = await runCycle(cfg)
            let seconds = Self.seconds(ContinuousClock.now - started)
            if let report { publish(report, seconds: seconds, historyLimit: cfg.historyLimit) } else { hooks.cycleAbandoned() }
            if stopping.load(ordering: .relaxed) { break }
            let jitter = cfg.interval * cfg.jitter * Double.random(in: -1...1)
            await wakeup.wait(timeout: .milliseconds(Int64(max(0.05, cfg.interval + jitter) * 1000)))
        }
    }

    /// The blocking cycle on a thread of its own (never on the API's event loops or the cooperative pool).
    func runCycle(_ cfg: DaemonConfig) async -> Report? {
        await withCheckedContinuation { (c: CheckedContinuation<Report?, Never>) in
            detached(stackSize: 8 << 20) { [self] in
                c.resume(returning: runner.run(cfg, probe: probe, log: hooks.log, cancelled: { self.stopping.load(ordering: .relaxed) }))
            }
        }
    }

    func publish(_ report: Report, seconds: Double, historyLimit: Int) {
        let old = previous.withLock { p in defer { p = report }; return p }
        let alerts = ChangeTracker.changes(from: old, to: report, at: report.generatedAt)
        for a in alerts { hooks.alert(a) }
        let kept = history.withLock { h in
            h += alerts
            if h.count > historyLimit { h.removeFirst(h.count - historyLimit) }
            return h
        }
        board.publish(report, source: "cycle", cycleSeconds: seconds)
        let n = completed.add(1, ordering: .relaxed).newValue
        // The board's line: it keeps a refused reload in STATUS= after this cycle.
        hooks.cycleCompleted(report, board.current().statusLine, seconds, n == 1, currentConfig)
        let retry = persistProblem.withLock { $0 != nil }
        persist(report, history: alerts.isEmpty && n > 1 && !retry ? nil : kept)
    }

    /// A read-only or full state folder is logged when the problem starts and when it ends, not every
    /// cycle; the report stays served from memory and the history is kept for the next attempt.
    func persist(_ report: Report, history: [Alert]?) {
        guard let store else { return }
        var problem: String?
        do {
            try store.save(report: report)
            if let history { try store.save(history: history) }
        } catch { problem = error.description }
        let before = persistProblem.withLock { p in defer { p = problem }; return p }
        if let problem, problem != before { hooks.log(3, "state not saved: \(problem) (the report is still served from memory)") }
        if problem == nil, let before { hooks.log(5, "state saved again (was: \(before))") }
    }

    func watchLive(baselineTaken: CheckedContinuation<Void, Never>) async {
        let watcher = LiveWatcher()
        _ = watcher.changed(currentConfig)
        baselineTaken.resume()
        var budget = TriggerBudget()
        let start = ContinuousClock.now
        while !Task.isCancelled && !stopping.load(ordering: .relaxed) {
            try? await Task.sleep(for: watchEvery)
            let changed = watcher.changed(currentConfig)
            if budget.tick(at: Self.seconds(ContinuousClock.now - start), changed: changed) { wakeup.ring() }
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
