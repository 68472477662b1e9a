import Foundation
import SentinelTestSupport
import Testing

/// The API in its own process (sentinel-bench serve), where process-wide limits can be set.
@Suite struct APIProcessTests {
    @Test func aLowOpenFileLimitShedsConnectionsInsteadOfLockingEveryoneOut() async throws {
        let dir = "/tmp/sentinel-fd-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reportPath = dir + "/report.json"
        try JSONEncoder().encode(StatusTests.report(healthy: false)).write(to: URL(fileURLWithPath: reportPath))
        let socket = dir + "/api.sock"
        let bench = URL(fileURLWithPath: Sentinel.binary).deletingLastPathComponent().appendingPathComponent("sentinel-bench").path
        // 128 descriptors: 64 connections after the reserve, far fewer than the 300 clients below.
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/bin/bash")
        server.arguments = ["-c", #"ulimit -n 128 && exec "$0" serve "$1" "$2""#, bench, socket, reportPath]
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { usleep(25_000) }

        var clients: [RawClient] = []
        for i in 0..<300 {
            let c = try RawClient(socket: socket, timeoutSeconds: 2)
            if i % 2 == 0 { c.send("GET /v1/health HTTP/1.1\r\nHost: x\r\n") }  // never finished
            clients.append(c)
        }
        usleep(200_000)
        let started = Date()
        let health = try Curl.request(socket: socket, "/v1/health")
        #expect(health.status == 200, "\(health.curlError)")
        #expect(Date().timeIntervalSince(started) < 2)
        #expect(server.isRunning)
        clients.removeAll()
    }
}
