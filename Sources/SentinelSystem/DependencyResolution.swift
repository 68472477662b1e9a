import Glibc
import SentinelCore

/// `crypto-sentinel resolve`: one ELF file's dependency tree, every file read with libelf through
/// the catalog and resolved by the audit's own LoaderResolver, with the file as the main object (as
/// ldd runs it under ld.so) — but nothing of it is executed.
public enum DependencyResolution {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func resolve(_ path: String, environment: TargetEnvironment, cwd: String,
                               host: LoaderHost = HostLoaderFacts.current()) throws(Failure) -> DependencyTree {
        let fs = ResolvingFileSystem(disk: DiskFileSystem(catalog: ELFCatalog()))
        switch fs.probe(path) {
        case .missing: throw Failure(description: "\(path): no such file")
        case .unusable(let reason): throw Failure(description: "\(path): \(reason)")
        case .object(let file):
            let load = LoaderResolver(host: host, environment: environment, fileSystem: fs, cwd: cwd).loadProcess(main: file, dlopen: [])
            return DependencyTree(main: file, load: load)
        }
    }
}

/// The disk as the loader sees it, plus realpath(3): the main program's $ORIGIN is the folder of its
/// real path (the kernel's /proc/self/exe), not of the symlink it was started through.
struct ResolvingFileSystem: LoaderFileSystem {
    let disk: DiskFileSystem

    func probe(_ path: String) -> LoaderProbe { disk.probe(path) }

    func realPath(_ path: String) -> String? {
        guard let real = realpath(EscapedBytes.cString(path), nil) else { return nil }
        defer { free(real) }
        return EscapedBytes.string(UnsafeRawBufferPointer(start: real, count: strlen(real)))
    }
}
