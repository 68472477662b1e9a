/// How a Python service was packaged, and what its launcher changes at run time before any
/// OpenSSL consumer loads: the audit judges the tree under that environment, as the process runs.
public enum Freezer: String, Sendable, Codable, CaseIterable {
    case cxFreeze = "cx_freeze"
    case pyinstallerOnedir = "pyinstaller-onedir"
    case pyinstallerOnefile = "pyinstaller-onefile"
    case nuitkaStandalone = "nuitka-standalone"
    case venv

    public var title: String {
        switch self {
        case .cxFreeze: "cx_Freeze"
        case .pyinstallerOnedir: "PyInstaller onedir"
        case .pyinstallerOnefile: "PyInstaller onefile"
        case .nuitkaStandalone: "Nuitka standalone"
        case .venv: "virtual environment"
        }
    }
}

/// A bundle's freezer, its launcher, and the variables the launcher sets.
public struct BundleLayout: Sendable, Hashable {
    public var freezer: Freezer?
    /// The launcher program's path (absolute), when the freezer has one.
    public var launcher: String?
    /// What the launcher sets before the app's code runs (PyInstaller's bootloader: LD_LIBRARY_PATH;
    /// cx_Freeze's ssl hook: SSL_CERT_FILE).
    public var launcherEnvironment: [String: String] = [:]
    /// Folders outside the tree whose files the process loads (a venv's interpreter's lib-dynload).
    public var outside: [String] = []

    public init(freezer: Freezer? = nil, launcher: String? = nil, launcherEnvironment: [String: String] = [:],
                outside: [String] = []) {
        self.freezer = freezer; self.launcher = launcher; self.launcherEnvironment = launcherEnvironment; self.outside = outside
    }

    /// The PyInstaller facts of one executable of the tree (from its archive's table of contents).
    public struct PyInstallerProgram: Sendable, Hashable {
        public var path: String
        public var onefile: Bool
        /// onedir's `pyi-contents-directory` option (nil: the executable's own folder).
        public var contentsDirectory: String?
        public init(path: String, onefile: Bool, contentsDirectory: String?) {
            self.path = path; self.onefile = onefile; self.contentsDirectory = contentsDirectory
        }
    }

    /// Where a onefile executable's members appear in the model: below `<executable>!`, the stand-in
    /// for the `/tmp/_MEI…` folder its bootloader extracts them to.
    public static func extractionFolder(of executable: String) -> String { executable + "!" }

    /// The `/tmp/_MEI…` folder a onefile bootloader extracted its archive to (its temporary folder's
    /// name always starts with `_MEI`, pyi_utils.c), when `path` lies in one.
    public static func extractedFolder(containing path: String) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard let i = parts.dropLast().firstIndex(where: { $0.hasPrefix("_MEI") }) else { return nil }
        return parts[...i].joined(separator: "/")
    }

    /// The layout of `inventory`. `pyinstaller`: the tree's PyInstaller executables, first by path;
    /// `pyvenvConfig`: the text of ROOT/pyvenv.cfg when there is one.
    public static func detect(inventory: BundleInventory, pyinstaller: [PyInstallerProgram], pyvenvConfig: String?) -> BundleLayout {
        if let program = pyinstaller.first {
            // pyi_main.c: the bootloader sets LD_LIBRARY_PATH to the application's home folder (onefile:
            // the extraction folder; onedir: the contents folder beside the executable), then runs the app.
            let home = program.onefile ? extractionFolder(of: program.path)
                : program.contentsDirectory.map { join(dirOf(program.path), $0) } ?? dirOf(program.path)
            return BundleLayout(freezer: program.onefile ? .pyinstallerOnefile : .pyinstallerOnedir, launcher: program.path,
                                launcherEnvironment: ["LD_LIBRARY_PATH": home])
        }
        if let text = pyvenvConfig {
            return venv(config: text, root: inventory.root, inventory: inventory)
        }
        let others = Set(inventory.otherFiles)
        if others.contains("lib/library.zip") {
            // cx_Freeze's ssl hook points SSL_CERT_FILE at the CA bundle it ships, inside the process
            // at start-up (so /proc/<pid>/environ never shows it).
            let ca = "share/certs.pem"
            return BundleLayout(freezer: .cxFreeze, launcher: mainProgram(inventory).map(\.file.path),
                                launcherEnvironment: others.contains(ca) ? ["SSL_CERT_FILE": join(inventory.root, ca)] : [:])
        }
        // Nuitka standalone: a program in the top folder with CPython linked in that finds the extension
        // modules and libraries copied beside it through RPATH $ORIGIN; its launcher sets nothing.
        if let program = inventory.elfFiles.first(where: {
            let o = $0.file.object
            return o.isMainProgram && o.embedsPython && !$0.relativePath.contains("/")
                && (o.effectiveRPath ?? o.runpath ?? "").split(separator: ":").contains("$ORIGIN")
        }) {
            return BundleLayout(freezer: .nuitkaStandalone, launcher: program.file.path)
        }
        return BundleLayout()
    }

    static func venv(config: String, root: String, inventory: BundleInventory) -> BundleLayout {
        var values: [String: String] = [:]
        for line in config.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            values[parts[0].trimmed] = parts[1].trimmed
        }
        // The interpreter's own extension modules (_ssl, _hashlib) sit beside its standard library:
        // <prefix>/lib/pythonX.Y/lib-dynload, with <prefix> the folder above `home` (its bin/).
        var outside: [String] = []
        if let home = values["home"], let version = values["version"] ?? values["version_info"] {
            let majorMinor = version.split(separator: ".").prefix(2).joined(separator: ".")
            outside.append(join(dirOf(home), "lib/python\(majorMinor)/lib-dynload"))
        }
        return BundleLayout(freezer: .venv, launcher: values["executable"], outside: outside)
    }

    static func mainProgram(_ inventory: BundleInventory) -> BundleFile? {
        inventory.elfFiles.filter { $0.file.object.isMainProgram && !$0.relativePath.contains("/") }
            .min { $0.relativePath < $1.relativePath }
    }

    /// The environment the process runs with: the launcher's variables, except those `given` sets
    /// (`--env`, `--env-from-pid`: a running process's environ already shows what its launcher set).
    public func environment(given: TargetEnvironment) -> TargetEnvironment {
        var values = launcherEnvironment
        for (key, value) in given.values { values[key] = value }
        return TargetEnvironment(values, secureExecution: given.secureExecution)
    }

    /// The report's `bundle` object.
    public func json(given: TargetEnvironment) -> JSONValue {
        .object([
            "freezer": JSONValue(freezer?.rawValue),
            "launcher": JSONValue(launcher),
            "launcher_environment": .object(launcherEnvironment.mapValues { .string($0) }),
            "overridden_by_env": JSONValue(launcherEnvironment.keys.filter { given[$0] != nil }.sorted()),
            "outside": JSONValue(outside),
        ])
    }
}

extension StringProtocol {
    /// Blanks (space, tab, a CRLF file's CR) trimmed at both ends; no Foundation in the core.
    var trimmed: String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        return String(String(drop(while: blank).reversed()).drop(while: blank).reversed())
    }
}
