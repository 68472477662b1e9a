import Foundation
import Glibc

/// The sanitizer runtime's options of this test process, for children that run the package's own
/// (then instrumented) binaries with an explicit environment: under the README's sanitizer commands
/// the suppressions, the report log and the leak settings must reach a spawned daemon too, or its
/// reports go unread and its exit status is the sanitizer's. Empty in a normal run.
public enum Sanitizers {
    public static let optionNames = ["ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"]

    /// The options set here, plus SENTINEL_PROBE (the sanitizer commands point it at a probe built
    /// without sanitizers: the probe is what a POST test examines).
    public static let environment: [String: String] = ProcessInfo.processInfo.environment.filter {
        optionNames.contains($0.key) || $0.key == "SENTINEL_PROBE"
    }

    /// Whether this build is instrumented (the test process and every binary built with it): the
    /// runtimes export their entry points (dlsym with RTLD_DEFAULT).
    public static let thread = dlsym(nil, "__tsan_init") != nil
    public static let address = dlsym(nil, "__asan_init") != nil

    /// The factor a latency bound of the product gets under a sanitizer: ThreadSanitizer runs the
    /// daemon several times slower (the bound measures the instrumentation, not the daemon, there).
    public static let timeScale: Double = thread ? 5 : address ? 2 : 1
}
