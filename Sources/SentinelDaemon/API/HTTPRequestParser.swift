/// A strict, bounded HTTP/1.1 request-head parser over raw bytes.
///
/// Hand-written rather than NIOHTTP1's decoder because the API needs distinct answers for an
/// over-long request line (414), oversize headers (431) and body (413), and must reject binary
/// garbage on its first bytes; it is also a pure function, so issue 6 can fuzz it directly.
public struct HTTPRequestHead: Sendable, Equatable {
    public enum Method: Sendable, Equatable {
        case get, head, post, other(String)
    }
    public var method: Method
    /// The request target exactly as sent (origin-form or absolute-form), visible ASCII only.
    public var target: String
    public var keepAlive: Bool
    /// HTTP/1.0 keeps a connection open only when the response says `Connection: keep-alive`.
    public var http10: Bool
    public var contentLength: Int
}

public enum HTTPParseResult: Sendable, Equatable {
    /// More bytes are needed; nothing is wrong yet.
    case incomplete
    /// A whole request (head and body) occupies the first `consumed` bytes.
    case request(HTTPRequestHead, consumed: Int)
    /// The connection gets this status with a JSON error and is closed.
    case failure(status: Int, reason: String)
}

public struct HTTPParserLimits: Sendable {
    public var maxRequestLineBytes: Int
    public var maxHeaderBytes: Int
    public var maxBodyBytes: Int
    public init(maxRequestLineBytes: Int, maxHeaderBytes: Int, maxBodyBytes: Int) {
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
    }
}

/// Parses one request after another from a connection's buffered bytes. A request arriving in pieces
/// costs the new bytes of each piece: where the scan stopped is kept, so a client dripping its head one
/// byte per read never makes the parser re-read what it already checked.
public struct HTTPRequestParser: Sendable {
    private static let cr: UInt8 = 13, lf: UInt8 = 10, sp: UInt8 = 32, tab: UInt8 = 9, colon: UInt8 = 58

    public let limits: HTTPParserLimits
    /// Bytes looked at since the parser was made (the scan of the head, and the fields once when it is complete).
    public private(set) var bytesExamined = 0
    /// Where the request line starts, once a byte other than CR or LF arrived.
    private var start: Int?
    /// The first byte not examined yet.
    private var next = 0
    private var spaces = 0
    /// The request line's LF, once it arrived.
    private var lineEnd: Int?
    /// The header line being scanned.
    private var lineStart = 0
    /// A complete head waiting for its body; `end` is just past the blank line.
    private var complete: (head: HTTPRequestHead, end: Int)?

    public init(limits: HTTPParserLimits) { self.limits = limits }

    /// Parses the request at the start of `bytes`, which hold the bytes of the previous call and
    /// perhaps more; after a `.request` the next call starts on the bytes following it.
    /// Leading empty lines are skipped (RFC 9112 2.2).
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> HTTPParseResult {
        let result = scan(bytes)
        if case .request = result {
            start = nil; next = 0; spaces = 0; lineEnd = nil; lineStart = 0; complete = nil
        }
        return result
    }

    private mutating func scan(_ bytes: UnsafeRawBufferPointer) -> HTTPParseResult {
        let n = bytes.count
        if let complete {
            return n - complete.end < complete.head.contentLength ? .incomplete
                : .request(complete.head, consumed: complete.end + complete.head.contentLength)
        }
        let from = next
        defer { bytesExamined += next - from }
        let start: Int
        if let known = self.start {
            start = known
        } else {
            while next < n, bytes[next] == Self.cr || bytes[next] == Self.lf { next += 1 }
            if next == n { return next > 512 ? .failure(status: 400, reason: "empty lines instead of a request") : .incomplete }
            self.start = next
            start = next
        }

        // Request line: reject garbage as soon as it shows, without waiting for a line end.
        if lineEnd == nil {
            // A CR that ended the previous piece: only now is it known whether a LF follows.
            if next > start, next < n, bytes[next - 1] == Self.cr, bytes[next] != Self.lf {
                return .failure(status: 400, reason: "bare CR in the request line")
            }
            while next < n {
                let b = bytes[next]
                if b == Self.lf { lineEnd = next; break }
                if b == Self.cr {
                    if next + 1 < n, bytes[next + 1] != Self.lf { return .failure(status: 400, reason: "bare CR in the request line") }
                } else if b == Self.sp {
                    spaces += 1
                    if spaces > 2 { return .failure(status: 400, reason: "malformed request line") }
                } else if spaces == 0 {
                    if !Self.isTokenChar(b) { return .failure(status: 400, reason: "malformed request method") }
                } else if b <= 0x20 || b >= 0x7f {
                    return .failure(status: 400, reason: "invalid byte in the request line")
                }
                if next - start >= limits.maxRequestLineBytes {
                    return .failure(status: 414, reason: "request line longer than \(limits.maxRequestLineBytes) bytes")
                }
                next += 1
            }
            guard let lineEnd else { return .incomplete }
            next = lineEnd + 1
            lineStart = next
        }
        let lineEnd = lineEnd!

        // The header section ends at the first empty line.
        var headerEnd = -1  // index just past the blank line
        while next < n {
            let b = bytes[next]
            if b == Self.lf {
                let len = next - lineStart - (next > lineStart && bytes[next - 1] == Self.cr ? 1 : 0)
                if len == 0 { headerEnd = next + 1; break }
                lineStart = next + 1
            } else if b < 0x20 && b != Self.tab && b != Self.cr || b == 0x7f {
                return .failure(status: 400, reason: "control byte in the request headers")
            }
            if next - start >= limits.maxHeaderBytes {
                return .failure(status: 431, reason: "request headers larger than \(limits.maxHeaderBytes) bytes")
            }
            next += 1
        }
        if headerEnd < 0 {
            return n - start > limits.maxHeaderBytes
                ? .failure(status: 431, reason: "request headers larger than \(limits.maxHeaderBytes) bytes") : .incomplete
        }
        next = headerEnd
        bytesExamined += headerEnd - start
        let parsed = Self.head(bytes, start: start, lineEnd: lineEnd, spaces: spaces, headerEnd: headerEnd, limits: limits)
        guard case .request(let head, _) = parsed else { return parsed }
        if n - headerEnd < head.contentLength {
            complete = (head, headerEnd)
            return .incomplete
        }
        return .request(head, consumed: headerEnd + head.contentLength)
    }

    /// The request line's and the header fields' meaning, once the head is complete: `.request` (its
    /// `consumed` is the head's length) or `.failure`.
    private static func head(_ bytes: UnsafeRawBufferPointer, start: Int, lineEnd: Int, spaces: Int, headerEnd: Int,
                             limits: HTTPParserLimits) -> HTTPParseResult {
        // Request line fields.
        let lineLen = lineEnd - start - (bytes[lineEnd - 1] == cr ? 1 : 0)
        guard spaces == 2, let s1 = index(of: sp, in: bytes, from: start, to: start + lineLen),
              let s2 = index(of: sp, in: bytes, from: s1 + 1, to: start + lineLen),
              s1 > start, s2 > s1 + 1, s2 + 1 < start + lineLen
        else { return .failure(status: 400, reason: "malformed request line") }
        let methodText = string(bytes, start, s1)
        let target = string(bytes, s1 + 1, s2)
        let version = string(bytes, s2 + 1, start + lineLen)
        var keepAlive: Bool
        switch version {
        case "HTTP/1.1": keepAlive = true
        case "HTTP/1.0": keepAlive = false
        default:
            if version.hasPrefix("HTTP/"), version.count == 8 { return .failure(status: 505, reason: "only HTTP/1.1 and HTTP/1.0 are served") }
            return .failure(status: 400, reason: "malformed HTTP version")
        }
        guard target.utf8.first == UInt8(ascii: "/") || target.hasPrefix("http://") else {
            return .failure(status: 400, reason: "request target must be a path")
        }

        // Header fields: only the framing and connection ones matter here.
        var contentLength: Int?
        var p = lineEnd + 1
        while p < headerEnd {
            var e = p
            while bytes[e] != lf { e += 1 }
            let end = e > p && bytes[e - 1] == cr ? e - 1 : e
            defer { p = e + 1 }
            if end == p { break }
            if bytes[p] == sp || bytes[p] == tab { return .failure(status: 400, reason: "folded header line") }
            guard let c = index(of: colon, in: bytes, from: p, to: end), c > p else {
                return .failure(status: 400, reason: "header line without a name")
            }
            for k in p..<c where !isTokenChar(bytes[k]) { return .failure(status: 400, reason: "invalid header name") }
            var vs = c + 1, ve = end
            while vs < ve, bytes[vs] == sp || bytes[vs] == tab { vs += 1 }
            while ve > vs, bytes[ve - 1] == sp || bytes[ve - 1] == tab { ve -= 1 }
            // Only three names matter; skip the lowercase copy for every other header.
            let nameLength = c - p
            switch nameLength == 10 || nameLength == 14 || nameLength == 17 ? lowercased(bytes, p, c) : "" {
            case "content-length":
                let text = string(bytes, vs, ve)
                guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let v = Int(text) else {
                    return .failure(status: 400, reason: "invalid Content-Length")
                }
                if let contentLength, contentLength != v { return .failure(status: 400, reason: "conflicting Content-Length headers") }
                contentLength = v
            case "transfer-encoding":
                return .failure(status: 501, reason: "Transfer-Encoding is not supported; send Content-Length")
            case "connection":
                for token in lowercased(bytes, vs, ve).split(separator: ",") {
                    switch token.trimmingSpaces {
                    case "close": keepAlive = false
                    case "keep-alive": keepAlive = true
                    default: break
                    }
                }
            default: break
            }
        }
        let bodyLength = contentLength ?? 0
        if bodyLength > limits.maxBodyBytes { return .failure(status: 413, reason: "request body larger than \(limits.maxBodyBytes) bytes") }

        let method: HTTPRequestHead.Method
        switch methodText {
        case "GET": method = .get
        case "HEAD": method = .head
        case "POST": method = .post
        default: method = .other(methodText)
        }
        return .request(HTTPRequestHead(method: method, target: target, keepAlive: keepAlive, http10: version == "HTTP/1.0",
                                        contentLength: bodyLength),
                        consumed: headerEnd)
    }

    /// RFC 9110 tchar.
    @inline(__always) static func isTokenChar(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5a, 0x61...0x7a: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2a, 0x2b, 0x2d, 0x2e, 0x5e, 0x5f, 0x60, 0x7c, 0x7e: return true
        default: return false
        }
    }

    private static func index(of byte: UInt8, in bytes: UnsafeRawBufferPointer, from: Int, to: Int) -> Int? {
        var i = from
        while i < to { if bytes[i] == byte { return i }; i += 1 }
        return nil
    }

    private static func string(_ bytes: UnsafeRawBufferPointer, _ from: Int, _ to: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[from..<to]), as: UTF8.self)
    }

    private static func lowercased(_ bytes: UnsafeRawBufferPointer, _ from: Int, _ to: Int) -> String {
        String(decoding: bytes[from..<to].map { $0 >= 0x41 && $0 <= 0x5a ? $0 + 32 : $0 }, as: UTF8.self)
    }
}

private extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
