import Foundation

/// What glibc's loader prints, parsed for the tests that hold our resolver against it: the
/// `LD_TRACE_LOADED_OBJECTS=1` list (ldd's format) and the `LD_DEBUG=libs` search log.
public enum LoaderOutput {
    public struct Trace {
        /// Loaded objects in link-map order as (first requested name, path), vdso excluded.
        public var loaded: [(name: String, path: String)]
        public var notFound: [String]
    }

    /// One "find library=NAME" block of the search log.
    public struct Search {
        public var name: String
        /// Each step, by the source glibc names ("rpath", "runpath", "LD_LIBRARY_PATH", "ld.so.cache",
        /// "default", else its own words), with the files it tried.
        public var steps: [(source: String, files: [String])]
        /// Every "trying file=" line of the block, in order.
        public var files: [String]
    }

    public static func trace(_ text: String) -> Trace {
        var trace = Trace(loaded: [], notFound: [])
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("linux-vdso.so") || line.isEmpty { continue }
            if let arrow = line.range(of: " => ") {
                let name = String(line[..<arrow.lowerBound])
                let rest = line[arrow.upperBound...]
                if rest == "not found" { trace.notFound.append(name); continue }
                let path = rest.range(of: " (0x").map { String(rest[..<$0.lowerBound]) } ?? String(rest)
                trace.loaded.append((name, path))
            } else {
                let path = line.range(of: " (0x").map { String(line[..<$0.lowerBound]) } ?? line
                trace.loaded.append((path, path))
            }
        }
        return trace
    }

    /// The blocks of an `LD_DEBUG=libs` log ("  12345:\tfind library=libfoo.so [0]; searching", then its
    /// " search path=… (RPATH from file …)" or " search cache=…" steps and their "  trying file=" lines).
    public static func searches(_ debug: String) -> [Search] {
        var blocks: [Search] = []
        for raw in debug.split(separator: "\n") {
            guard let tab = raw.firstIndex(of: "\t") else { continue }
            let line = raw[raw.index(after: tab)...]
            if line.hasPrefix("find library=") {
                blocks.append(Search(name: String(line.dropFirst("find library=".count).prefix { $0 != " " }), steps: [], files: []))
            } else if blocks.isEmpty {
                continue
            } else if line.hasPrefix(" search cache=") {
                blocks[blocks.count - 1].steps.append(("ld.so.cache", []))
            } else if line.hasPrefix(" search path="), let open = line.range(of: "\t\t(") {
                let source = line[open.upperBound...].dropLast()
                let kind = source.hasPrefix("RPATH from file ") ? "rpath" : source.hasPrefix("RUNPATH from file ") ? "runpath"
                    : source == "LD_LIBRARY_PATH" ? "LD_LIBRARY_PATH" : source == "system search path" ? "default" : String(source)
                blocks[blocks.count - 1].steps.append((kind, []))
            } else if line.hasPrefix("  trying file=") {
                let file = String(line.dropFirst("  trying file=".count))
                let b = blocks.count - 1
                blocks[b].files.append(file)
                if !blocks[b].steps.isEmpty { blocks[b].steps[blocks[b].steps.count - 1].files.append(file) }
            }
        }
        return blocks
    }
}
