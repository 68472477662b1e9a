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

public enum HTTPRequestParser {
    private static let cr: UInt8 = 13, lf: UInt8 = 10, sp: UInt8 = 32, tab: UInt8 = 9, colon: UInt8 = 58

    /// Parses the request at the start of `bytes`. Leading empty lines are skipped (RFC 9112 2.2).
    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: HTTPParserLimits) -> HTTPParseResult {
        let n = bytes.count
        var start = 0
        while start < n, bytes[start] == cr || bytes[start] == lf { start += 1 }
        if start == n { return start > 512 ? .failure(status: 400, reason: "empty lines instead of a request") : .incomplete }

        // Request line: reject garbage as soon as it shows, without waiting for a line end.
        var lineEnd = -1
        var i = start
        var spaces = 0
        while i < n {
            let b = bytes[i]
            if b == lf { lineEnd = i; break }
            if b == cr {
                if i + 1 < n, bytes[i + 1] != lf { return .failure(status: 400, reason: "bare CR in the request line") }
            } else if b == sp {
                spaces += 1
                if spaces > 2 { return .failure(status: 400, reason: "malformed request line") }
            } else if spaces == 0 {
                if !isTokenChar(b) { return .failure(status: 400, reason: "malformed request method") }
            } else if b <= 0x20 || b >= 0x7f {
                return .failure(status: 400, reason: "invalid byte in the request line")
            }
            if i - start >= limits.maxRequestLineBytes { return .failure(status: 414, reason: "request line longer than \(limits.maxRequestLineBytes) bytes") }
            i += 1
        }
        if lineEnd < 0 { return .incomplete }

        // The header section ends at the first empty line.
        var headerEnd = -1  // index just past the blank line
        var j = lineEnd + 1
        var lineStart = j
        while j < n {
            let b = bytes[j]
            if b == lf {
                let len = j - lineStart - (j > lineStart && bytes[j - 1] == cr ? 1 : 0)
                if len == 0 { headerEnd = j + 1; break }
                lineStart = j + 1
            } else if b < 0x20 && b != tab && b != cr || b == 0x7f {
                return .failure(status: 400, reason: "control byte in the request headers")
            }
            if j - start >= limits.maxHeaderBytes { return .failure(status: 431, reason: "request headers larger than \(limits.maxHeaderBytes) bytes") }
            j += 1
        }
        if headerEnd < 0 {
            return n - start > limits.maxHeaderBytes
                ? .failure(status: 431, reason: "request headers larger than \(limits.maxHeaderBytes) bytes") : .incomplete
        }

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
        if n - headerEnd < bodyLength { return .incomplete }

        let method: HTTPRequestHead.Method
        switch methodText {
        case "GET": method = .get
        case "HEAD": method = .head
        case "POST": method = .post
        default: method = .other(methodText)
        }
        return .request(HTTPRequestHead(method: method, target: target, keepAlive: keepAlive, http10: version == "HTTP/1.0",
                                        contentLength: bodyLength),
                        consumed: headerEnd + bodyLength)
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
