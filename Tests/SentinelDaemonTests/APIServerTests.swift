import Foundation
import Logging
import NIOCore
import SentinelCore
import SentinelTestSupport
import ServiceLifecycle
import Testing
@testable import SentinelDaemon

/// A real report: one failed service (split-libcrypto), one degraded bundle, one healthy target whose
/// name needs percent-encoding.
func sampleReport() -> Report {
    let split = Finding(code: .splitLibcrypto, target: "product-api", subject: "libcrypto 8:1 ino 2, 8:1 ino 3", summary: "two libcrypto copies mapped",
                        evidence: .object(["chains": .string("a -> b")]))
    let dup = Finding(code: .duplicateOpenSSLCopy, target: "product", subject: "libcrypto 8:1 ino 4, 8:1 ino 5", summary: "byte-identical copy")
    return Report(command: "daemon", toolVersion: "test", generatedAt: "2026-11-23T12:00:00Z",
                  targets: [TargetReport(name: "product-api", kind: "service", findings: [split]),
                            TargetReport(name: "product", kind: "bundle", root: "/opt/product", findings: [dup]),
                            TargetReport(name: "with space", kind: "service", findings: [])])
}

/// An APIServer on a private socket in a fresh folder, removed by `stop()`.
struct TestAPI {
    let server: APIServer
    let board: StateBoard
    let metrics: DaemonMetrics
    let dir: String
    let socket: String
    let scans: ScanCounter

    static func start(limits: APILimits = .init(), scanGroup: gid_t? = nil, socketGroup: gid_t? = nil,
                      publish: Bool = true) async throws -> TestAPI {
        // Short paths: sun_path holds 107 bytes.
        let dir = "/tmp/sentinel-api-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let board = StateBoard()
        let metrics = DaemonMetrics()
        if publish {
            let report = sampleReport()
            board.publish(report, source: "cycle", cycleSeconds: 0.25)
            metrics.record(report: report, cycleSeconds: 0.25, finishedAt: 1_800_000_000)
        }
        let scans = ScanCounter()
        let server = APIServer(board: board, metrics: metrics, scanGroup: scanGroup, limits: limits) {
            // Every other request finds a scan already queued: both answers are exercised.
            scans.count.withLock { n in n += 1; return n % 2 == 1 ? .started : .alreadyPending }
        }
        let socket = dir + "/api.sock"
        try await server.start(socketPath: socket, group: socketGroup)
        return TestAPI(server: server, board: board, metrics: metrics, dir: dir, socket: socket, scans: scans)
    }

    func get(_ path: String, _ extra: [String] = [], user: UInt32? = nil, groups: [UInt32] = []) throws -> HTTPReply {
        try Curl.request(socket: socket, path, extra, user: user, groups: groups)
    }

    func stop() async {
        await server.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Runs `body` against a started server and always stops it, also when the body throws.
    static func with(limits: APILimits = .init(), scanGroup: gid_t? = nil, socketGroup: gid_t? = nil, publish: Bool = true,
                     _ body: (TestAPI) async throws -> Void) async throws {
        let api = try await start(limits: limits, scanGroup: scanGroup, socketGroup: socketGroup, publish: publish)
        do { try await body(api) } catch { await api.stop(); throw error }
        await api.stop()
    }
}

/// How often the server asked for a scan.
final class ScanCounter: Sendable {
    let count = Locked(0)
}

/// Serialised: the connection-limit and timing tests must not compete with each other for the event loop.
@Suite(.serialized) struct APIServerTests {
    @Test func everyRouteAnswersWithJSONAndTheRightStatus() async throws {
        try await TestAPI.with() { api in
            let now = api.board.current()

            let health = try api.get("/v1/health")
            #expect(health.status == 200)
            #expect(health.headers["content-type"] == "application/json")
            #expect(health.body.contains(#""summary":"3 targets: 1 healthy, 1 degraded, 1 failed (split-libcrypto on product-api)""#))
            #expect(health.headers["content-length"] == String(health.body.utf8.count))

            let report = try api.get("/v1/report")
            #expect(report.status == 200)
            #expect(Array(report.body.utf8) == now.reportJSON)
            let decoded = try JSONDecoder().decode(Report.self, from: Data(report.body.utf8))
            #expect(decoded.targets.map(\.name) == ["product-api", "product", "with space"])

            let target = try api.get("/v1/targets/product-api")
            #expect(target.status == 200)
            #expect(Array(target.body.utf8) == now.targetJSON["product-api"])
            let spaced = try api.get("/v1/targets/with%20space")
            #expect(spaced.status == 200 && spaced.body.contains(#""name":"with space""#))

            let unknown = try api.get("/v1/targets/nope")
            #expect(unknown.status == 404)
            #expect(unknown.body == #"{"error":"no target named 'nope'","status":404}"# + "\n")

            let missing = try api.get("/v2/everything")
            #expect(missing.status == 404 && missing.body.contains(#""status":404"#))

            let put = try api.get("/v1/health", ["-X", "PUT"])
            #expect(put.status == 405)
            #expect(put.headers["allow"] == "GET, HEAD")
            #expect(put.body.contains(#""status":405"#))
            let getScan = try api.get("/v1/scan")
            #expect(getScan.status == 405 && getScan.headers["allow"] == "POST")

            let metrics = try api.get("/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(metrics.body.contains("crypto_sentinel_cycles_total 1"))
            #expect(metrics.body.contains(#"crypto_sentinel_target_state{target="product-api",state="failed"} 1"#))

            let query = try api.get("/v1/health?verbose=1")
            #expect(query.status == 200)
        }
    }

    @Test func beforeTheFirstCycleTheReportIs503AndHealthSaysNotReady() async throws {
        try await TestAPI.with(publish: false) { api in
            let report = try api.get("/v1/report")
            #expect(report.status == 503)
            #expect(report.body == #"{"error":"no report yet: the first cycle is running","status":503}"# + "\n")
            let health = try api.get("/v1/health")
            #expect(health.status == 200 && health.body.contains(#""ready":false"#))
            // Publishing later is served at once (the health cache follows the board).
            api.board.publish(sampleReport(), source: "cycle", cycleSeconds: 0.1)
            #expect(try api.get("/v1/report").status == 200)
            #expect(try api.get("/v1/health").body.contains(#""ready":true"#))
        }
    }

    @Test func headAnswersLikeGetWithoutABody() async throws {
        try await TestAPI.with() { api in
            let head = try api.get("/v1/report", ["-I"])
            #expect(head.status == 200)
            #expect(head.headers["content-length"] == String(api.board.current().reportJSON.count))
            #expect(head.body.isEmpty)
            #expect(try api.get("/v1/targets/nope", ["-I"]).status == 404)
        }
    }

    @Test func theSharedReportAnswerFollowsEachPublishedReport() async throws {
        try await TestAPI.with() { api in
            let first = try api.get("/v1/report")
            #expect(first.status == 200 && first.body.contains("split-libcrypto"))
            #expect(try api.get("/v1/report").body == first.body)
            // A new cycle's report, same size class: the answer must be the new bytes, not the cached ones.
            var next = sampleReport()
            next.targets[0].findings = []
            api.board.publish(next, source: "cycle", cycleSeconds: 0.1)
            let second = try api.get("/v1/report")
            #expect(second.status == 200 && !second.body.contains("split-libcrypto"))
            #expect(second.headers["content-length"] == String(api.board.current().reportJSON.count))
            // The variants that are not shared still get their own head: close, HTTP/1.0 keep-alive, HEAD.
            let closing = try RawClient(socket: api.socket)
            closing.send("GET /v1/report HTTP/1.1\r\nConnection: close\r\n\r\n")
            let closed = String(decoding: closing.readToEnd().data, as: UTF8.self)
            #expect(closed.contains("Connection: close") && closed.hasSuffix(String(decoding: api.board.current().reportJSON, as: UTF8.self)))
            let old = try RawClient(socket: api.socket)
            old.send("GET /v1/report HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            #expect(old.read(until: "\"targets\"").contains("Connection: keep-alive"))
            #expect(try api.get("/v1/report", ["-I"]).body.isEmpty)
        }
    }

    /// The shared answer is one buffer per report. A client that reads slowly keeps writes of an answer
    /// pending after a newer report replaced it (another client asked meanwhile): they must still arrive
    /// whole, from the replaced buffer. The requests the server had not answered yet (it stops at the
    /// high water mark) get the new report.
    @Test func aSlowReaderGetsEveryAnswerWholeAfterTheReportChanged() async throws {
        try await TestAPI.with() { api in
            // ~50 KB answers: 100 of them are far more than the socket buffers hold, so writes stay pending.
            func publish(_ round: Int) -> [UInt8] {
                var next = sampleReport()
                next.generatedAt = "2026-11-23T12:00:0\(round)Z"
                next.targets[1].findings += Array(repeating: next.targets[1].findings[0], count: 400)
                api.board.publish(next, source: "cycle", cycleSeconds: 0.1)
                return api.board.current().reportJSON
            }
            let first = publish(1)
            let slow = try RawClient(socket: api.socket)
            let requests = 100
            slow.send(String(repeating: "GET /v1/report HTTP/1.1\r\nHost: x\r\n\r\n", count: requests - 1)
                      + "GET /v1/report HTTP/1.1\r\nConnection: close\r\n\r\n")
            try await Task.sleep(for: .milliseconds(100))
            let second = publish(2)
            #expect(try api.get("/v1/report").body == String(decoding: second, as: UTF8.self))
            let stream = slow.readToEnd()
            #expect(stream.closed)
            var rest = stream.data[...], answers = (first: 0, second: 0)
            let separator = Array("\r\n\r\n".utf8)
            // Both reports have the same length.
            while let end = rest.indices.first(where: { rest[$0...].starts(with: separator) }) {
                let head = String(decoding: rest[..<end], as: UTF8.self)
                guard head.hasPrefix("HTTP/1.1 200 OK"), (head + "\r\n").contains("\r\nContent-Length: \(first.count)\r\n"),
                      end + 4 + first.count <= rest.endIndex
                else { break }
                let body = rest[(end + 4)..<(end + 4 + first.count)]
                if answers.second == 0, body.elementsEqual(first) {
                    answers.first += 1
                } else if body.elementsEqual(second) {
                    answers.second += 1
                } else {
                    break
                }
                rest = rest[(end + 4 + first.count)...]
            }
            #expect(answers.first + answers.second == requests && rest.isEmpty,
                    "\(answers.first) + \(answers.second) whole answers of \(requests), \(rest.count) bytes left")
        }
    }

    /// Issue 14: clients that pipeline requests and never read must not make the server queue an answer
    /// per request. It answers while the socket takes the answers, then stops reading that client; it
    /// resumes when the client reads, and a closed client's queued answers go with its connection.
    @Test func aPipeliningClientThatNeverReadsIsNoLongerReadAndQueuesLittle() async throws {
        try await TestAPI.with() { api in
            // ~50 KB answers, each its own buffer: HTTP/1.0 keep-alive answers are rendered per request.
            var big = sampleReport()
            big.targets[1].findings += Array(repeating: big.targets[1].findings[0], count: 400)
            api.board.publish(big, source: "cycle", cycleSeconds: 0.1)
            let answer = Array(APIResponse(status: 200, body: api.board.current().reportJSON)
                .rendered(method: .get, http10: true, close: false, allocator: ByteBufferAllocator()).readableBytesView)
            let request = Array("GET /v1/report HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".utf8)
            let batch = Array([[UInt8]](repeating: request, count: 64).joined())
            // Sends without blocking until the socket refuses more (at most 16 MiB): the requests started,
            // and the rest of the last one when the socket took only part of it.
            func flood(_ client: RawClient) -> (requests: Int, rest: [UInt8]) {
                // A small send buffer keeps the test's traffic small; the server reads what it holds at once.
                var size: Int32 = 4096
                setsockopt(client.fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
                var sent = 0
                while sent < 16 << 20 {
                    let n = batch.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
                    if n <= 0 { break }
                    sent += n
                }
                let partial = sent % request.count
                return ((sent + request.count - 1) / request.count, partial == 0 ? [] : Array(request[partial...]))
            }
            let stuck = try RawClient(socket: api.socket), drained = try RawClient(socket: api.socket)
            let (stuckRequests, _) = flood(stuck)
            let (requests, rest) = flood(drained)
            // The server stopped reading: the socket filled long before 16 MiB of requests.
            #expect(stuckRequests * request.count < 16 << 20 && requests * request.count < 16 << 20)
            #expect(try api.get("/v1/health").status == 200)
            // Queued in the server per connection: at most one answer past NIO's high water mark (64 KiB).
            // curl's connection may be closing meanwhile: only open ones answer.
            var open = 0
            for record in api.server.connections.all() {
                guard let queued = try? await record.channel.getOption(.bufferedWritableBytes).get() else { continue }
                #expect(queued <= 64 * 1024 + answer.count, "\(queued) bytes queued for one connection")
                open += 1
            }
            #expect(open >= 2)
            // A client that hangs up takes its queued answers with it.
            shutdown(stuck.fd, Int32(SHUT_RDWR))
            for _ in 0..<500 where api.server.connectionCount > 1 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(api.server.connectionCount == 1)
            // Once the other one reads, every request it sent is answered, in order and whole.
            let fd = drained.fd
            if !rest.isEmpty {
                Thread { _ = rest.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }.start()
            }
            let expected = requests * answer.count
            var received = 0, intact = true
            var chunk = [UInt8](repeating: 0, count: 65536)
            while received < expected {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, expected - received), 0) }
                if n <= 0 { break }
                var k = 0
                while k < n {
                    let at = (received + k) % answer.count, length = min(n - k, answer.count - at)
                    intact = intact && chunk[k..<(k + length)] == answer[at..<(at + length)]
                    k += length
                }
                received += n
            }
            #expect(received == expected && intact, "\(received) of \(expected) bytes, intact: \(intact)")
        }
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() async throws {
        try await TestAPI.with() { api in
            let url = "http://localhost/v1/health"
            let out = try Subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n",
                                          "--unix-socket", api.socket, url, url, "http://localhost/v1/report", url])
            // Bodies go to stdout too (-o covers the first URL only): keep the -w lines.
            let lines = out.text.split(separator: "\n").filter { $0.wholeMatch(of: /\d{3} \d/) != nil }
            #expect(lines == ["200 1", "200 0", "200 0", "200 0"])
            // Pipelined requests in one write are answered in order.
            let raw = try RawClient(socket: api.socket)
            raw.send("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/targets/nope HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n")
            let text = String(decoding: raw.readToEnd().data, as: UTF8.self)
            // Each JSON body ends in "\n", so every status line starts a line.
            let statuses = text.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("HTTP/1.1 ") }
            #expect(statuses == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"])
            // HTTP/1.0 keeps the connection only when asked, and says so.
            let old = try RawClient(socket: api.socket)
            old.send("GET /v1/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            #expect(old.read(until: "\"summary\"").contains("Connection: keep-alive"))
        }
    }

    @Test func socketIsMode0660WithTheGivenGroup() async throws {
        try await TestAPI.with(socketGroup: 65534) { api in
            var st = stat()
            #expect(lstat(api.socket, &st) == 0)
            #expect(st.st_mode & S_IFMT == S_IFSOCK)
            #expect(st.st_mode & 0o777 == 0o660)
            #expect(st.st_gid == 65534)
            // No temporary name left behind.
            let entries = try FileManager.default.contentsOfDirectory(atPath: api.dir)
            #expect(entries == ["api.sock"])
            await api.server.stop()
            #expect(!FileManager.default.fileExists(atPath: api.socket), "stop() removes the socket it created")
        }
    }

    @Test func scanIsForRootOrTheScanGroupByPeerCredentials() async throws {
        // The socket's group lets uid 65534 connect at all; the scan group decides the POST.
        try await TestAPI.with(scanGroup: 4242, socketGroup: 65534) { api in
            let root = try api.get("/v1/scan", ["-X", "POST"])
            #expect(root.status == 202)
            #expect(root.body == #"{"scan":"started"}"# + "\n")
            #expect(try api.get("/v1/scan", ["-X", "POST"]).body == #"{"scan":"already pending"}"# + "\n")

            let stranger = try api.get("/v1/scan", ["-X", "POST"], user: 65534)
            #expect(stranger.status == 403, "\(stranger)")
            #expect(stranger.body.contains("peer uid 65534 gid 65534"))
            // Reading stays open to anyone who can connect.
            #expect(try api.get("/v1/health", user: 65534).status == 200)

            // A supplementary group (read from /proc/PID/status) is enough.
            let member = try api.get("/v1/scan", ["-X", "POST"], user: 65534, groups: [4242])
            #expect(member.status == 202, "\(member)")
            #expect(api.scans.count.withLock { $0 } == 3)
        }
    }

    @Test func scanGroupMatchingThePrimaryGroupIsAllowed() async throws {
        try await TestAPI.with(scanGroup: 65534, socketGroup: 65534) { api in
            #expect(try api.get("/v1/scan", ["-X", "POST"], user: 65534).status == 202)
            // Without a scan group only root may scan.
            try await TestAPI.with(scanGroup: nil, socketGroup: 65534) { rootOnly in
                let stranger = try rootOnly.get("/v1/scan", ["-X", "POST"], user: 65534)
                let root = try rootOnly.get("/v1/scan", ["-X", "POST"])
                #expect(stranger.status == 403 && root.status == 202)
            }
        }
    }

    @Test func oversizeRequestsGetTheirOwnStatusAndTheServerCarriesOn() async throws {
        try await TestAPI.with() { api in
            let longURL = try api.get("/v1/targets/" + String(repeating: "a", count: 5000))
            #expect(longURL.status == 414 && longURL.headers["connection"] == "close")
            #expect(longURL.body.contains(#""status":414"#))

            let bigHeader = try api.get("/v1/health", ["-H", "X-Big: " + String(repeating: "b", count: 9000)])
            #expect(bigHeader.status == 431 && bigHeader.body.contains(#""status":431"#))

            let bodyFile = api.dir + "/body"
            try Data(repeating: 0x41, count: 5000).write(to: URL(fileURLWithPath: bodyFile))
            let bigBody = try api.get("/v1/scan", ["-X", "POST", "--data-binary", "@" + bodyFile])
            #expect(bigBody.status == 413 && bigBody.body.contains(#""status":413"#))
            // A small body is read and ignored.
            #expect(try api.get("/v1/scan", ["-X", "POST", "-d", "now=1"]).status == 202)

            let chunked = try api.get("/v1/scan", ["-X", "POST", "-H", "Transfer-Encoding: chunked", "-d", "x"])
            #expect(chunked.status == 501)
            #expect(try api.get("/v1/health").status == 200)
        }
    }

    @Test func aClientThatNeverFinishesItsHeadersGets408AndIsClosed() async throws {
        var limits = APILimits()
        limits.headerTimeout = .milliseconds(800)
        try await TestAPI.with(limits: limits) { api in
            let slow = try RawClient(socket: api.socket)
            let started = Date()
            slow.send("GET /v1/health HTTP/1.1\r\nHost: loc")
            let (data, closed) = slow.readToEnd()
            let elapsed = Date().timeIntervalSince(started)
            #expect(closed)
            #expect(String(decoding: data, as: UTF8.self).hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
            #expect(elapsed >= 0.7 && elapsed < 3, "closed after \(elapsed) s")
            // Trickling bytes does not extend the deadline: it runs from the request's first byte.
            let trickle = try RawClient(socket: api.socket)
            // 12 bytes 100 ms apart: 1.2 s of steady progress, longer than the 0.8 s timeout.
            for b in "GET /v1/heal".utf8 {
                guard trickle.send([b]) else { break }
                usleep(100_000)
            }
            // The 408 is already there: a deadline reset by each byte would only fire at about 2 s.
            #expect(trickle.available().contains("HTTP/1.1 408"))
        }
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterTheIdleTimeout() async throws {
        var limits = APILimits()
        limits.idleTimeout = .milliseconds(600)
        try await TestAPI.with(limits: limits) { api in
            let client = try RawClient(socket: api.socket)
            client.send("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            let started = Date()
            let (data, closed) = client.readToEnd()
            #expect(closed)
            #expect(String(decoding: data, as: UTF8.self).hasPrefix("HTTP/1.1 200 OK\r\n"))
            let elapsed = Date().timeIntervalSince(started)
            #expect(elapsed >= 0.5 && elapsed < 3, "closed after \(elapsed) s")
        }
    }

    @Test func binaryGarbageGets400AndNeverStopsTheServer() async throws {
        try await TestAPI.with() { api in
            var rng = SplitMix64(state: 5)
            for round in 0..<20 {
                let client = try RawClient(socket: api.socket)
                var bytes = (0..<(200 + round * 50)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if round % 2 == 0 { bytes[0] = 0x00 }
                client.send(bytes)
                let text = String(decoding: client.readToEnd().data, as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n") || text.hasPrefix("HTTP/1.1 414") || text.hasPrefix("HTTP/1.1 431"),
                        "round \(round): \(text.prefix(40))")
            }
            for request in ["GET\r\n\r\n", "GET / HTTP/1.1 extra\r\n\r\n", "GET /v1/health HTTP/9.9\r\n\r\n",
                            "GET /v1/health HTTP/1.1\r\nNo colon here\r\n\r\n", "GET /v1/health HTTP/1.1\r\n folded: x\r\n\r\n",
                            "GET /v1/health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                            "GET /v1/health HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "GET v1/health HTTP/1.1\r\n\r\n"] {
                let client = try RawClient(socket: api.socket)
                client.send(request)
                let text = String(decoding: client.readToEnd().data, as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.1 400") || text.hasPrefix("HTTP/1.1 505"), "\(request.debugDescription): \(text.prefix(60))")
                #expect(text.contains(#""status":"#))
            }
            #expect(try api.get("/v1/health").status == 200)
        }
    }

    @Test func pathTraversalIsRefusedAndNeverReadsAFile() async throws {
        try await TestAPI.with() { api in
            for path in ["/v1/targets/../x", "/v1/targets/..", "/v1/targets/%2e%2e", "/v1/targets/%2E%2E%2Fetc%2Fpasswd",
                         "/v1/targets/a%2fb", "/v1/../../etc/passwd", "/v1/targets/..%2f..%2fetc%2fpasswd",
                         "/v1/targets/%zz", "/v1/targets/%00", "/v1/targets/./product-api"] {
                let reply = try api.get(path, ["--path-as-is"])
                #expect(reply.status == 400 || reply.status == 404, "\(path) -> \(reply.status)")
                #expect(!reply.body.contains("root:"), "\(path) served a file")
                #expect(reply.body.contains(#""error":"#))
            }
            #expect(try api.get("/v1/targets/%2e%2e", ["--path-as-is"]).status == 400)
        }
    }

    @Test func whenFullTheOldestIdleConnectionIsShedThenNewOnesAreRefused() async throws {
        var limits = APILimits()
        limits.maxConnections = 3
        try await TestAPI.with(limits: limits) { api in
            let first = try RawClient(socket: api.socket, timeoutSeconds: 3)
            usleep(50_000)
            let second = try RawClient(socket: api.socket, timeoutSeconds: 3)
            let third = try RawClient(socket: api.socket, timeoutSeconds: 3)
            second.send("GET /v1/health HTTP/1.1\r\n")   // slow, but newer than `first`
            usleep(100_000)
            #expect(api.server.connectionCount == 3)
            // The fourth client is served; the oldest idle one (first) is closed to make room.
            #expect(try api.get("/v1/health").status == 200)
            let shed = first.readToEnd()
            #expect(shed.closed && shed.data.isEmpty)
            third.send("GET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n")
            #expect(String(decoding: third.readToEnd().data, as: UTF8.self).hasPrefix("HTTP/1.1 200"))

            // With no room at all, a new client gets 503 and the server carries on.
            limits.maxConnections = 0
            try await TestAPI.with(limits: limits) { none in
                let refused = try none.get("/v1/health")
                #expect(refused.status == 503 && refused.body.contains("too many connections"))
            }
        }
    }

    @Test func aStaleSocketFileIsReplacedButALiveOneOrAFileIsNot() async throws {
        try await TestAPI.with() { api in
            let other = APIServer(board: StateBoard(), metrics: DaemonMetrics(), scanGroup: nil) { .started }
            await #expect(throws: APIServerError.self) { try await other.start(socketPath: api.socket, group: nil) }
            #expect(try api.get("/v1/health").status == 200, "the live daemon keeps its socket")

            let file = api.dir + "/plain"
            #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
            do {
                try await other.start(socketPath: file, group: nil)
                Issue.record("bound over a regular file")
            } catch {
                #expect("\(error)" == "\(file) exists and is not a socket")
            }

            // kill -9 leaves the socket file behind: the next start replaces it.
            let stale = api.dir + "/stale.sock"
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in stale.utf8.enumerated() { raw[i] = b } }
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            close(fd)
            try await other.start(socketPath: stale, group: nil)
            #expect(try Curl.request(socket: stale, "/v1/report").status == 503)
            await other.stop()
        }
    }

    @Test func apiServiceStopsOnGracefulShutdown() async throws {
        try await TestAPI.with() { api in
            var logger = Logger(label: "test")
            logger.logLevel = .error
            let group = ServiceGroup(services: [APIService(server: api.server)], logger: logger)
            async let running: Void = group.run()
            #expect(try api.get("/v1/health").status == 200)
            await group.triggerGracefulShutdown()
            try await running
            #expect(!FileManager.default.fileExists(atPath: api.socket))
            let after = try Curl.request(socket: api.socket, "/v1/health")
            #expect(after.status == 0 && after.curlExit != 0)
        }
    }
}

@Suite struct HTTPRequestParserTests {
    let limits = HTTPParserLimits(maxRequestLineBytes: 64, maxHeaderBytes: 128, maxBodyBytes: 16)

    func parse(_ text: String) -> HTTPParseResult {
        var parser = HTTPRequestParser(limits: limits)
        return Array(text.utf8).withUnsafeBytes { parser.parse($0) }
    }

    @Test func aTargetsPathDropsTheQueryTheFragmentAndAnAbsoluteFormsAuthority() {
        let cases: [(String, String)] = [
            ("/v1/report", "/v1/report"), ("/v1/report?pretty=1", "/v1/report"), ("/v1/health#top", "/v1/health"),
            ("/v1/targets/na%C3%AFve?x#y", "/v1/targets/na%C3%AFve"), ("http://localhost/metrics?a", "/metrics"),
            ("http://localhost", "/"), ("http://h?x/y", "/y"), ("/\u{00e9}t\u{00e9}?q", "/\u{00e9}t\u{00e9}"), ("/?", "/"),
        ]
        for (target, path) in cases { #expect(Router.path(of: target) == path, "\(target)") }
    }

    @Test func completeIncompleteAndPipelined() {
        #expect(parse("GET /v1/health HTTP/1.1\r\nHost: x\r\n") == .incomplete)
        let two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
        guard case .request(let head, let consumed) = parse(two) else { Issue.record("not parsed"); return }
        #expect(head.target == "/a" && head.method == .get && head.keepAlive && consumed == 19)
        let post10 = "POST /v1/scan HTTP/1.0\r\nContent-Length: 3\r\nconnection: Keep-Alive\r\n\r\nabcGET"
        guard case .request(let post, let n) = parse(post10) else { Issue.record("not parsed"); return }
        #expect(post.method == .post && post.http10 && post.keepAlive && post.contentLength == 3 && n == post10.utf8.count - 3)
        #expect(parse("POST /v1/scan HTTP/1.1\r\nContent-Length: 3\r\n\r\nab") == .incomplete)
    }

    @Test func limitsAndRejections() {
        #expect(parse("GET /" + String(repeating: "a", count: 80)) == .failure(status: 414, reason: "request line longer than 64 bytes"))
        guard case .failure(431, _) = parse("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200)) else { Issue.record("no 431"); return }
        guard case .failure(413, _) = parse("POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n") else { Issue.record("no 413"); return }
        guard case .failure(501, _) = parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") else { Issue.record("no 501"); return }
        guard case .failure(505, _) = parse("GET / HTTP/2.0\r\n\r\n") else { Issue.record("no 505"); return }
        // Garbage is refused from its first byte, without waiting for a line end.
        guard case .failure(400, _) = parse("\u{1}") else { Issue.record("no 400"); return }
        guard case .failure(400, _) = parse("GET /\u{7f}") else { Issue.record("no 400"); return }
        #expect(parse("\r\n\r\nGET") == .incomplete)
    }

    /// Issue 14: a header dripped one byte per read costs the parser the new byte each time, not a
    /// re-scan from the request's start (which made 500 dripping clients slow everyone's answers).
    @Test func aHeaderDrippedOneByteAtATimeIsExaminedOnce() {
        let fields = (0..<250).map { "X-Drip-\($0): " + String(repeating: "a", count: 16) + "\r\n" }.joined()
        let text = Array(("GET /v1/health HTTP/1.1\r\n" + fields + "\r\n").utf8)
        var parser = HTTPRequestParser(limits: HTTPParserLimits(maxRequestLineBytes: 4096, maxHeaderBytes: 8192, maxBodyBytes: 4096))
        var early = 0
        for n in 1..<text.count where text[..<n].withUnsafeBytes({ parser.parse($0) }) != .incomplete { early += 1 }
        let last = text.withUnsafeBytes { parser.parse($0) }
        #expect(early == 0 && last == .request(HTTPRequestHead(method: .get, target: "/v1/health", keepAlive: true, http10: false,
                                                                contentLength: 0), consumed: text.count))
        // Each byte once while the head arrives, and once more for the fields when it is complete.
        #expect(parser.bytesExamined <= 2 * text.count, "\(parser.bytesExamined) bytes examined for a \(text.count)-byte head")
    }

    /// Fed in pieces, the parser answers at every length what it answers for those bytes at once.
    @Test func parsingInPiecesAgreesWithParsingAtOnce() {
        let inputs = [
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            "\r\n\r\nPOST /v1/scan HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\n\n",
            "GET / HTTP/1.1\r\rX", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "GET /x HTTP/1.1\r\n folded\r\n\r\n",
            "GET /" + String(repeating: "a", count: 70), "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200),
            "POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET /\u{7f}", "\u{1}",
            String(repeating: "\r\n", count: 300),
        ]
        for input in inputs {
            let bytes = Array(input.utf8)
            var from = 0
            var pieces = HTTPRequestParser(limits: limits)
            for n in 1...bytes.count where n > from {
                let got = bytes[from..<n].withUnsafeBytes { pieces.parse($0) }
                var fresh = HTTPRequestParser(limits: limits)
                let want = bytes[from..<n].withUnsafeBytes { fresh.parse($0) }
                #expect(got == want, "\(input.debugDescription) at \(n)")
                // After a request the next one starts; an error ends the connection.
                if case .request(_, let consumed) = got, got == want { from += consumed } else if got != .incomplete { break }
            }
        }
    }
}

@Suite struct DaemonMetricsTests {
    /// `name{labels} value` lines of the exposition text.
    func samples(_ metrics: DaemonMetrics) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in String(decoding: metrics.render(), as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = value
        }
        return out
    }

    @Test func seriesFollowTheReports() {
        let metrics = DaemonMetrics(version: "1.2.3")
        var s = samples(metrics)
        #expect(s["crypto_sentinel_cycles_total"] == 0 && s["crypto_sentinel_cycle_failures_total"] == 0)
        #expect(s["crypto_sentinel_up"] == 1 && s[#"crypto_sentinel_build_info{version="1.2.3"}"#] == 1)

        metrics.record(report: sampleReport(), cycleSeconds: 0.3, finishedAt: 1_800_000_000, intervalSeconds: 300)
        s = samples(metrics)
        #expect(s["crypto_sentinel_cycle_interval_seconds"] == 300)
        #expect(s["crypto_sentinel_cycles_total"] == 1)
        #expect(s["crypto_sentinel_last_successful_cycle_timestamp_seconds"] == 1_800_000_000)
        #expect(s[#"crypto_sentinel_target_state{target="product-api",state="failed"}"#] == 1)
        #expect(s[#"crypto_sentinel_target_state{target="product-api",state="healthy"}"#] == 0)
        #expect(s[#"crypto_sentinel_target_state{target="with space",state="healthy"}"#] == 1)
        let dupSeverity = FindingCode.duplicateOpenSSLCopy.severity.rawValue
        #expect(s[#"crypto_sentinel_findings{code="split-libcrypto",severity="critical"}"#] == 1)
        #expect(s[#"crypto_sentinel_findings{code="duplicate-openssl-copy",severity="\#(dupSeverity)"}"#] == 1)
        // One series per (target, code), for alerting that names the target.
        #expect(s[#"crypto_sentinel_finding{target="product-api",code="split-libcrypto",severity="critical"}"#] == 1)
        #expect(s[#"crypto_sentinel_finding{target="product",code="duplicate-openssl-copy",severity="\#(dupSeverity)"}"#] == 1)
        #expect(s["crypto_sentinel_cycle_duration_seconds_count"] == 1)
        #expect(s["crypto_sentinel_cycle_duration_seconds_sum"] == 0.3)
        #expect(s[#"crypto_sentinel_cycle_duration_seconds_bucket{le="0.5"}"#] == 1)
        #expect(s[#"crypto_sentinel_cycle_duration_seconds_bucket{le="0.25"}"#] == 0)

        // The split is fixed and the bundle target is gone.
        let fixed = Report(command: "daemon", toolVersion: "t", generatedAt: "2026-11-23T12:05:00Z",
                           targets: [TargetReport(name: "product-api", kind: "service", findings: [])])
        metrics.record(report: fixed, cycleSeconds: 0.1, finishedAt: 1_800_000_300)
        metrics.recordCycleFailure()
        s = samples(metrics)
        #expect(s["crypto_sentinel_cycles_total"] == 2 && s["crypto_sentinel_cycle_failures_total"] == 1)
        #expect(s[#"crypto_sentinel_target_state{target="product-api",state="healthy"}"#] == 1)
        #expect(s[#"crypto_sentinel_target_state{target="product-api",state="failed"}"#] == 0)
        #expect(!s.keys.contains { $0.contains(#"target="product""#) }, "a vanished target's series are removed")
        #expect(s[#"crypto_sentinel_findings{code="split-libcrypto",severity="critical"}"#] == 0)
        #expect(!s.keys.contains { $0.hasPrefix("crypto_sentinel_finding{") }, "resolved findings' series are removed: \(s.keys)")
        #expect(s["crypto_sentinel_last_successful_cycle_timestamp_seconds"] == 1_800_000_300)
        #expect(String(decoding: metrics.render(), as: UTF8.self).contains("# TYPE crypto_sentinel_cycle_duration_seconds histogram"))
    }
}

extension DaemonMetricsTests {
    /// Discovered processes are targets of their own: the per-target series are capped, the most severe kept.
    @Test func perTargetFindingSeriesAreBounded() {
        let metrics = DaemonMetrics()
        let many = (0..<(DaemonMetrics.maxFindingSeries + 50)).map { i in
            TargetReport(name: "pid \(i)", kind: "process",
                         findings: [Finding(code: i < 10 ? .processSplitLibcrypto : .processStaticOpenSSL, target: "pid \(i)", subject: "x", summary: "s")])
        }
        metrics.record(report: Report(command: "daemon", toolVersion: "t", generatedAt: "x", targets: many), cycleSeconds: 0.1, finishedAt: 1)
        let series = samples(metrics).keys.filter { $0.hasPrefix("crypto_sentinel_finding{") }
        #expect(series.count == DaemonMetrics.maxFindingSeries)
        #expect(series.filter { $0.contains("process-split-libcrypto") }.count == 10)
    }
}

/// contrib/prometheus: the shipped alert rules, checked and unit-tested by the real promtool (Debian's
/// `prometheus` package; `make setup` installs it), on the series the daemon really exports.
@Suite struct PrometheusRulesTests {
    static let folder = FixtureScripts.packageRoot + "/contrib/prometheus"

    @Test func promtoolChecksAndTestsTheRules() throws {
        let check = try Subprocess.run(["promtool", "check", "rules", Self.folder + "/crypto-sentinel.rules.yml"])
        #expect(check.status == 0, "\(check.text)\(check.stderr)")
        let test = try Subprocess.run(["/bin/sh", "-c", "cd \"$1\" && promtool test rules crypto-sentinel.rules.test.yml", "-", Self.folder])
        #expect(test.status == 0 && test.text.contains("SUCCESS"), "\(test.text)\(test.stderr)")
    }

    /// Every crypto_sentinel_* name a rule uses is one the daemon writes.
    @Test func theRulesUseOnlySeriesTheDaemonExports() throws {
        let metrics = DaemonMetrics(version: "t")
        metrics.record(report: sampleReport(), cycleSeconds: 0.1, finishedAt: 1, intervalSeconds: 300)
        let exported = String(decoding: metrics.render(), as: UTF8.self)
        let rules = try String(contentsOfFile: Self.folder + "/crypto-sentinel.rules.yml", encoding: .utf8)
        let used = Set(rules.matches(of: /crypto_sentinel_[a-z_]+/).map { String($0.output) })
        #expect(used.count >= 4)
        for name in used { #expect(exported.contains("\n\(name){") || exported.contains("\n\(name) "), "\(name) is not exported") }
    }
}
