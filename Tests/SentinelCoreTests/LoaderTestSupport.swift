import Foundation
import Glibc
import SentinelCore
import SentinelSystem
import SentinelTestSupport

/// Build-once fixtures for the loader tests (a static let is a thread-safe once per process; the
/// scripts take a flock so concurrent test processes build each tree once).
enum LoaderFixtures {
    static let cacheRoot = FixtureScripts.root

    /// scripts/fixtures/elf-trees.sh output.
    static func elf() throws -> String { try FixtureScripts.elfTrees() }
    /// scripts/fixtures/loader-rules.sh output: libtree's test cases, one folder per loader rule.
    static func rules() throws -> String {
        let out = cacheRoot + "/loader-rules"
        try FixtureScripts.build("loader-rules.sh", out: out)
        return out
    }
    /// Extra trees and the dlopen driver (see `extraScript`).
    static func extra() throws -> String { try extraResult.get() }

    private static let extraResult = Result<String, any Error> {
        let out = cacheRoot + "/loader-extra"
        // FNV-1a of the script: a stamp stable across processes.
        let stamp = extraScript.utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
        let run = try Shell.run(["/bin/bash", "-c", extraScript, "extra", out, String(stamp, radix: 16)])
        guard run.status == 0 else { throw LoaderTestError("extra fixtures failed: \(run.stderr)\(run.stdout)") }
        return out
    }

    /// Cases elf-trees.sh does not cover, plus `driver`, which dlopens each argument (RTLD_NOW) and
    /// prints every loaded object's l_name (dl_iterate_phdr) or "ERROR <dlerror>".
    static let extraScript = #"""
    set -euo pipefail
    OUT=$1; STAMP="$OUT/.stamp-$2"
    [ -e "$STAMP" ] && exit 0
    mkdir -p "$(dirname "$OUT")"
    exec 9>"$OUT.lock"; flock 9
    [ -e "$STAMP" ] && exit 0
    rm -rf "$OUT"; mkdir -p "$OUT"; cd "$OUT"
    printf 'int plain_entry(void) { return 42; }\n' > plain.c
    printf 'int main(void) { return 0; }\n' > main.c
    cat > driver.c <<'EOF'
    #define _GNU_SOURCE
    #include <dlfcn.h>
    #include <link.h>
    #include <stdio.h>
    static int show(struct dl_phdr_info *info, size_t size, void *data) { printf("%s\n", info->dlpi_name); return 0; }
    int main(int argc, char **argv) {
        for (int i = 1; i < argc; i++)
            if (!dlopen(argv[i], RTLD_NOW | RTLD_GLOBAL)) printf("ERROR %s\n", dlerror());
        dl_iterate_phdr(show, NULL);
        return 0;
    }
    EOF
    gcc -O1 -o driver driver.c -ldl
    so() { local name=$1 out=$2; shift 2; mkdir -p "$(dirname "$out")"
           gcc -shared -fPIC -O1 -o "$out" plain.c -Wl,-soname,"$name" -Wl,--no-as-needed "$@" 2>/dev/null; }
    mod() { local out=$1; shift; mkdir -p "$(dirname "$out")"; gcc -shared -fPIC -O1 -o "$out" plain.c -Wl,--no-as-needed "$@" 2>/dev/null; }
    exe() { local out=$1; shift; mkdir -p "$(dirname "$out")"; gcc -O1 -o "$out" main.c -Wl,--no-as-needed "$@" 2>/dev/null; }
    RUNPATH=-Wl,--enable-new-dtags; RPATH=-Wl,--disable-new-dtags
    retag() { python3 - "$1" <<'PY'
    import struct, sys
    p = sys.argv[1]; data = bytearray(open(p, 'rb').read())
    e_shoff, = struct.unpack_from('<Q', data, 0x28); e_shentsize, e_shnum = struct.unpack_from('<HH', data, 0x3a)
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        if struct.unpack_from('<I', data, off + 4)[0] != 6: continue
        sh_offset, sh_size = struct.unpack_from('<QQ', data, off + 0x18)
        for j in range(sh_offset, sh_offset + sh_size, 16):
            if struct.unpack_from('<q', data, j)[0] == 0x7ffffffd:
                struct.pack_into('<q', data, j, 29)
    open(p, 'wb').write(data)
    PY
    }

    # grandchild: app (RPATH r) -> libgboth (RPATH ../x dropped for RUNPATH ../m) -> libgmid -> libgleaf (only in x).
    # glibc: not found (libgboth contributes no RPATH to anyone); libtree inherits libgboth's RPATH.
    so libgleaf.so gb/x/libgleaf.so
    so libgmid.so gb/m/libgmid.so -Lgb/x -l:libgleaf.so
    so libgboth.so gb/r/libgboth.so -Lgb/m -l:libgmid.so $RPATH -Wl,-rpath,'$ORIGIN/../x' -Wl,--auxiliary,'$ORIGIN/../m'
    retag gb/r/libgboth.so
    exe gb/app -Lgb/r -l:libgboth.so $RPATH -Wl,-rpath,'$ORIGIN/r'

    # through-runpath: app (RPATH r) -> libx (RUNPATH ../m) -> liby (no paths) -> libz (only in r): found through
    # the executable's RPATH, since the chain walks on past the object with RUNPATH.
    so libz.so tr/r/libz.so
    so liby.so tr/m/liby.so -Ltr/r -l:libz.so
    so libx.so tr/r/libx.so -Ltr/m -l:liby.so $RUNPATH -Wl,-rpath,'$ORIGIN/../m'
    exe tr/app -Ltr/r -l:libx.so $RPATH -Wl,-rpath,'$ORIGIN/r'

    # legacy: glibc < 2.37 tries the legacy hwcaps subfolder x86_64/ before the folder itself.
    so liblegacy.so legacy/lib/liblegacy.so
    so liblegacy.so legacy/lib/x86_64/liblegacy.so
    mod legacy/lib/user.so -Llegacy/lib -l:liblegacy.so $RUNPATH -Wl,-rpath,'$ORIGIN'

    # skip: a copy for another machine comes first (glibc skips it); a truncated copy comes first (glibc stops).
    so libwm.so skip/good/libwm.so
    mkdir -p skip/bad && cp skip/good/libwm.so skip/bad/libwm.so
    printf '\267\000' | dd of=skip/bad/libwm.so bs=1 seek=18 conv=notrunc status=none
    mod skip/machine.so -Lskip/good -l:libwm.so $RUNPATH -Wl,-rpath,'$ORIGIN/bad:$ORIGIN/good'
    so libcut.so skip/good/libcut.so
    mkdir -p skip/cut && head -c 100 skip/good/libcut.so > skip/cut/libcut.so
    mod skip/corrupt.so -Lskip/good -l:libcut.so $RUNPATH -Wl,-rpath,'$ORIGIN/cut:$ORIGIN/good'

    touch "$STAMP"
    """#
}

struct LoaderTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A real-disk LoaderFileSystem for tests: stat for identity, ELFFileReader for the model.
final class TestFileSystem: LoaderFileSystem {
    private(set) var probeCount = 0

    func probe(_ path: String) -> LoaderProbe {
        probeCount += 1
        var st = stat()
        guard stat(path, &st) == 0 else {
            return errno == ENOENT || errno == ENOTDIR ? .missing : .unusable(reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .unusable(reason: "not a regular file") }
        do {
            guard let object = try ELFFileReader.read(path: path) else { return .unusable(reason: "not an ELF file") }
            return .object(LoadedFile(path: path, identity: FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)),
                                      object: object))
        } catch {
            return .unusable(reason: "\(error)")
        }
    }

    func realPath(_ path: String) -> String? {
        guard let resolved = Glibc.realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    func directoryEntries(_ path: String) -> Set<String>? {
        guard let dir = opendir(path) else { return errno == ENOENT || errno == ENOTDIR ? [] : nil }
        defer { closedir(dir) }
        var names: Set<String> = []
        while let entry = readdir(dir) {
            let name = String(cString: directoryEntryName(entry))
            if name != "." && name != ".." { names.insert(name) }
        }
        return names
    }

    func load(_ path: String) throws -> LoadedFile {
        guard case .object(let file) = probe(path) else { throw LoaderTestError("cannot load \(path)") }
        return file
    }

    func identity(_ path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}

enum Shell {
    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// Runs a command with exactly `environment` (a clean environment unless given).
    static func run(_ arguments: [String], environment: [String: String] = ["PATH": "/usr/bin:/bin"],
                    cwd: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.environment = environment
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        // stderr goes to a file so neither stream can fill a pipe and stall the child.
        var template = Array("/tmp/loader-test-stderr-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw LoaderTestError("mkstemp failed") }
        let errPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { close(fd); unlink(errPath) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        // Not FileManager.contents(atPath:): swift-foundation leaks a 4 KiB buffer per empty file read
        // that way (LeakSanitizer found it here; String(contentsOfFile:) and Data(contentsOf:) too).
        let errData = FileHandle(forReadingAtPath: errPath)?.readDataToEndOfFile() ?? Data()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}

/// The real loader's answers, taken by running it on our own gcc-built fixtures.
enum GroundTruth {
    typealias Trace = LoaderOutput.Trace

    static let rtld = "/lib64/ld-linux-x86-64.so.2"

    /// `LD_TRACE_LOADED_OBJECTS=1`: through the kernel for an executable, through ld.so for a DSO.
    static func trace(_ path: String, executable: Bool, environment: [String: String] = [:], cwd: String? = nil) throws -> Trace {
        var env = ["PATH": "/usr/bin:/bin", "LD_TRACE_LOADED_OBJECTS": "1"]
        env.merge(environment) { $1 }
        let run = try Shell.run(executable ? [path] : [rtld, path], environment: env, cwd: cwd)
        guard run.status == 0 else { throw LoaderTestError("trace of \(path) failed: \(run.stderr)") }
        return LoaderOutput.trace(run.stdout)
    }

    /// The dlopen driver: l_names in link-map order (main and vdso excluded), and dlerror lines.
    static func dlopen(_ modules: [String], environment: [String: String] = [:], debug: Bool = false, cwd: String? = nil)
        throws -> (loaded: [String], errors: [String], debug: String) {
        let driver = try LoaderFixtures.extra() + "/driver"
        var env = ["PATH": "/usr/bin:/bin"]
        env.merge(environment) { $1 }
        if debug { env["LD_DEBUG"] = "libs" }
        let run = try Shell.run([driver] + modules, environment: env, cwd: cwd)
        var loaded: [String] = [], errors: [String] = []
        for line in run.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("ERROR ") { errors.append(String(line.dropFirst(6))) }
            else if !line.isEmpty, !line.hasPrefix("linux-vdso") { loaded.append(String(line)) }
        }
        return (loaded, errors, run.stderr)
    }

    /// LD_DEBUG=libs: the "trying file=" lines of each "find library=NAME" block, in order.
    static func tried(in debug: String) -> [(name: String, files: [String])] {
        LoaderOutput.searches(debug).map { ($0.name, $0.files) }
    }
}

extension ProcessLoad {
    /// (first requested name, path) of every object but the main program.
    func loadedPairs(excludingMain main: LoadedFile?) -> [(name: String, path: String)] {
        objects.filter { main == nil || $0.file.path != main!.path }.map { ($0.requestedAs.first ?? "", $0.file.path) }
    }

    var missingNames: [String] {
        edges.compactMap { if case .missing = $0.result { return $0.name } else { return nil } }
    }

    func edge(_ consumerSuffix: String, _ name: String) -> LoaderEdge? {
        edges.first { $0.consumer.hasSuffix(consumerSuffix) && $0.name == name }
    }
}

extension EdgeResult {
    var foundPath: String? { if case .found(let file, _, _) = self { return file.path } else { return nil } }
    var via: SearchSource? { if case .found(_, let via, _) = self { return via } else { return nil } }
    var owner: String? { if case .found(_, _, let owner) = self { return owner } else { return nil } }
    var tried: [String]? { if case .missing(let tried) = self { return tried } else { return nil } }
}

/// `needle` appears in `haystack` in order (not necessarily adjacent).
func isSubsequence(_ needle: [String], of haystack: [String]) -> Bool {
    var i = haystack.startIndex
    for item in needle {
        guard let found = haystack[i...].firstIndex(of: item) else { return false }
        i = haystack.index(after: found)
    }
    return true
}
