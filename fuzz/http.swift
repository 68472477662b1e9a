// libFuzzer target: the API's HTTP/1.1 request-head parser, compiled in from
// Sources/SentinelDaemon/API/HTTPRequestParser.swift (it imports nothing, so no NIO is linked).
// Limits as APIServer's defaults, plus a tiny set so the 414/431/413 branches are reached often.
// Each input is also fed in two pieces: a resumed scan must answer as a scan of the whole.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)
    let limits = [
        HTTPParserLimits(maxRequestLineBytes: 4096, maxHeaderBytes: 8192, maxBodyBytes: 4096),
        HTTPParserLimits(maxRequestLineBytes: 16, maxHeaderBytes: 32, maxBodyBytes: 8),
    ]
    for l in limits {
        var whole = HTTPRequestParser(limits: l)
        let result = whole.parse(buffer)
        if case .request(let head, let consumed) = result {
            // A parsed request can never claim more bytes than it was given.
            precondition(consumed > 0 && consumed <= size, "consumed \(consumed) of \(size)")
            precondition(head.contentLength >= 0 && head.contentLength <= l.maxBodyBytes)
        }
        // The same bytes in two pieces (split where the first byte says) give the same answer, unless the
        // first piece is already answered.
        guard size > 1 else { continue }
        var pieces = HTTPRequestParser(limits: l)
        let first = pieces.parse(UnsafeRawBufferPointer(rebasing: buffer[..<(1 + Int(data[0]) % (size - 1))]))
        precondition(first != .incomplete || pieces.parse(buffer) == result, "split parse differs")
    }
    return 0
}
