import NIOCore
import SentinelCore

/// One answer: status, type and ready bytes (the StateBoard's arrays are shared, never copied here).
struct APIResponse {
    enum ContentType { case json, prometheus }
    var status: Int
    var contentType: ContentType = .json
    var body: [UInt8]
    /// For 405: the methods the resource accepts.
    var allow: StaticString?

    static func error(_ status: Int, _ message: String, allow: StaticString? = nil) -> APIResponse {
        APIResponse(status: status, body: errorBody(status, message), allow: allow)
    }

    /// The whole answer, head and body, as one buffer.
    func rendered(method: HTTPRequestHead.Method?, http10: Bool, close: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: 192 + body.count)
        out.writeStaticString("HTTP/1.1 ")
        out.writeStaticString(Self.reason(status))
        switch contentType {
        case .json: out.writeStaticString("\r\nContent-Type: application/json\r\nContent-Length: ")
        case .prometheus: out.writeStaticString("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: ")
        }
        out.writeString(String(body.count))
        if let allow {
            out.writeStaticString("\r\nAllow: ")
            out.writeStaticString(allow)
        }
        if close {
            out.writeStaticString("\r\nConnection: close")
        } else if http10 {
            out.writeStaticString("\r\nConnection: keep-alive")
        }
        out.writeStaticString("\r\n\r\n")
        if method != .head { out.writeBytes(body) }
        return out
    }

    static func reason(_ status: Int) -> StaticString {
        switch status {
        case 200: return "200 OK"
        case 202: return "202 Accepted"
        case 400: return "400 Bad Request"
        case 403: return "403 Forbidden"
        case 404: return "404 Not Found"
        case 405: return "405 Method Not Allowed"
        case 408: return "408 Request Timeout"
        case 413: return "413 Content Too Large"
        case 414: return "414 URI Too Long"
        case 431: return "431 Request Header Fields Too Large"
        case 501: return "501 Not Implemented"
        case 503: return "503 Service Unavailable"
        case 505: return "505 HTTP Version Not Supported"
        default: return "500 Internal Server Error"
        }
    }


    /// `{"error":"...","status":N}`, through the one JSON writer.
    static func errorBody(_ status: Int, _ message: String) -> [UInt8] {
        ReportJSON.encode(["error": .string(message), "status": .int(Int64(status))], style: .compact) + [0x0a]
    }
}

/// Maps a request to its answer. Only the scan needs the peer's credentials; the handler does that.
final class Router: Sendable {
    enum Route {
        case respond(APIResponse)
        /// The whole answer, rendered once per published report and shared by every keep-alive GET
        /// of it (HTTP/1.1, no close): a query then sends it instead of building ~20 KB anew.
        case prepared(ByteBuffer)
        case scan
    }

    private let board: StateBoard
    private let metrics: DaemonMetrics
    private struct HealthKey: Equatable {
        var cycles: Int, source: String, lastCycleAt: String?, lastCycleSeconds: Double?, statusLine: String, ready: Bool
    }
    /// Published.healthJSON encodes on every call; the API encodes once per published state.
    private let health = Locked<(key: HealthKey, body: [UInt8])?>(nil)
    /// GET /v1/report's prepared answer, keyed by the body array's storage, which the cache keeps
    /// alive, so an address is never reused.
    private let reportAnswer = Locked<(body: [UInt8], answer: ByteBuffer)?>(nil)
    private static let allocator = ByteBufferAllocator()

    init(board: StateBoard, metrics: DaemonMetrics) {
        self.board = board
        self.metrics = metrics
    }

    static let noReport = APIResponse.error(503, "no report yet: the first cycle is running")
    static let readOnly: StaticString = "GET, HEAD"

    func route(_ head: HTTPRequestHead) -> Route {
        let path = Self.path(of: head.target)
        let readable = head.method == .get || head.method == .head
        switch path {
        case "/v1/report":
            guard readable else { return .respond(.error(405, "use GET or HEAD on \(path)", allow: Self.readOnly)) }
            let now = board.current()
            guard now.report != nil else { return .respond(Self.noReport) }
            guard head.method == .get, head.keepAlive, !head.http10 else { return .respond(APIResponse(status: 200, body: now.reportJSON)) }
            return .prepared(preparedReport(now.reportJSON))
        case "/v1/health":
            guard readable else { return .respond(.error(405, "use GET or HEAD on \(path)", allow: Self.readOnly)) }
            return .respond(APIResponse(status: 200, body: healthBody()))
        case "/metrics":
            guard readable else { return .respond(.error(405, "use GET or HEAD on \(path)", allow: Self.readOnly)) }
            return .respond(APIResponse(status: 200, contentType: .prometheus, body: metrics.render()))
        case "/v1/scan":
            guard head.method == .post else { return .respond(.error(405, "use POST on /v1/scan", allow: "POST")) }
            return .scan
        default:
            if path.hasPrefix("/v1/targets/") {
                return .respond(target(String(path.dropFirst("/v1/targets/".count)), readable: readable))
            }
            if Self.hasDotSegment(path) { return .respond(.error(400, "path with . or .. segments")) }
            return .respond(.error(404, "no such resource: \(path) (try /v1/health, /v1/report, /v1/targets/NAME, /v1/scan, /metrics)"))
        }
    }

    /// `/v1/targets/NAME`: one percent-decoded segment, looked up by name only (never a file).
    private func target(_ raw: String, readable: Bool) -> APIResponse {
        if raw.utf8.contains(0x2f) {
            return Self.hasDotSegment(raw) ? .error(400, "path with . or .. segments") : .error(404, "no such resource")
        }
        guard let bytes = Self.percentDecode(raw) else { return .error(400, "invalid percent-encoding in the target name") }
        guard !bytes.isEmpty else { return .error(404, "no target name given: /v1/targets/NAME") }
        guard !bytes.contains(0x2f), !bytes.contains(0), bytes != [0x2e], bytes != [0x2e, 0x2e],
              let name = String(validating: bytes, as: UTF8.self)
        else { return .error(400, "invalid target name") }
        guard readable else { return .error(405, "use GET or HEAD on /v1/targets/NAME", allow: Self.readOnly) }
        guard let body = board.current().targetJSON[name] else { return .error(404, "no target named '\(name)'") }
        return APIResponse(status: 200, body: body)
    }

    private func preparedReport(_ body: [UInt8]) -> ByteBuffer {
        if let cached = reportAnswer.withLock({ $0 }), Self.sameStorage(cached.body, body) { return cached.answer }
        let answer = APIResponse(status: 200, body: body).rendered(method: .get, http10: false, close: false, allocator: Self.allocator)
        reportAnswer.withLock { $0 = (body, answer) }
        return answer
    }

    private static func sameStorage(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count == b.count && a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { $0.baseAddress == x.baseAddress } }
    }

    private func healthBody() -> [UInt8] {
        let now = board.current()
        let key = HealthKey(cycles: now.cycles, source: now.source, lastCycleAt: now.lastCycleAt,
                            lastCycleSeconds: now.lastCycleSeconds, statusLine: now.statusLine, ready: now.ready)
        if let cached = health.withLock({ $0 }), cached.key == key { return cached.body }
        let body = now.healthJSON
        health.withLock { $0 = (key, body) }
        return body
    }

    static func scanResponse(_ outcome: ScanRequestOutcome) -> APIResponse {
        switch outcome {
        case .started: return APIResponse(status: 202, body: Array(#"{"scan":"started"}"#.utf8) + [0x0a])
        case .alreadyPending: return APIResponse(status: 202, body: Array(#"{"scan":"already pending"}"#.utf8) + [0x0a])
        }
    }

    /// The path of an origin-form or absolute-form target, without query or fragment.
    /// On UTF-8 bytes: a Character walk (grapheme breaking) of every target was a visible share of
    /// the API thread's time under load.
    static func path(of target: String) -> String {
        var t = Substring(target).utf8
        if t.starts(with: "http://".utf8) {
            t = t.dropFirst(7)
            guard let slash = t.firstIndex(of: 0x2f) else { return "/" }
            t = t[slash...]
        }
        if let cut = t.firstIndex(where: { $0 == 0x3f || $0 == 0x23 }) {
            t = t[..<cut]
        } else if t.startIndex == target.utf8.startIndex {
            return target   // nothing to cut: no copy
        }
        return String(Substring(t))
    }

    /// True if any segment, after percent-decoding, is `.` or `..`.
    static func hasDotSegment(_ path: String) -> Bool {
        path.utf8.split(separator: 0x2f, omittingEmptySubsequences: false).contains { segment in
            let decoded = percentDecode(String(decoding: segment, as: UTF8.self)) ?? []
            return decoded == [0x2e] || decoded == [0x2e, 0x2e]
        }
    }

    static func percentDecode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var it = Array(text.utf8)[...]
        while let b = it.popFirst() {
            guard b == 0x25 else { out.append(b); continue }
            guard let h = it.popFirst().flatMap(hexValue), let l = it.popFirst().flatMap(hexValue) else { return nil }
            out.append(h << 4 | l)
        }
        return out
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }
}
