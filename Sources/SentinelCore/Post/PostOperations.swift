/// The named operations of `post --require OP` / `--forbid OP` and the daemon's `require:` / `forbid:`:
/// a public contract (names never change meaning). The probe performs each (sentinel-probe's
/// operations.c) in the service's default library context, with known-answer data.
public enum PostOperations {
    public static let all: [(name: String, what: String)] = [
        ("sha1", "SHA-1 digest of \"abc\" (known answer)"),
        ("sha256", "SHA-256 digest of \"abc\" (known answer)"),
        ("sha512", "SHA-512 digest of \"abc\" (known answer)"),
        ("md5", "MD5 digest of \"abc\" (known answer)"),
        ("hmac-sha256", "HMAC-SHA256 with a 256-bit key (known answer)"),
        ("aes-128-gcm", "AES-128-GCM encryption, tag included (GCM spec test case 2)"),
        ("aes-256-gcm", "AES-256-GCM encryption, tag included (GCM spec test case 14)"),
        ("aes-256-cbc", "AES-256-CBC encryption of one block (known answer)"),
        ("chacha20-poly1305", "ChaCha20-Poly1305 encryption, tag included (known answer)"),
        ("rsa2048-sign-sha256", "RSA-2048 PKCS#1 v1.5 signature with SHA-256, then verified"),
        ("rsa2048-sign-sha1", "RSA-2048 PKCS#1 v1.5 signature with SHA-1, then verified"),
        ("rsa1024-sign-sha256", "RSA-1024 PKCS#1 v1.5 signature with SHA-256, then verified"),
        ("ecdsa-p256-sign-sha256", "ECDSA P-256 signature with SHA-256, then verified"),
        ("ed25519-sign", "Ed25519 signature (RFC 8032 test 1)"),
        ("x25519-derive", "X25519 key agreement (RFC 7748 section 6.1)"),
        ("ecdh-p256-derive", "ECDH P-256 key agreement (known answer)"),
        ("hkdf-sha256", "HKDF-SHA256 (RFC 5869 test case 1)"),
        ("pbkdf2-sha256", "PBKDF2-HMAC-SHA256, 4096 iterations, 36-byte salt (known answer)"),
        ("x509-sign-sha1", "a self-signed X.509 certificate signed with SHA-1 (RSA-2048), then verified"),
        ("x509-sign-sha256", "a self-signed X.509 certificate signed with SHA-256 (RSA-2048), then verified"),
        ("tls1.2-prf", "the TLS 1.2 PRF with SHA-256 (known answer)"),
        ("drbg", "32 bytes from the default DRBG (RAND_bytes)"),
    ]

    public static let names: Set<String> = Set(all.map(\.name))

    /// The names that are not operations, in the order given.
    public static func unknown(_ requested: [String]) -> [String] {
        requested.filter { !names.contains($0) }
    }

    /// `post --list-operations`: one line each.
    public static var listing: String {
        let width = all.map(\.name.count).max() ?? 0
        return all.map { $0.name + String(repeating: " ", count: width + 2 - $0.name.count) + $0.what }.joined(separator: "\n")
    }
}
