import Foundation
import SentinelCore
import Testing

/// `scan --format json`, the API and the state files are public contracts: the hand-written writer
/// must print exactly what JSONEncoder printed before it, pretty and compact, on every shape a
/// document takes.
@Suite struct ReportJSONTests {
    static func encoderBytes<T: Encodable>(_ value: T, style: ReportJSON.Style = .pretty) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = style == .pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                                                    : [.sortedKeys, .withoutEscapingSlashes]
        return [UInt8](try encoder.encode(value))
    }

    static let awkward = "quote \" backslash \\ slash / tab \t nl \n cr \r bs \u{8} ff \u{c} nul \u{0} us \u{1f} del \u{7f} é ü 漢字 😇"

    static let reports: [Report] = [
        Report(command: "scan", toolVersion: "0.1.0", generatedAt: "2026-11-23T17:00:00Z", targets: []),
        Report(command: "scan", toolVersion: "0.1.0", generatedAt: "2026-11-23T17:00:00Z", targets: [
            TargetReport(name: "empty", kind: "bundle", root: "/tmp/b", findings: []),
        ]),
        Report(command: "inspect", toolVersion: "0.1.0", generatedAt: "t", targets: [
            TargetReport(
                name: awkward, kind: "process", root: nil,
                environment: ["OPENSSL_CONF": "/etc/ssl/openssl.cnf", "LD_LIBRARY_PATH": awkward, "Zeta": "", "alpha": "a", "é": "x", "_": "u"],
                stats: ["files": 3, "elf_files": -1, "openssl_edges": 0, "z": Int.max, "a": Int.min],
                findings: [
                    Finding(code: .splitLibcrypto, target: awkward, subject: awkward, summary: awkward,
                            evidence: .object([
                                "copies": .array([.object(["path": "lib/libcrypto.so.3", "in_bundle": true, "version": .null,
                                                           "size": .int(Int64.max), "neg": .int(Int64.min)]),
                                                  .array([]), .object([:]), .bool(false), .string("")]),
                                "": .string("empty key"), "B": "upper", "a": "lower", "cpython-39": 1, "cpython-311": 2,
                                "ключ": .array([.null, .array([.array([])])]), "nested": .object(["empty": .object([:])]),
                            ]),
                            fix: ["cd '/tmp/x y'", awkward, ""]),
                    Finding(code: .orphanOpenSSLCopy, target: "t", subject: "", summary: "s"),
                    Finding(code: .modulesDirMissing, target: "t", subject: "lib/libcrypto.so.3", summary: "s", evidence: .string("scalar evidence"), fix: []),
                    // Restored from a state file written before findings had a subject: the key is left out.
                    { var f = Finding(code: .orphanOpenSSLCopy, target: "t", subject: "", summary: "legacy"); f.subject = nil; return f }(),
                ],
                warnings: ["lib/bad.so: truncated ELF header", awkward, ""]),
            TargetReport(name: "post", kind: "post", findings: [], post: .object(["checks": .array([.object(["pass": true])]), "n": .int(3)])),
            TargetReport(name: "null-post", kind: "post", findings: [], post: .null),
        ]),
        // Waivers: a marked finding, an unused waiver with a path, an expired one without.
        {
            var r = Report(command: "scan", toolVersion: "0.1.0", generatedAt: "t", targets: [
                TargetReport(name: "b", kind: "bundle", root: "/tmp/b", findings: [
                    Finding(code: .orphanOpenSSLCopy, target: "b", subject: "lib/libssl.so.3", summary: "s"),
                    Finding(code: .mixedPythonABI, target: "b", subject: "cpython-39", summary: "s"),
                ]),
            ])
            r.apply([Waiver(code: .orphanOpenSSLCopy, reason: awkward, expires: "2027-01-31", source: "w.yaml:1"),
                     Waiver(code: .splitLibcrypto, target: "b", path: "lib/x", reason: "r", expires: "2027-01-31", source: "w.yaml:6"),
                     Waiver(code: .mixedPythonABI, reason: "r", expires: "2020-01-01", source: "w.yaml:11")], today: "2026-11-23")
            return r
        }(),
    ]

    /// The writer checks strings 8 bytes at a time for characters to escape: each such character at
    /// every position of strings around that width, and nesting deeper than the indentation table.
    @Test func escapesAtEveryPositionAndDeepNesting() throws {
        var strings: [String] = (0..<18).map { String(repeating: "a", count: $0) }
        for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}", " ", "\u{7f}", "é"] {
            for length in [7, 8, 9, 16, 17] {
                for position in 0..<length {
                    var chars = Array(repeating: "b", count: length)
                    chars[position] = special
                    strings.append(chars.joined())
                }
            }
        }
        var deep: JSONValue = .string("bottom \"\\")
        for level in 0..<40 { deep = level % 2 == 0 ? .array([deep]) : .object(["k\(level)": deep]) }
        let report = Report(command: "scan", toolVersion: "0.1.0", generatedAt: "t", targets: [
            TargetReport(name: "n", kind: "bundle", findings: [
                Finding(code: .orphanOpenSSLCopy, target: "t", subject: "lib/x", summary: "s", evidence: deep, fix: strings),
            ], warnings: strings),
        ])
        let ours = ReportJSON.encode(report)
        #expect(ours == (try Self.encoderBytes(report)))
        #expect(ReportJSON.encode(report, style: .compact) == (try Self.encoderBytes(report, style: .compact)))
    }

    @Test(arguments: reports.indices)
    func sameBytesAsJSONEncoder(_ index: Int) throws {
        let report = Self.reports[index]
        let ours = ReportJSON.encode(report)
        let theirs = try Self.encoderBytes(report)
        #expect(ours == theirs, "\(String(decoding: ours, as: UTF8.self))\n---\n\(String(decoding: theirs, as: UTF8.self))")
        #expect((try? JSONSerialization.jsonObject(with: Data(ours))) != nil)
    }

    /// What the API serves and report.json holds: the whole report and each target, compact.
    @Test(arguments: reports.indices)
    func compactSameBytesAsJSONEncoder(_ index: Int) throws {
        let report = Self.reports[index]
        let ours = ReportJSON.encode(report, style: .compact)
        let theirs = try Self.encoderBytes(report, style: .compact)
        #expect(ours == theirs, "\(String(decoding: ours, as: UTF8.self))\n---\n\(String(decoding: theirs, as: UTF8.self))")
        for t in report.targets { #expect(ReportJSON.encode(t, style: .compact) == (try Self.encoderBytes(t, style: .compact))) }
        #expect(try JSONDecoder().decode(Report.self, from: Data(ours)).targets.map(\.name) == report.targets.map(\.name))
    }

    /// history.json: alerts with and without a code and evidence, and none at all.
    @Test func alertsSameBytesAsJSONEncoder() throws {
        let alerts = [
            Alert(kind: .findingNew, code: .splitLibcrypto, target: Self.awkward, state: "new", severity: .critical,
                  message: Self.awkward, evidence: ["PATH": "/a\n/b", "": Self.awkward, "b": ""], at: "2026-11-23T00:00:00Z"),
            Alert(kind: .targetState, code: nil, target: "api", state: "failed", severity: .error, message: "api is failed", at: "t"),
        ]
        for list in [alerts, []] {
            for style in [ReportJSON.Style.pretty, .compact] {
                #expect(ReportJSON.encode(list, style: style) == (try Self.encoderBytes(list, style: style)))
            }
        }
        #expect(try JSONDecoder().decode([Alert].self, from: Data(ReportJSON.encode(alerts, style: .compact))) == alerts)
    }

    /// GET /v1/health: a small free-form document.
    @Test func aJSONValueSameBytesAsJSONEncoder() throws {
        let value: JSONValue = ["status": "ok", "ready": true, "cycles": 3, "summary": .string(Self.awkward), "none": .null,
                                "list": [1, "two", [:], []]]
        for style in [ReportJSON.Style.pretty, .compact] {
            #expect(ReportJSON.encode(value, style: style) == (try Self.encoderBytes(value, style: style)))
        }
    }
}
