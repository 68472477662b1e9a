// libFuzzer target: the API's HTTP/1.1 request-head parser, compiled in from
// Sources/SentinelDaemon/API/HTTPRequestParser.swift (it imports nothing, so no NIO is linked).
// Limits as APIServer's defaults, plus a tiny set so the 414/431/413 branches are reached often.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)
    let limits = [
        HTTPParserLimits(maxRequestLineBytes: 4096, maxHeaderBytes: 8192, maxBodyBytes: 4096),
        HTTPParserLimits(maxRequestLineBytes: 16, maxHeaderBytes: 32, maxBodyBytes: 8),
    ]
    for l in limits {
        if case .request(let head, let consumed) = HTTPRequestParser.parse(buffer, limits: l) {
            // A parsed request can never claim more bytes than it was given.
            precondition(consumed > 0 && consumed <= size, "consumed \(consumed) of \(size)")
            precondition(head.contentLength >= 0 && head.contentLength <= l.maxBodyBytes)
        }
    }
    return 0
}
