import Foundation
import SentinelCore
import SentinelDaemon

/// `sentinel-bench serve SOCKET REPORT.json`: the API alone, serving a fixed report, so load runs
/// (scripts/bench/uds-load.c) measure the server without the daemon's cycles. Runs until killed.
func serveAPI(socket: String, reportPath: String) -> Never {
    guard let data = FileManager.default.contents(atPath: reportPath),
          let report = try? JSONDecoder().decode(Report.self, from: data) else {
        FileHandle.standardError.write(Data("sentinel-bench: \(reportPath) is not a crypto-sentinel report\n".utf8))
        exit(2)
    }
    let board = StateBoard()
    board.publish(report, source: "cycle", cycleSeconds: 0.5)
    let metrics = DaemonMetrics()
    metrics.record(report: report, cycleSeconds: 0.5, finishedAt: Date().timeIntervalSince1970)
    var limits = APILimits()
    // SENTINEL_API_THREADS: compare event-loop thread counts under the same load.
    if let threads = ProcessInfo.processInfo.environment["SENTINEL_API_THREADS"].flatMap(Int.init) { limits.threads = threads }
    let server = APIServer(board: board, metrics: metrics, scanGroup: nil, limits: limits) { .alreadyPending }
    let started = DispatchSemaphore(value: 0)
    Task {
        do {
            try await server.start(socketPath: socket, group: nil)
            print("listening on \(socket)")
        } catch {
            FileHandle.standardError.write(Data("sentinel-bench: \(error)\n".utf8))
            exit(2)
        }
        started.signal()
    }
    started.wait()
    while true { pause() }
}
