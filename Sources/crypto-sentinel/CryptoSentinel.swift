import ArgumentParser
import FoundationEssentials
import Glibc
import SentinelCore
import SentinelSystem

let toolVersion = "0.1.0"

@main
struct CryptoSentinel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crypto-sentinel",
        abstract: "Keeps frozen Python services on exactly one coherent, FIPS-enforcing OpenSSL.",
        discussion: """
        Audits bundle trees (ELF linkage, no code executed), live processes (/proc/<pid>/maps), and reruns \
        the FIPS POST under a service's exact environment. Exit status: 0 nothing at or above --fail-on, \
        1 findings at or above it, 2 usage, configuration or I/O error.
        """,
        version: toolVersion,
        // Each subcommand spells out its commandName: ArgumentParser's default derives it with
        // String(describing:), which scans every protocol conformance of this (static) binary, for
        // every subcommand on every start (~0.7 ms of each run).
        subcommands: [Scan.self, Resolve.self, Repair.self, Inspect.self, Post.self, Daemon.self, Reload.self, Status.self]
    )

    /// ArgumentParser exits 64 on usage errors; the documented contract is 2 (README, Exit status).
    static func main() {
        do {
            if let post = PostRequest(simpleCommandLine: CommandLine.arguments) {
                try post.run()
                return
            }
            if let scan = ScanRequest(simpleCommandLine: CommandLine.arguments) {
                try scan.run()
                return
            }
            var command = try parseAsRoot()
            try command.run()
        } catch let exit as ExitCode {
            Glibc.exit(exit.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success { self.exit(withError: error) }  // --help, --version
            writeAll(STDERR_FILENO, Array((fullMessage(for: error) + "\n").utf8))
            Glibc.exit(code == .validationFailure || code.rawValue == 64 ? 2 : (code.rawValue == 1 ? 2 : code.rawValue))
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

extension Severity: ExpressibleByArgument {}

/// Options every reporting subcommand shares.
struct ReportOptions: ParsableArguments {
    @Option(help: "Output format: text (for people) or json (one document on stdout).")
    var format: OutputFormat = .text

    @Option(name: .customLong("fail-on"), help: "Exit 1 when any finding is at or above this severity (info, warning, error, critical).")
    var failOn: Severity = .error
}

/// A subcommand's command line read without ArgumentParser, whose parse costs a static Swift binary
/// ~2.5 ms of runtime metadata and conformance lookups at every start (`post`: half of a non-FIPS
/// POST; `scan`: 18M instructions before the audit starts). Only the simple shape: positionals,
/// known `--flag`s and known `--option value` pairs (a value never starting with `-`), each once
/// unless repeatable, and --format / --fail-on with valid values. nil for anything else (`--opt=value`,
/// --help, an unknown option, a bad value), which ArgumentParser then parses and explains as always.
struct SimpleCommandLine {
    var positionals: [String] = []
    var flags: Set<String> = []
    /// The other `--option value` pairs, in command-line order.
    var options: [(name: String, value: String)] = []
    var format: OutputFormat = .text
    var failOn: Severity = .error

    init?(_ arguments: [String], subcommand: String, flags knownFlags: Set<String>, options knownOptions: Set<String>,
          repeatable: Set<String> = []) {
        guard arguments.count >= 2, arguments[1] == subcommand else { return nil }
        var seen = Set<String>()
        var i = 2
        while i < arguments.count {
            let argument = arguments[i]
            guard argument.hasPrefix("-") else {
                positionals.append(argument)
                i += 1
                continue
            }
            guard repeatable.contains(argument) || seen.insert(argument).inserted else { return nil }
            if knownFlags.contains(argument) {
                flags.insert(argument)
                i += 1
                continue
            }
            guard knownOptions.contains(argument) || argument == "--format" || argument == "--fail-on",
                  i + 1 < arguments.count, !arguments[i + 1].hasPrefix("-") else { return nil }
            let value = arguments[i + 1]
            switch argument {
            case "--format":
                guard let f = OutputFormat(rawValue: value) else { return nil }
                format = f
            case "--fail-on":
                guard let s = Severity(rawValue: value) else { return nil }
                failOn = s
            default:
                options.append((argument, value))
            }
            i += 2
        }
    }
}

/// Prints the report and returns the documented exit status (0, or 1 at or above --fail-on).
func emit(_ report: Report, options: ReportOptions) -> Int32 {
    emit(report, format: options.format, failOn: options.failOn)
}

func emit(_ report: Report, format: OutputFormat, failOn: Severity) -> Int32 {
    for t in report.targets { for w in t.warnings { warn("\(t.name): \(w)") } }
    switch format {
    case .json:
        // JSONEncoder's exact bytes, without its cost (16 MB of evidence on a 20,000-file bundle).
        var bytes = ReportJSON.encode(report)
        bytes.append(0x0a)
        writeAll(STDOUT_FILENO, bytes)
    case .text:
        writeAll(STDOUT_FILENO, Array(TextRenderer.render(report).utf8))
    }
    return report.exitStatus(failOn: failOn)
}

/// Writes every byte (no copy into Data: the JSON of a large bundle is 16 MB); a closed pipe ends it.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
        var done = 0
        while done < buffer.count {
            let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }
}

func warn(_ line: String) {
    // One line whatever the names in it hold.
    writeAll(STDERR_FILENO, Array("crypto-sentinel: \(TextRenderer.shown(line))\n".utf8))
}
