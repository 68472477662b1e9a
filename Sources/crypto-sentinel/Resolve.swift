import ArgumentParser
import FoundationEssentials
import Glibc
import SentinelCore
import SentinelSystem

struct Resolve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract: "Print one ELF file's dependency tree as the loader would build it (a safe ldd: nothing is executed).",
        discussion: """
        ldd may run the program it is asked about, so it has no place on a bundle nobody vetted, least \
        of all as root. resolve reads FILE and every library it reaches with libelf and applies \
        glibc's search rules, in glibc's order, to every DT_NEEDED entry (not only OpenSSL's):
          1. a name with a slash is a path                 [path]
          2. DT_RPATH of the object, then of its loaders   [rpath of OBJECT]
             (only when the object has no DT_RUNPATH)
          3. the target's LD_LIBRARY_PATH (--env)          [LD_LIBRARY_PATH]
          4. DT_RUNPATH of the object itself               [runpath of OBJECT]
          5. /etc/ld.so.cache (not with -z nodefaultlib)   [ld.so.cache]
          6. the system folders                            [default]
          a name (or SONAME) loaded before is reused       [already-loaded]
          LD_PRELOAD entries load first                    [LD_PRELOAD]
        $ORIGIN, $LIB and $PLATFORM are expanded and glibc-hwcaps subfolders tried first. FILE is the \
        main object, as ldd runs it. A library's own dependencies are listed under the request that \
        loaded it; every other request for it is one line. A name found nowhere is "not found", with \
        every path tried under it. OpenSSL files show their role and version: (libcrypto, OpenSSL 3.0.15).

        Exit status: 0 every dependency found, 1 one or more not found, 2 usage error, FILE \
        unreadable or not ELF.

        Examples:
          crypto-sentinel resolve lib/_ssl.cpython-311-x86_64-linux-gnu.so
          crypto-sentinel resolve bin/product-api --env LD_LIBRARY_PATH=/opt/x/lib
          crypto-sentinel resolve lib/_ssl.cpython-311-x86_64-linux-gnu.so \\
              --env-from-pid $(pidof product-api)
          crypto-sentinel resolve /usr/bin/curl --format json | jq .missing
        """)

    @Argument(help: "The ELF file: a program, an extension module or a library.", completion: .file())
    var file: String

    @OptionGroup var target: TargetEnvironmentOptions

    @Option(help: "Output format: text (a tree, like libtree) or json (one document on stdout).")
    var format: OutputFormat = .text

    func run() throws {
        let environment = try target.environment()
        let tree: DependencyTree
        do {
            tree = try DependencyResolution.resolve(file, environment: environment, cwd: FileManager.default.currentDirectoryPath)
        } catch {
            warn(error.description)
            throw ExitCode(2)
        }
        switch format {
        case .json:
            let doc = tree.json().merging(["schema_version": 1, "tool": "crypto-sentinel", "tool_version": .string(toolVersion),
                                           "command": "resolve", "environment": .object(environment.values.mapValues(JSONValue.string))]) { a, _ in a }
            writeAll(STDOUT_FILENO, ReportJSON.encode(JSONValue.object(doc)) + [0x0a])
        case .text:
            let under = environment.values.isEmpty ? "" : "environment: " + TextRenderer.variables(environment.values) + "\n"
            writeAll(STDOUT_FILENO, Array((under + tree.text()).utf8))
        }
        if !tree.missing.isEmpty { throw ExitCode(1) }
    }
}
