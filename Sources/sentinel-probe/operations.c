/*
 * The named operations of `post --require OP` / `--forbid OP`: each performed for real in the
 * service's default library context (what its code gets without asking), with known-answer data where
 * the result is deterministic (digests, MACs, ciphers, KDFs, Ed25519, key agreement: published test
 * vectors — FIPS 180, RFC 4231-style HMAC, GCM spec cases 2 and 14, RFC 5869, RFC 7748, RFC 8032 — or
 * values computed once from the fixed keys in operation_keys.h), and sign-then-verify where it is not.
 *
 * Each result: "pass" (done, right answer), "refused" (OpenSSL said no: its error strings follow),
 * "wrong" (done, wrong answer), "unavailable" (this libcrypto lacks the API). On OpenSSL 3.4+ the FIPS
 * indicator callback is armed: an operation that a relaxed check let through reports the events.
 */
#define _GNU_SOURCE
#include "probe.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include "operation_keys.h"

#define OPERATION_FUNCTIONS(X) \
    X(EVP_MD_fetch) X(EVP_MD_free) X(EVP_Digest) X(EVP_Q_mac) X(EVP_CIPHER_fetch) X(EVP_CIPHER_free) \
    X(EVP_CIPHER_CTX_new) X(EVP_CIPHER_CTX_free) X(EVP_CIPHER_CTX_set_padding) X(EVP_CIPHER_CTX_ctrl) \
    X(EVP_EncryptInit_ex2) X(EVP_EncryptUpdate) X(EVP_EncryptFinal_ex) X(BIO_new_mem_buf) X(BIO_free) \
    X(PEM_read_bio_PrivateKey_ex) X(EVP_PKEY_free) X(EVP_MD_CTX_new) X(EVP_MD_CTX_free) \
    X(EVP_DigestSignInit_ex) X(EVP_DigestSign) X(EVP_DigestVerifyInit_ex) X(EVP_DigestVerify) \
    X(EVP_PKEY_new_raw_private_key_ex) X(EVP_PKEY_new_raw_public_key_ex) X(EVP_PKEY_CTX_new_from_pkey) \
    X(EVP_PKEY_CTX_free) X(EVP_PKEY_derive_init) X(EVP_PKEY_derive_set_peer) X(EVP_PKEY_derive) \
    X(EVP_KDF_fetch) X(EVP_KDF_free) X(EVP_KDF_CTX_new) X(EVP_KDF_CTX_free) X(EVP_KDF_derive) X(RAND_bytes) \
    X(X509_new) X(X509_free) X(X509_set_version) X(X509_get_serialNumber) X(ASN1_INTEGER_set) \
    X(X509_gmtime_adj) X(X509_getm_notBefore) X(X509_getm_notAfter) X(X509_set_pubkey) \
    X(X509_get_subject_name) X(X509_NAME_add_entry_by_txt) X(X509_set_issuer_name) X(X509_sign) X(X509_verify)
#define OFN(name) static __typeof__(name) *o_##name;
OPERATION_FUNCTIONS(OFN)

/* OpenSSL 3.4's indicator API, absent from older headers: declared here, found with dlsym. */
typedef int (indicator_cb)(const char *type, const char *desc, const OSSL_PARAM params[]);
static void (*o_OSSL_INDICATOR_set_callback)(OSSL_LIB_CTX *, indicator_cb *);

void operations_resolve(void *lib) {
#define OSYM(name) o_##name = (__typeof__(o_##name))dlsym(lib, #name);
    OPERATION_FUNCTIONS(OSYM)
    o_OSSL_INDICATOR_set_callback = (__typeof__(o_OSSL_INDICATOR_set_callback))dlsym(lib, "OSSL_INDICATOR_set_callback");
}

enum { PASS, REFUSED, WRONG, UNAVAILABLE };
static const char *const outcome_names[] = {"pass", "refused", "wrong", "unavailable"};

static const unsigned char MESSAGE[] = "crypto-sentinel known answer";
#define MESSAGE_LEN (sizeof MESSAGE - 1)

static int hex_is(const unsigned char *b, size_t n, const char *want) {
    char hex[257];
    if (n * 2 >= sizeof hex || strlen(want) != n * 2) return 0;
    for (size_t k = 0; k < n; k++) snprintf(hex + 2 * k, 3, "%02x", b[k]);
    return !strcmp(hex, want);
}
static size_t unhex(const char *s, unsigned char *out) {
    size_t n = strlen(s) / 2;
    for (size_t k = 0; k < n; k++) sscanf(s + 2 * k, "%2hhx", &out[k]);
    return n;
}

/* The indicator events of the operation now running (3.4+): returning 1 lets it go on, as a service
 * without a callback would. */
static int indicator_events; static char indicator_text[4][160];
static int on_indicator(const char *type, const char *desc, const OSSL_PARAM params[]) {
    (void)params;
    if (indicator_events < 4) snprintf(indicator_text[indicator_events], sizeof indicator_text[0], "%s: %s", type ? type : "?", desc ? desc : "?");
    indicator_events++;
    return 1;
}

static int digest(const char *alg, const char *want) {
    if (!o_EVP_MD_fetch || !o_EVP_Digest || !o_EVP_MD_free) return UNAVAILABLE;
    EVP_MD *md = o_EVP_MD_fetch(NULL, alg, NULL);
    unsigned char out[64]; unsigned int n = 0;
    int ok = md && o_EVP_Digest("abc", 3, out, &n, md, NULL) == 1;
    if (md) o_EVP_MD_free(md);
    return !ok ? REFUSED : hex_is(out, n, want) ? PASS : WRONG;
}

static int hmac_sha256(void) {
    if (!o_EVP_Q_mac) return UNAVAILABLE;
    unsigned char k[32], out[32]; size_t n = 0;
    for (int i = 0; i < 32; i++) k[i] = (unsigned char)i;
    int ok = o_EVP_Q_mac(NULL, "HMAC", NULL, "SHA2-256", NULL, k, sizeof k, MESSAGE, MESSAGE_LEN, out, sizeof out, &n) != NULL;
    return !ok ? REFUSED : hex_is(out, n, "66a2f342881db7eb850fcacdbce04ac5ad5a83a2495163a217e989ebc583f806") ? PASS : WRONG;
}

/* One 16-byte zero block under an all-zero key and IV; AEAD ciphers append their 16-byte tag. */
static int cipher(const char *alg, int aead, const char *want) {
    if (!o_EVP_CIPHER_fetch || !o_EVP_CIPHER_CTX_new || !o_EVP_EncryptInit_ex2 || !o_EVP_EncryptUpdate ||
        !o_EVP_EncryptFinal_ex || !o_EVP_CIPHER_CTX_ctrl || !o_EVP_CIPHER_CTX_set_padding) return UNAVAILABLE;
    unsigned char k[32] = {0}, iv[16] = {0}, in[16] = {0}, out[64]; int n = 0, m = 0;
    EVP_CIPHER *c = o_EVP_CIPHER_fetch(NULL, alg, NULL);
    EVP_CIPHER_CTX *ctx = c ? o_EVP_CIPHER_CTX_new() : NULL;
    int ok = ctx && o_EVP_EncryptInit_ex2(ctx, c, k, iv, NULL) == 1 && o_EVP_CIPHER_CTX_set_padding(ctx, 0) == 1
          && o_EVP_EncryptUpdate(ctx, out, &n, in, sizeof in) == 1 && o_EVP_EncryptFinal_ex(ctx, out + n, &m) == 1;
    n += m;
    if (ok && aead) { ok = o_EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + n) == 1; n += 16; }
    if (ctx) o_EVP_CIPHER_CTX_free(ctx);
    if (c) o_EVP_CIPHER_free(c);
    return !ok ? REFUSED : hex_is(out, (size_t)n, want) ? PASS : WRONG;
}

static EVP_PKEY *pem_key(const char *pem) {
    BIO *b = o_BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? o_PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, NULL, NULL) : NULL;
    if (b) o_BIO_free(b);
    return k;
}

/* Sign MESSAGE with the key (digest md, NULL for a pure scheme), then verify it. A deterministic
 * scheme is also held to `want` (hex) when given; the message is then `message`. */
static int sign_with(EVP_PKEY *k, const char *md, const unsigned char *message, size_t len, const char *want) {
    if (!o_EVP_MD_CTX_new || !o_EVP_DigestSignInit_ex || !o_EVP_DigestSign || !o_EVP_DigestVerifyInit_ex || !o_EVP_DigestVerify) return UNAVAILABLE;
    if (!k) return REFUSED;
    unsigned char sig[512]; size_t n = sizeof sig;
    EVP_MD_CTX *s = o_EVP_MD_CTX_new(), *v = o_EVP_MD_CTX_new();
    int ok = s && o_EVP_DigestSignInit_ex(s, NULL, md, NULL, NULL, k, NULL) == 1 && o_EVP_DigestSign(s, sig, &n, message, len) == 1;
    int verified = ok && v && o_EVP_DigestVerifyInit_ex(v, NULL, md, NULL, NULL, k, NULL) == 1 && o_EVP_DigestVerify(v, sig, n, message, len) == 1;
    if (s) o_EVP_MD_CTX_free(s);
    if (v) o_EVP_MD_CTX_free(v);
    return !ok ? REFUSED : !verified || (want && !hex_is(sig, n, want)) ? WRONG : PASS;
}
static int sign_pem(const char *pem, const char *md) {
    if (!o_BIO_new_mem_buf || !o_PEM_read_bio_PrivateKey_ex || !o_EVP_PKEY_free) return UNAVAILABLE;
    EVP_PKEY *k = pem_key(pem);
    int r = sign_with(k, md, MESSAGE, MESSAGE_LEN, NULL);
    if (k) o_EVP_PKEY_free(k);
    return r;
}
static int ed25519(void) {
    if (!o_EVP_PKEY_new_raw_private_key_ex || !o_EVP_PKEY_free) return UNAVAILABLE;
    unsigned char sk[32];
    unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", sk);   /* RFC 8032, test 1 */
    EVP_PKEY *k = o_EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, sk, sizeof sk);
    int r = sign_with(k, NULL, (const unsigned char *)"", 0,
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    if (k) o_EVP_PKEY_free(k);
    return r;
}

static int derive(EVP_PKEY *mine, EVP_PKEY *peer, const char *want) {
    if (!mine || !peer) return REFUSED;
    unsigned char s[64]; size_t n = sizeof s;
    EVP_PKEY_CTX *c = o_EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
    int ok = c && o_EVP_PKEY_derive_init(c) == 1 && o_EVP_PKEY_derive_set_peer(c, peer) == 1 && o_EVP_PKEY_derive(c, s, &n) == 1;
    if (c) o_EVP_PKEY_CTX_free(c);
    return !ok ? REFUSED : hex_is(s, n, want) ? PASS : WRONG;
}
static int key_agreement(int x25519) {
    if (!o_EVP_PKEY_CTX_new_from_pkey || !o_EVP_PKEY_derive_init || !o_EVP_PKEY_derive_set_peer || !o_EVP_PKEY_derive ||
        !o_EVP_PKEY_CTX_free || !o_EVP_PKEY_free || !o_EVP_PKEY_new_raw_private_key_ex || !o_EVP_PKEY_new_raw_public_key_ex ||
        !o_BIO_new_mem_buf || !o_PEM_read_bio_PrivateKey_ex) return UNAVAILABLE;
    EVP_PKEY *mine, *peer; const char *want;
    if (x25519) {   /* RFC 7748, section 6.1: Alice's private key, Bob's public key */
        unsigned char a[32], b[32];
        unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a);
        unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", b);
        mine = o_EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, a, 32);
        peer = o_EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, b, 32);
        want = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    } else {
        mine = pem_key(KEY_P256A); peer = pem_key(KEY_P256B);
        want = "167bdcfc9b92038086ed86e8a08933a07cf726aad7c8990613461c304dbd4d48";
    }
    int r = derive(mine, peer, want);
    if (mine) o_EVP_PKEY_free(mine);
    if (peer) o_EVP_PKEY_free(peer);
    return r;
}

static OSSL_PARAM octets(const char *k, const void *v, size_t n) { return (OSSL_PARAM){k, OSSL_PARAM_OCTET_STRING, (void *)v, n, OSSL_PARAM_UNMODIFIED}; }
static OSSL_PARAM utf8(const char *k, const char *v) { return (OSSL_PARAM){k, OSSL_PARAM_UTF8_STRING, (void *)v, strlen(v), OSSL_PARAM_UNMODIFIED}; }
static int kdf(const char *alg, OSSL_PARAM *params, size_t len, const char *want) {
    if (!o_EVP_KDF_fetch || !o_EVP_KDF_CTX_new || !o_EVP_KDF_derive || !o_EVP_KDF_CTX_free || !o_EVP_KDF_free) return UNAVAILABLE;
    unsigned char out[64];
    EVP_KDF *k = o_EVP_KDF_fetch(NULL, alg, NULL);
    EVP_KDF_CTX *c = k ? o_EVP_KDF_CTX_new(k) : NULL;
    int ok = c && len <= sizeof out && o_EVP_KDF_derive(c, out, len, params) == 1;
    if (c) o_EVP_KDF_CTX_free(c);
    if (k) o_EVP_KDF_free(k);
    return !ok ? REFUSED : hex_is(out, len, want) ? PASS : WRONG;
}
static int hkdf_sha256(void) {   /* RFC 5869, test case 1 */
    unsigned char ikm[22], salt[13], info[10];
    memset(ikm, 0x0b, sizeof ikm);
    for (int i = 0; i < 13; i++) salt[i] = (unsigned char)i;
    for (int i = 0; i < 10; i++) info[i] = (unsigned char)(0xf0 + i);
    OSSL_PARAM p[] = {utf8("digest", "SHA2-256"), octets("key", ikm, sizeof ikm), octets("salt", salt, sizeof salt),
                      octets("info", info, sizeof info), OSSL_PARAM_END};
    return kdf("HKDF", p, 42, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}
static int pbkdf2_sha256(void) {   /* parameters above every FIPS lower bound (salt, iterations, length) */
    const char *pass = "passwordPASSWORDpassword", *salt = "saltSALTsaltSALTsaltSALTsaltSALTsalt";
    unsigned int iter = 4096;
    OSSL_PARAM p[] = {utf8("digest", "SHA2-256"), octets("pass", pass, strlen(pass)), octets("salt", salt, strlen(salt)),
                      {"iter", OSSL_PARAM_UNSIGNED_INTEGER, &iter, sizeof iter, OSSL_PARAM_UNMODIFIED}, OSSL_PARAM_END};
    return kdf("PBKDF2", p, 40, "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9");
}
static int tls12_prf(void) {   /* P_SHA256 over secret 00..2f, seed "key expansion" || 00..3f */
    unsigned char secret[48], seed[13 + 64];
    for (int i = 0; i < 48; i++) secret[i] = (unsigned char)i;
    memcpy(seed, "key expansion", 13);
    for (int i = 0; i < 64; i++) seed[13 + i] = (unsigned char)i;
    OSSL_PARAM p[] = {utf8("digest", "SHA2-256"), octets("secret", secret, sizeof secret), octets("seed", seed, sizeof seed), OSSL_PARAM_END};
    return kdf("TLS1-PRF", p, 48, "4ac38c4d46e5ff44538c63cd6644009fd1aa1b19a81b76452615cb3f94ce61ea9f2477bd23b09dfa855a5d720e91e4b2");
}

/* A self-signed certificate for the fixed RSA-2048 key, signed with md, then verified. */
static int x509_sign(const char *md_name) {
    if (!o_X509_new || !o_X509_free || !o_X509_set_version || !o_X509_get_serialNumber || !o_ASN1_INTEGER_set ||
        !o_X509_gmtime_adj || !o_X509_getm_notBefore || !o_X509_getm_notAfter || !o_X509_set_pubkey ||
        !o_X509_get_subject_name || !o_X509_NAME_add_entry_by_txt || !o_X509_set_issuer_name || !o_X509_sign ||
        !o_X509_verify || !o_EVP_MD_fetch || !o_EVP_MD_free || !o_BIO_new_mem_buf || !o_PEM_read_bio_PrivateKey_ex ||
        !o_EVP_PKEY_free) return UNAVAILABLE;
    EVP_PKEY *k = pem_key(KEY_RSA2048);
    EVP_MD *md = o_EVP_MD_fetch(NULL, md_name, NULL);
    X509 *x = o_X509_new();
    int built = k && md && x && o_X509_set_version(x, X509_VERSION_3) == 1 && o_ASN1_INTEGER_set(o_X509_get_serialNumber(x), 1) == 1
        && o_X509_gmtime_adj(o_X509_getm_notBefore(x), 0) && o_X509_gmtime_adj(o_X509_getm_notAfter(x), 86400)
        && o_X509_set_pubkey(x, k) == 1
        && o_X509_NAME_add_entry_by_txt(o_X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"crypto-sentinel", -1, -1, 0) == 1
        && o_X509_set_issuer_name(x, o_X509_get_subject_name(x)) == 1;
    int signed_ = built && o_X509_sign(x, k, md) > 0;
    int verified = signed_ && o_X509_verify(x, k) == 1;
    if (x) o_X509_free(x);
    if (md) o_EVP_MD_free(md);
    if (k) o_EVP_PKEY_free(k);
    return !signed_ ? REFUSED : verified ? PASS : WRONG;
}

static int drbg(void) {
    if (!o_RAND_bytes) return UNAVAILABLE;
    unsigned char b[32];
    return o_RAND_bytes(b, sizeof b) == 1 ? PASS : REFUSED;
}

/* The names are the public contract of --require/--forbid (README, post --list-operations). */
static int perform(const char *op) {
    if (!strcmp(op, "sha1")) return digest("SHA1", "a9993e364706816aba3e25717850c26c9cd0d89d");
    if (!strcmp(op, "sha256")) return digest("SHA2-256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    if (!strcmp(op, "sha512")) return digest("SHA2-512", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
    if (!strcmp(op, "md5")) return digest("MD5", "900150983cd24fb0d6963f7d28e17f72");
    if (!strcmp(op, "hmac-sha256")) return hmac_sha256();
    if (!strcmp(op, "aes-128-gcm")) return cipher("AES-128-GCM", 1, "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf");
    if (!strcmp(op, "aes-256-gcm")) return cipher("AES-256-GCM", 1, "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
    if (!strcmp(op, "aes-256-cbc")) return cipher("AES-256-CBC", 0, "dc95c078a2408989ad48a21492842087");
    if (!strcmp(op, "chacha20-poly1305")) return cipher("ChaCha20-Poly1305", 1, "9f07e7be5551387a98ba977c732d080dc34a88047320f52aa2c6683ef8084d2f");
    if (!strcmp(op, "rsa2048-sign-sha256")) return sign_pem(KEY_RSA2048, "SHA2-256");
    if (!strcmp(op, "rsa2048-sign-sha1")) return sign_pem(KEY_RSA2048, "SHA1");
    if (!strcmp(op, "rsa1024-sign-sha256")) return sign_pem(KEY_RSA1024, "SHA2-256");
    if (!strcmp(op, "ecdsa-p256-sign-sha256")) return sign_pem(KEY_P256A, "SHA2-256");
    if (!strcmp(op, "ed25519-sign")) return ed25519();
    if (!strcmp(op, "x25519-derive")) return key_agreement(1);
    if (!strcmp(op, "ecdh-p256-derive")) return key_agreement(0);
    if (!strcmp(op, "hkdf-sha256")) return hkdf_sha256();
    if (!strcmp(op, "pbkdf2-sha256")) return pbkdf2_sha256();
    if (!strcmp(op, "x509-sign-sha1")) return x509_sign("SHA1");
    if (!strcmp(op, "x509-sign-sha256")) return x509_sign("SHA2-256");
    if (!strcmp(op, "tls1.2-prf")) return tls12_prf();
    if (!strcmp(op, "drbg")) return drbg();
    return -1;
}

void operations_run(const char *list) {
    puts_("{"); kstr("name", "operations"); kstr("status", "info");
    int indicator = o_OSSL_INDICATOR_set_callback != NULL;
    if (indicator) o_OSSL_INDICATOR_set_callback(NULL, on_indicator);
    kbool("indicator_api", indicator);
    key("results"); puts_("[");
    char names[1024]; snprintf(names, sizeof names, "%s", list);
    char *save = NULL;
    for (char *op = strtok_r(names, ",", &save); op; op = strtok_r(NULL, ",", &save)) {
        stage(op);
        double t = now_ms();
        indicator_events = 0;
        int r = perform(op);
        puts_("{"); kstr("op", op);
        kstr("status", r < 0 ? "unknown" : outcome_names[r]);
        if (indicator) {
            kint("indicator_events", indicator_events);
            key("indicator"); puts_("[");
            for (int k = 0; k < indicator_events && k < 4; k++) { jstr(indicator_text[k]); puts_(","); }
            close_("]");
        }
        drain_errors("errors");
        kint("us", (long long)((now_ms() - t) * 1000));
        close_("}");
    }
    close_("]");
    close_("}");
}
