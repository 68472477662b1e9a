/*
 * sentinel-probe: the native POST helper of crypto-sentinel.
 *
 * Runs in a fresh child under the service's exact environment (crypto-sentinel spawns it). It links
 * only libc/libdl: OpenSSL's headers give types, constants and prototypes (through __typeof__), and
 * every function is resolved with dlsym() from exactly one libcrypto, dlopen()ed RTLD_NOW|RTLD_LOCAL.
 * It prints one JSON document on stdout and progress ("stage NAME") on stderr, so a crash or hang
 * can be pinned to a step.
 *
 *   sentinel-probe [--uid N --gid N] [--pid N [--start-time T] [--mapped RANGE] | --cwd DIR] [--env-stdin] [--ops A,B] LIBCRYPTO
 *                                                              the POST (--mapped: the file PID maps at RANGE;
 *                                                              --ops: the named operations, operations.c)
 *   sentinel-probe --exec [the same options] -- PROG ARGS...   a program, the same way
 *
 * With --pid the child becomes that process as far as a process can (drop() says what that is); its
 * mount namespace, root and cwd are taken from /proc/PID, checked against the start time T.
 *
 * Two stages. Stage 1 starts with the runner's clean environment (as root when the user changes),
 * closes every descriptor above 2, reads the service's environment from stdin (--env-stdin; never argv,
 * which anyone can read), drops privileges (drop(): every step checked), then re-executes itself
 * (fexecve) as stage 2 with the service's environment: ld.so then applies LD_LIBRARY_PATH / LD_PRELOAD
 * exactly as for the service, with no more than the service holds. When that environment holds nothing ld.so or libc's start-up reads (no LD_*, GLIBC_TUNABLES,
 * MALLOC_*), a new image would start exactly as stage 1 did, so stage 2 runs in place with the
 * environment swapped in. Stage 2 is the POST; nothing of OpenSSL is loaded before it.
 */
#define _GNU_SOURCE
#include "probe.h"   /* first: it sets OPENSSL_SUPPRESS_DEPRECATED for every OpenSSL header */
#include <dlfcn.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <grp.h>
#include <link.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sched.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/conf.h>
#include <openssl/core.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/self_test.h>
#include <openssl/x509.h>

/* ---------- a small JSON writer ---------- */
static char *out_buf; static size_t out_len, out_cap;
void put(const char *s, size_t n) {
    if (out_len + n + 1 > out_cap) {
        out_cap = (out_len + n + 1) * 2;
        out_buf = realloc(out_buf, out_cap);
        if (!out_buf) _exit(70);
    }
    memcpy(out_buf + out_len, s, n); out_len += n; out_buf[out_len] = 0;
}
void puts_(const char *s) { put(s, strlen(s)); }
void putf(const char *fmt, ...) {
    char tmp[512]; va_list ap; va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap); va_end(ap);
    if (n > 0) put(tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}
void jstr(const char *s) {
    if (!s) { puts_("null"); return; }
    puts_("\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') { char e[2] = {'\\', (char)*p}; put(e, 2); }
        else if (*p == '\n') puts_("\\n");
        else if (*p == '\t') puts_("\\t");
        else if (*p < 0x20 || *p == 0x7f) putf("\\u%04x", *p);
        else put((const char *)p, 1);  /* UTF-8 passes through; invalid bytes are the runner's problem */
    }
    puts_("\"");
}
void key(const char *k) { jstr(k); puts_(":"); }
void kstr(const char *k, const char *v) { key(k); jstr(v); puts_(","); }
void kint(const char *k, long long v) { key(k); putf("%lld", v); puts_(","); }
void kbool(const char *k, int v) { key(k); puts_(v ? "true" : "false"); puts_(","); }
/* Drops a trailing comma before closing an object/array. */
void close_(const char *c) { if (out_len && out_buf[out_len - 1] == ',') out_len--; puts_(c); puts_(","); }

/* OpenSSL_version(OPENSSL_DIR) says `OPENSSLDIR: "/usr/lib/ssl"`: the bare path. */
static const char *bare_path(const char *s) {
    static char buf[2][PATH_MAX]; static int k; if (!s) return NULL;
    const char *q = strchr(s, '"'); if (!q) return s;
    char *b = buf[k++ & 1]; snprintf(b, PATH_MAX, "%s", q + 1);
    char *e = strrchr(b, '"'); if (e) *e = 0; return b;
}
void stage(const char *name) { fprintf(stderr, "sentinel-probe: stage %s\n", name); fflush(stderr); }
double now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }

/* ---------- the OpenSSL functions, all through dlsym ---------- */
static void *lib;
/* One list serves both the pointer declarations and the dlsym lookups. */
#define OPENSSL_FUNCTIONS(X) \
    X(OpenSSL_version) X(OpenSSL_version_num) X(OPENSSL_init_crypto) X(ERR_get_error_all) \
    X(ERR_get_error_line_data) X(ERR_error_string_n) X(ERR_clear_error) X(CONF_get1_default_config_file) \
    X(CONF_modules_load_file_ex) X(OSSL_LIB_CTX_new) X(NCONF_new_ex) X(NCONF_load_bio) X(CONF_modules_load) \
    X(BIO_new_mem_buf) X(OSSL_SELF_TEST_set_callback) X(OSSL_PROVIDER_do_all) X(OSSL_PROVIDER_get0_name) \
    X(OSSL_PROVIDER_get_params) X(OSSL_PROVIDER_self_test) X(OSSL_PROVIDER_available) \
    X(EVP_default_properties_is_fips_enabled) X(EVP_MD_fetch) X(EVP_MD_free) X(EVP_MD_get0_provider) \
    X(EVP_Digest) X(RAND_bytes) X(RAND_get0_primary) X(EVP_RAND_get_state) X(EVP_RAND_CTX_get0_rand) \
    X(EVP_RAND_get0_provider) X(EVP_RAND_get0_name) X(X509_get_default_cert_file) \
    X(X509_get_default_cert_dir) X(X509_get_default_cert_file_env) X(X509_get_default_cert_dir_env) \
    X(NCONF_new) X(NCONF_load) X(EVP_get_digestbyname)
#define FN(name) static __typeof__(name) *p_##name;
OPENSSL_FUNCTIONS(FN)
#define SYM(name) p_##name = (__typeof__(p_##name))dlsym(lib, #name);
/* OpenSSL 1.1 (no providers): FIPS_mode() is gone from 3.0's headers, so it is declared here. */
static int (*p_FIPS_mode)(void);
static int v1_1;

/* A digest by name: fetched (3.0, which says which provider serves it) or looked up (1.1). */
static const EVP_MD *digest_named(const char *fetch_name, const char *name, EVP_MD **fetched) {
    *fetched = p_EVP_MD_fetch ? p_EVP_MD_fetch(NULL, fetch_name, NULL) : NULL;
    if (*fetched || !v1_1 || !p_EVP_get_digestbyname) return *fetched;
    return p_EVP_get_digestbyname(name);
}

/* Newer APIs: detected, their absence reported, never fatal. */
static const char *const newer_api[][2] = {
    {"OSSL_PROVIDER_load_ex", "3.2"}, {"OSSL_INDICATOR_set_callback", "3.4"},
    {"EVP_get1_default_properties", "3.5"}, {"OSSL_ERR_STATE_new", "3.2"},
};

/* Every queued OpenSSL error as a full string with file:line, func and data; the queue is emptied. */
int drain_errors(const char *k) {
    int n = 0;
    key(k); puts_("[");
    if (p_ERR_get_error_all || p_ERR_get_error_line_data) {
        for (;;) {
            const char *file = NULL, *func = NULL, *data = NULL; int line = 0, flags = 0;
            unsigned long e = p_ERR_get_error_all ? p_ERR_get_error_all(&file, &line, &func, &data, &flags)
                                                  : p_ERR_get_error_line_data(&file, &line, &data, &flags);
            if (e == 0) break;
            char s[256] = "";
            if (p_ERR_error_string_n) p_ERR_error_string_n(e, s, sizeof s);
            else snprintf(s, sizeof s, "error:%08lX", e);
            char full[1024];
            snprintf(full, sizeof full, "%s:%s:%d%s%s%s%s", s, file ? file : "?", line,
                     func && *func ? ":" : "", func && *func ? func : "",
                     data && *data && (flags & ERR_TXT_STRING) ? ":" : "", data && (flags & ERR_TXT_STRING) ? data : "");
            if (n < 64) { jstr(full); puts_(","); }
            n++;
        }
    } else {
        jstr("ERR_get_error_all/ERR_get_error_line_data not found"); puts_(",");
    }
    close_("]");
    return n;
}
static void missing(const char *names) { kstr("status", "fail"); key("errors"); puts_("["); jstr(names); puts_("]"); puts_(","); }

/* ---------- self-test callback ---------- */
static int st_events, st_failures, st_integrity_passes; static char st_fail_text[16][200];
static int st_cb(const OSSL_PARAM params[], void *arg) {
    (void)arg;
    const char *phase = "", *type = "", *desc = "";
    for (const OSSL_PARAM *p = params; p && p->key; p++) {
        if (p->data_type != OSSL_PARAM_UTF8_STRING || !p->data) continue;
        if (!strcmp(p->key, OSSL_PROV_PARAM_SELF_TEST_PHASE)) phase = p->data;
        else if (!strcmp(p->key, OSSL_PROV_PARAM_SELF_TEST_TYPE)) type = p->data;
        else if (!strcmp(p->key, OSSL_PROV_PARAM_SELF_TEST_DESC)) desc = p->data;
    }
    st_events++;
    if (!strcmp(type, OSSL_SELF_TEST_TYPE_MODULE_INTEGRITY) && !strcmp(phase, OSSL_SELF_TEST_PHASE_PASS)) st_integrity_passes++;
    if (!strcmp(phase, OSSL_SELF_TEST_PHASE_FAIL)) {
        if (st_failures < 16) snprintf(st_fail_text[st_failures], 200, "%s: %s", type, desc);
        st_failures++;
    }
    return 1;
}

/* ---------- providers ---------- */
static OSSL_PROVIDER *fips_prov; static char fips_config_name[64];
static int prov_count;
static int prov_cb(OSSL_PROVIDER *prov, void *arg) {
    (void)arg;
    const char *cname = p_OSSL_PROVIDER_get0_name ? p_OSSL_PROVIDER_get0_name(prov) : "?";
    char *name = NULL, *version = NULL, *buildinfo = NULL; unsigned int status = 0;
    OSSL_PARAM req[] = {
        {OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, &name, 0, OSSL_PARAM_UNMODIFIED},
        {OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, &version, 0, OSSL_PARAM_UNMODIFIED},
        {OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, &buildinfo, 0, OSSL_PARAM_UNMODIFIED},
        {OSSL_PROV_PARAM_STATUS, OSSL_PARAM_UNSIGNED_INTEGER, &status, sizeof status, OSSL_PARAM_UNMODIFIED},
        {NULL, 0, NULL, 0, 0},
    };
    int ok = p_OSSL_PROVIDER_get_params ? p_OSSL_PROVIDER_get_params(prov, req) : 0;
    puts_("{");
    kstr("config_name", cname);
    if (req[0].return_size != OSSL_PARAM_UNMODIFIED) kstr("name", name);
    if (req[1].return_size != OSSL_PARAM_UNMODIFIED) kstr("version", version);
    if (req[2].return_size != OSSL_PARAM_UNMODIFIED) kstr("buildinfo", buildinfo);
    if (req[3].return_size != OSSL_PARAM_UNMODIFIED) kint("status", status);
    kbool("params_ok", ok);
    int is_fips = (cname && !strcmp(cname, "fips")) || (name && strstr(name, "FIPS"));
    kbool("fips", is_fips);
    if (is_fips && !fips_prov) { fips_prov = prov; snprintf(fips_config_name, sizeof fips_config_name, "%s", cname ? cname : "fips"); }
    close_("}");
    prov_count++;
    return 1;
}

/* ---------- trust paths ---------- */
static long count_in_file(const char *path) {
    FILE *f = fopen(path, "rb"); if (!f) return -1;
    static char buf[(1 << 16) + 64]; long n = 0; size_t keep = 0, r;
    const char *needle = "-----BEGIN CERTIFICATE-----"; size_t nl = strlen(needle);
    while ((r = fread(buf + keep, 1, (1 << 16), f)) > 0) {
        size_t len = keep + r; buf[len] = 0;
        for (char *p = buf; (p = memmem(p, len - (size_t)(p - buf), needle, nl)); p += nl) n++;
        keep = len >= nl ? nl - 1 : len; memmove(buf, buf + len - keep, keep);
    }
    fclose(f); return n;
}
static long count_in_dir(const char *dir) {
    DIR *d = opendir(dir); if (!d) return -1;
    long n = 0; struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = e->d_name, *dot = strrchr(s, '.');
        if (s[0] == '.') continue;
        if ((dot && (!strcmp(dot, ".pem") || !strcmp(dot, ".crt"))) ||
            (dot && dot - s == 8 && dot[1] >= '0' && dot[1] <= '9')) n++;
    }
    closedir(d); return n;
}
/* The trust paths are only files and folders: they are counted on a second thread while the FIPS
 * self-tests keep the main thread busy (the certificate bundle alone is ~200 KB to search), and
 * printed in their place in the check order. The paths themselves are taken on the main thread. */
struct trust_entry { const char *key; char path[PATH_MAX]; int null_path, is_dir, exists; long certificates; };
static struct trust_entry trust[4]; static int trust_count;
static void trust_add(const char *k, const char *path, int is_dir) {
    struct trust_entry *e = &trust[trust_count++];
    e->key = k; e->is_dir = is_dir; e->null_path = !path; snprintf(e->path, sizeof e->path, "%s", path ? path : "");
}
static void *trust_count_all(void *arg) {
    (void)arg;
    for (int k = 0; k < trust_count; k++) {
        struct trust_entry *e = &trust[k]; struct stat st;
        e->exists = !e->null_path && stat(e->path, &st) == 0;
        if (e->exists) e->certificates = e->is_dir ? count_in_dir(e->path) : count_in_file(e->path);
    }
    return NULL;
}
static void trust_print(const struct trust_entry *e) {
    key(e->key); puts_("{"); kstr("path", e->null_path ? NULL : e->path);
    kbool("exists", e->exists);
    if (e->exists) kint("certificates", e->certificates);
    close_("}");
}

/* ---------- privileges and limits ---------- */
/* The service whose POST this is (--pid): what the child may hold is read from its /proc entry. */
struct service {
    int dir, mnt, root, cwd;               /* /proc/PID and its ns/mnt, root, cwd (-1 when absent) */
    long uid, gid;                         /* real ids from status */
    uint64_t inh, prm, eff, bnd, amb;      /* capability sets from status */
};
static char drop_err[320];
static int fail_step(const char *what) { snprintf(drop_err, sizeof drop_err, "%s: %s", what, strerror(errno)); return -1; }

static int read_small(int dir, const char *name, char *buf, size_t cap) {
    int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0; ssize_t n;
    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) != 0) {
        if (n < 0) { if (errno == EINTR) continue; close(fd); return -1; }
        len += (size_t)n;
    }
    close(fd); buf[len] = 0; return 0;
}
/* Field 22 of stat (start time in clock ticks); the comm field may hold spaces and parentheses. */
static long long start_time(int dir) {
    char buf[1024];
    if (read_small(dir, "stat", buf, sizeof buf) != 0) return -1;
    char *p = strrchr(buf, ')'); if (!p) return -1;
    p++;
    for (int field = 3; field < 22; field++) { p = strchr(p + 1, ' '); if (!p) return -1; }
    return strtoll(p + 1, NULL, 10);
}
static int status_field(const char *status, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    for (const char *l = status; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, name, nl) && l[nl] == ':') {
            l += nl + 1; while (*l == '\t' || *l == ' ') l++;
            size_t k = 0; while (l[k] && l[k] != '\n' && k + 1 < cap) { out[k] = l[k]; k++; } out[k] = 0; return 0;
        }
    return -1;
}
static int status_caps(const char *status, const char *name, uint64_t *out) {
    char v[64]; if (status_field(status, name, v, sizeof v) != 0) return -1;
    char *end; errno = 0; *out = strtoull(v, &end, 16); return errno || end == v ? -1 : 0;
}

/* Opens what the service is made of before anything changes: its /proc entry (checked against the
 * start time the runner saw, so a reused pid is refused), its identity and capability sets, and its
 * mount namespace, root and cwd as descriptors. */
static int open_service(long pid, long long want_start, struct service *sv) {
    char path[64]; snprintf(path, sizeof path, "/proc/%ld", pid);
    sv->dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sv->dir < 0) return fail_step(path);
    if (want_start >= 0 && start_time(sv->dir) != want_start) { errno = ESRCH; return fail_step("the process is gone (its pid names another process)"); }
    static char status[8192];
    if (read_small(sv->dir, "status", status, sizeof status) != 0) return fail_step("status");
    char v[64];
    if (status_field(status, "Uid", v, sizeof v) != 0) { errno = EINVAL; return fail_step("status: no Uid"); }
    sv->uid = atol(v);
    if (status_field(status, "Gid", v, sizeof v) != 0) { errno = EINVAL; return fail_step("status: no Gid"); }
    sv->gid = atol(v);
    if (status_caps(status, "CapInh", &sv->inh) || status_caps(status, "CapPrm", &sv->prm) || status_caps(status, "CapEff", &sv->eff)
        || status_caps(status, "CapBnd", &sv->bnd)) { errno = EINVAL; return fail_step("status: no capability sets"); }
    if (status_caps(status, "CapAmb", &sv->amb)) sv->amb = 0;   /* kernels before 4.3 */
    if ((sv->mnt = openat(sv->dir, "ns/mnt", O_RDONLY | O_CLOEXEC)) < 0) return fail_step("ns/mnt");
    if ((sv->root = openat(sv->dir, "root", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) return fail_step("root");
    sv->cwd = openat(sv->dir, "cwd", O_PATH | O_DIRECTORY | O_CLOEXEC);   /* a missing cwd is reported, not fatal */
    return 0;
}

static int same_file(int fd, const char *path) {
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int capsets(uint64_t inh, uint64_t prm, uint64_t eff) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {
        {(uint32_t)eff, (uint32_t)prm, (uint32_t)inh}, {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)}};
    return (int)syscall(SYS_capset, &h, d);
}

/* What this process holds now must be within what the service holds. Asked of the kernel, not of
 * /proc/self, which the service's mount namespace may not show. */
static int verify_within(uint64_t inh, uint64_t prm, uint64_t eff, uint64_t bnd, uint64_t amb) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0) return fail_step("capget");
    uint64_t have[5] = {d[0].inheritable | (uint64_t)d[1].inheritable << 32, d[0].permitted | (uint64_t)d[1].permitted << 32,
                        d[0].effective | (uint64_t)d[1].effective << 32, 0, 0};
    for (int c = 0; c < 64; c++) {
        if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) have[3] |= 1ULL << c;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1) have[4] |= 1ULL << c;
    }
    const char *names[5] = {"inheritable", "permitted", "effective", "bounding", "ambient"};
    uint64_t limit[5] = {inh, prm, eff, bnd, amb};
    for (int k = 0; k < 5; k++)
        if (have[k] & ~limit[k]) {
            snprintf(drop_err, sizeof drop_err, "%s capabilities %016llx are not within the service's %016llx", names[k],
                     (unsigned long long)have[k], (unsigned long long)limit[k]);
            return -1;
        }
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) { snprintf(drop_err, sizeof drop_err, "no_new_privs is not set"); return -1; }
    return 0;
}

/* Becomes the service, as far as a process can: its mount namespace and root, its bounding set,
 * groups reset to its gid, its uid, at most its capabilities, no_new_privs, not dumpable, limits.
 * Every step is checked and any failure aborts (-1). Only the cwd is soft (-2): a service whose cwd
 * was deleted still gets its POST, with the reason reported. */
static int drop(long uid, long gid, const char *cwd, struct service *sv) {
    if (sv) {
        /* The runner names the ids it saw; a process that changed them since is not the one audited. */
        if (uid >= 0 && uid != sv->uid) { snprintf(drop_err, sizeof drop_err, "the process now runs as uid %ld, not %ld", sv->uid, uid); return -1; }
        if (gid >= 0 && gid != sv->gid) { snprintf(drop_err, sizeof drop_err, "the process now runs as gid %ld, not %ld", sv->gid, gid); return -1; }
        /* Paths (its libcrypto, LD_PRELOAD, OPENSSL_CONF) resolve as the service sees them. */
        int own = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        struct stat a, b;
        if (own < 0 || fstat(own, &a) != 0 || fstat(sv->mnt, &b) != 0) return fail_step("mount namespace");
        close(own);
        if ((a.st_dev != b.st_dev || a.st_ino != b.st_ino) && setns(sv->mnt, CLONE_NEWNS) != 0) return fail_step("setns(mount namespace)");
        if (!same_file(sv->root, "/") && (fchdir(sv->root) != 0 || chroot(".") != 0)) return fail_step("chroot(the service's root)");
        for (int c = 0; c < 64; c++)
            if (!(sv->bnd & (1ULL << c)) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
                return fail_step("PR_CAPBSET_DROP");
    }
    if (gid >= 0) {
        gid_t g = (gid_t)gid;
        if (setgroups(1, &g) != 0) return fail_step("setgroups");
        if (setgid(g) != 0) return fail_step("setgid");
        if (getgid() != g || getegid() != g) { snprintf(drop_err, sizeof drop_err, "gid did not change"); return -1; }
    }
    if (uid > 0) {
        if (setuid((uid_t)uid) != 0) return fail_step("setuid");
        if (getuid() != (uid_t)uid || geteuid() != (uid_t)uid) { snprintf(drop_err, sizeof drop_err, "uid did not change"); return -1; }
        if (setuid(0) == 0) { snprintf(drop_err, sizeof drop_err, "could regain root"); return -1; }
        if (capsets(0, 0, 0) != 0) return fail_step("capset");   /* the inheritable set survives setuid */
    } else if (uid == 0 && sv) {
        /* A root service may hold fewer capabilities than root: exec must not give the rest back. */
        if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED, 0, 0, 0) != 0)
            return fail_step("PR_SET_SECUREBITS");
        if (capsets(sv->inh, sv->prm, sv->eff & sv->prm) != 0) return fail_step("capset");
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return fail_step("PR_CAP_AMBIENT_CLEAR_ALL");
        for (int c = 0; c < 64; c++)
            if ((sv->amb & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0) return fail_step("PR_CAP_AMBIENT_RAISE");
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail_step("PR_SET_NO_NEW_PRIVS");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return fail_step("PR_SET_DUMPABLE");
    struct rlimit core = {0, 0}, cpu = {60, 60}, fsz = {16 << 20, 16 << 20};
    if (setrlimit(RLIMIT_CORE, &core) != 0) return fail_step("RLIMIT_CORE");
    if (setrlimit(RLIMIT_CPU, &cpu) != 0) return fail_step("RLIMIT_CPU");
    if (setrlimit(RLIMIT_FSIZE, &fsz) != 0) return fail_step("RLIMIT_FSIZE");
    if (sv && verify_within(sv->inh, sv->prm, sv->eff, sv->bnd, sv->amb) != 0) return -1;
    if (!sv && uid > 0 && verify_within(0, 0, 0, ~0ULL, 0) != 0) return -1;
    if (sv) {
        if (sv->cwd < 0 || fchdir(sv->cwd) != 0) { fail_step("the service's cwd"); return -2; }
    } else if (cwd && chdir(cwd) != 0) {
        snprintf(drop_err, sizeof drop_err, "chdir(%s): %s", cwd, strerror(errno)); return -2;
    }
    return 0;
}

/* Variables the dynamic loader or libc read before main() (rtld's LD_*, GLIBC_TUNABLES and the
 * tunables' MALLOC_* aliases): with any of them set, stage 2 must be a new image started with them. */
static int loader_reads(char **env) {
    for (char **e = env; *e; e++)
        if (!strncmp(*e, "LD_", 3) || !strncmp(*e, "GLIBC_TUNABLES=", 15) || !strncmp(*e, "MALLOC_", 7)) return 1;
    return 0;
}

/* The service's environment, NUL-separated on stdin (never argv: /proc/PID/cmdline is world-readable). */
static char **read_env_stdin(void) {
    size_t cap = 1 << 16, len = 0; char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (len == cap) { if (cap >= (8u << 20)) break; cap *= 2; buf = realloc(buf, cap); if (!buf) return NULL; }
        ssize_t n = read(0, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    size_t count = 0;
    for (size_t k = 0; k < len; k++) if (buf[k] == 0) count++;
    char **env = calloc(count + 2, sizeof *env);
    size_t e = 0, start = 0;
    for (size_t k = 0; k < len && env; k++) if (buf[k] == 0) { if (k > start) env[e++] = buf + start; start = k + 1; }
    return env;
}

int main(int argc, char **argv) {
    /* Nothing the caller had open reaches the service's code (a daemon's sockets, a root-only file). */
    if (close_range(3, ~0U, 0) != 0) {
        if (errno != ENOSYS) { fprintf(stderr, "sentinel-probe: close_range: %s\n", strerror(errno)); return 125; }
        for (long fd = sysconf(_SC_OPEN_MAX) - 1; fd > 2; fd--) close((int)fd);
    }
    long uid = -1, gid = -1, pid = -1; long long start = -1;
    const char *cwd = NULL, *cwd_error = NULL, *mapped = NULL, *ops = NULL; int exec_mode = 0, stage2 = 0, env_stdin = 0, i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--uid") && i + 1 < argc) uid = atol(argv[++i]);
        else if (!strcmp(argv[i], "--pid") && i + 1 < argc) pid = atol(argv[++i]);
        else if (!strcmp(argv[i], "--start-time") && i + 1 < argc) start = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--mapped") && i + 1 < argc) mapped = argv[++i];
        else if (!strcmp(argv[i], "--gid") && i + 1 < argc) gid = atol(argv[++i]);
        else if (!strcmp(argv[i], "--cwd") && i + 1 < argc) cwd = argv[++i];
        else if (!strcmp(argv[i], "--cwd-error") && i + 1 < argc) cwd_error = argv[++i];
        else if (!strcmp(argv[i], "--ops") && i + 1 < argc) ops = argv[++i];
        else if (!strcmp(argv[i], "--exec")) exec_mode = 1;
        else if (!strcmp(argv[i], "--env-stdin")) env_stdin = 1;
        else if (!strcmp(argv[i], "--stage2")) stage2 = 1;
        else if (!strcmp(argv[i], "--")) { i++; break; }
        else break;
    }
    if (i >= argc) { fprintf(stderr, "usage: sentinel-probe [--uid N --gid N] [--cwd DIR] [--env-stdin] LIBCRYPTO | --exec ... -- PROG ARGS\n"); return 2; }
    if (!stage2) {
        /* Stage 1 runs with the runner's clean environment (as root when it must change user): the
         * service's LD_PRELOAD / LD_LIBRARY_PATH must never be applied by ld.so to a root process.
         * Drop privileges, then exec stage 2 (or the product's command) with the service's
         * environment, so the loader treats it exactly as it treats the service. */
        char **env = env_stdin ? read_env_stdin() : environ;
        if (!env) { fprintf(stderr, "sentinel-probe: cannot read the environment\n"); return 125; }
        int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);   /* before the user may lose access to our path */
        struct service sv;
        if (pid > 0 && open_service(pid, start, &sv) != 0) { fprintf(stderr, "sentinel-probe: %s\n", drop_err); return 125; }
        /* A library deleted or replaced under the service: load what it really maps, through a
         * descriptor opened while still root (map_files needs it) and kept across the drop and the
         * exec; the service's user sees only its own library's content. No copy is made. */
        static char mapped_path[64];
        if (mapped) {
            char name[96];
            if (pid <= 0 || strspn(mapped, "0123456789abcdef-") != strlen(mapped)) { fprintf(stderr, "sentinel-probe: --mapped needs --pid and a range\n"); return 125; }
            snprintf(name, sizeof name, "map_files/%s", mapped);
            int fd = openat(sv.dir, name, O_RDONLY);
            if (fd < 0) { fprintf(stderr, "sentinel-probe: %s: %s\n", name, strerror(errno)); return 125; }
            snprintf(mapped_path, sizeof mapped_path, "/proc/self/fd/%d", fd);
            argv[i] = mapped_path;
        }
        int dropped = drop(uid, gid, cwd, pid > 0 ? &sv : NULL);
        if (dropped == -1) { fprintf(stderr, "sentinel-probe: %s\n", drop_err); return 125; }
        if (pid > 0) { close(sv.dir); close(sv.mnt); close(sv.root); if (sv.cwd >= 0) close(sv.cwd); }
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) { dup2(null, 0); if (null > 0) close(null); }
        if (exec_mode) {
            if (dropped == -2) { fprintf(stderr, "sentinel-probe: %s\n", drop_err); return 125; }
            execve(argv[i], argv + i, env);
            fprintf(stderr, "sentinel-probe: cannot run %s: %s\n", argv[i], strerror(errno));
            return 127;
        }
        if (loader_reads(env)) {
            char *args[10]; int a = 0;
            args[a++] = argv[0]; args[a++] = "--stage2";
            if (dropped == -2) { args[a++] = "--cwd-error"; args[a++] = (char *)drop_err; }
            if (ops) { args[a++] = "--ops"; args[a++] = (char *)ops; }
            args[a++] = "--"; args[a++] = argv[i]; args[a] = NULL;
            if (self >= 0) fexecve(self, args, env);
            fprintf(stderr, "sentinel-probe: cannot re-execute itself: %s\n", strerror(errno));
            return 125;
        }
        /* Nothing in the environment that ld.so or libc's start-up reads: a new image would start
         * exactly as this one did, so stage 2 runs in place (one exec and one loader run fewer) with
         * the service's environment swapped in; OpenSSL reads it with getenv, after this point. */
        if (self >= 0) close(self);
        environ = env;
        if (dropped == -2) cwd_error = drop_err;
    }
    const char *requested = argv[i];
    double t0 = now_ms();
    puts_("{"); kint("probe", 1); kstr("requested", requested);
    kint("uid", getuid()); kint("gid", getgid());
    { char wd[PATH_MAX]; kstr("cwd", getcwd(wd, sizeof wd) ? wd : NULL); }
    if (cwd_error) kstr("cwd_error", cwd_error);

    /* 1. load exactly one libcrypto */
    stage("dlopen");
    lib = dlopen(requested, RTLD_NOW | RTLD_LOCAL);
    key("load"); puts_("{");
    if (!lib) {
        kbool("ok", 0); kstr("error", dlerror()); close_("}");
        kint("elapsed_ms", (long long)(now_ms() - t0)); close_("}");
        out_buf[out_len - 1] = '\n'; fwrite(out_buf, 1, out_len, stdout); return 0;
    }
    kbool("ok", 1);
    struct link_map *lm = NULL;
    if (dlinfo(lib, RTLD_DI_LINKMAP, &lm) == 0 && lm) {
        kstr("path", lm->l_name);
        char real[PATH_MAX]; if (realpath(lm->l_name, real)) kstr("realpath", real);
    }
    close_("}");

    OPENSSL_FUNCTIONS(SYM)
    p_FIPS_mode = (int (*)(void))dlsym(lib, "FIPS_mode");
    v1_1 = p_OpenSSL_version_num && p_OpenSSL_version_num() < 0x30000000UL;
    kbool("openssl_1_1", v1_1);
    operations_resolve(lib);
    fips_config_resolve(lib);

    /* trust paths: compiled-in cert file/dir, SSL_CERT_FILE / SSL_CERT_DIR */
    pthread_t trust_thread; int trust_thread_ok;
    {
        if (p_X509_get_default_cert_file) trust_add("compiled_file", p_X509_get_default_cert_file(), 0);
        if (p_X509_get_default_cert_dir) trust_add("compiled_dir", p_X509_get_default_cert_dir(), 1);
        const char *fe = p_X509_get_default_cert_file_env ? p_X509_get_default_cert_file_env() : "SSL_CERT_FILE";
        const char *de = p_X509_get_default_cert_dir_env ? p_X509_get_default_cert_dir_env() : "SSL_CERT_DIR";
        if (getenv(fe)) trust_add("env_file", getenv(fe), 0);
        if (getenv(de)) {
            /* SSL_CERT_DIR may be a list; report the first entry that exists (or the first) */
            char list[PATH_MAX * 2]; snprintf(list, sizeof list, "%s", getenv(de));
            char *save = NULL, *first = strtok_r(list, ":", &save), *pick = first;
            for (char *d = first; d; d = strtok_r(NULL, ":", &save)) { struct stat st; if (stat(d, &st) == 0) { pick = d; break; } }
            trust_add("env_dir", pick ? pick : "", 1);
        }
        trust_thread_ok = pthread_create(&trust_thread, NULL, trust_count_all, NULL) == 0;
    }

    key("api"); puts_("{");
    for (size_t k = 0; k < sizeof newer_api / sizeof newer_api[0]; k++) {
        key(newer_api[k][0]); puts_("{"); kstr("since", newer_api[k][1]);
        kbool("present", dlsym(lib, newer_api[k][0]) != NULL); close_("}");
    }
    close_("}");

    key("checks"); puts_("[");
    double t;
    /* identity */
    stage("identity"); t = now_ms();
    puts_("{"); kstr("name", "identity");
    if (!p_OpenSSL_version) missing("OpenSSL_version not found");
    else {
        kstr("status", "pass");
        kstr("version", p_OpenSSL_version(OPENSSL_VERSION));
        kstr("openssldir", p_OpenSSL_version(OPENSSL_DIR));
        kstr("modulesdir", p_OpenSSL_version(OPENSSL_MODULES_DIR));
        kstr("openssldir_path", bare_path(p_OpenSSL_version(OPENSSL_DIR)));
        kstr("modulesdir_path", bare_path(p_OpenSSL_version(OPENSSL_MODULES_DIR)));
        if (p_OpenSSL_version_num) putf("\"version_num\":\"%08lx\",", p_OpenSSL_version_num());
    }
    kint("ms", (long long)(now_ms() - t)); close_("}");

    /* self-test callback, armed before any provider loads */
    stage("self-test-callback");
    puts_("{"); kstr("name", "self_test_callback");
    if (p_OSSL_SELF_TEST_set_callback) { p_OSSL_SELF_TEST_set_callback(NULL, st_cb, NULL); kstr("status", "pass"); }
    else if (v1_1) { kstr("status", "skip"); kstr("reason", "OpenSSL 1.1 has no providers and no self-test callback"); }
    else missing("OSSL_SELF_TEST_set_callback not found (not OpenSSL 3)");
    close_("}");

    /* config, the way a service loads it */
    stage("config"); t = now_ms();
    const char *conf_env = getenv("OPENSSL_CONF");
    char *conf_file = p_CONF_get1_default_config_file ? p_CONF_get1_default_config_file() : NULL;
    puts_("{"); kstr("name", "config_service");
    kstr("file", conf_file); kbool("from_env", conf_env != NULL);
    { struct stat st; kbool("exists", conf_file && stat(conf_file, &st) == 0); }
    if (!p_OPENSSL_init_crypto) missing("OPENSSL_init_crypto not found");
    else {
        int r = p_OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);
        kstr("status", r == 1 ? "pass" : "fail"); kint("return", r);
    }
    kint("ms", (long long)(now_ms() - t)); close_("}");

    /* the error queue right after init */
    stage("init-error-queue");
    puts_("{"); kstr("name", "init_error_queue");
    { size_t mark = out_len; (void)mark;
      int n = drain_errors("errors"); kint("count", n); kstr("status", n == 0 ? "pass" : "fail"); }
    close_("}");

    /* strict load of the same config, in a private library context */
    stage("config-strict"); t = now_ms();
    CONF *strict_conf = NULL;   /* kept for the fips module section (fips_config.c) */
    puts_("{"); kstr("name", "config_strict"); kstr("file", conf_file);
    if (v1_1 && p_NCONF_new && p_NCONF_load && p_CONF_modules_load && conf_file) {
        /* 1.1 has neither library contexts nor config_diagnostics: the file is loaded again with module
         * errors reported (flags 0), into the global state the service's way of loading already set up. */
        struct stat st;
        if (!conf_env && stat(conf_file, &st) != 0) { kstr("status", "skip"); kstr("reason", "no OPENSSL_CONF and the default file does not exist"); }
        else {
            if (p_ERR_clear_error) p_ERR_clear_error();
            CONF *conf = p_NCONF_new(NULL);
            long eline = -1;
            int r = conf ? p_NCONF_load(conf, conf_file, &eline) : 0;
            if (r > 0) r = p_CONF_modules_load(conf, NULL, 0);
            else kint("error_line", eline);
            kint("return", r);
            int n = drain_errors("errors");
            kstr("status", r > 0 && n == 0 ? "pass" : "fail");
        }
    }
    else if (!p_NCONF_new_ex || !p_NCONF_load_bio || !p_CONF_modules_load || !p_BIO_new_mem_buf || !p_OSSL_LIB_CTX_new)
        missing("NCONF_new_ex/NCONF_load_bio/CONF_modules_load not found");
    else if (!conf_file) missing("no config file name");
    else {
        struct stat st;
        if (!conf_env && stat(conf_file, &st) != 0) { kstr("status", "skip"); kstr("reason", "no OPENSSL_CONF and the default file does not exist"); }
        else {
            /* The file itself may say config_diagnostics = 0 (errors ignored even without IGNORE flags):
             * include it and switch diagnostics on after it, in the default section. */
            static char wrapper[PATH_MAX + 128];
            snprintf(wrapper, sizeof wrapper, ".include %s\n[default]\nconfig_diagnostics = 1\n", conf_file);
            kbool("diagnostics_forced", 1);
            if (p_ERR_clear_error) p_ERR_clear_error();
            OSSL_LIB_CTX *sctx = p_OSSL_LIB_CTX_new();   /* never freed: unloading providers is what we avoid */
            CONF *conf = p_NCONF_new_ex(sctx, NULL);
            strict_conf = conf;
            BIO *bio = p_BIO_new_mem_buf(wrapper, -1);
            long eline = -1;
            int r = conf && bio ? p_NCONF_load_bio(conf, bio, &eline) : 0;
            if (r > 0) r = p_CONF_modules_load(conf, NULL, 0);
            else kint("error_line", eline);
            kint("return", r);
            int n = drain_errors("errors");
            kstr("status", r > 0 && n == 0 ? "pass" : "fail");
            if (r <= 0) strict_conf = NULL;
        }
    }
    kint("ms", (long long)(now_ms() - t)); close_("}");

    /* providers */
    stage("providers"); t = now_ms();
    puts_("{"); kstr("name", "providers");
    if (v1_1) {
        kstr("status", "skip"); kstr("reason", "OpenSSL 1.1 has no providers");
        if (p_FIPS_mode) kint("fips_mode", p_FIPS_mode());
    }
    else if (!p_OSSL_PROVIDER_do_all) missing("OSSL_PROVIDER_do_all not found");
    else {
        key("providers"); puts_("["); p_OSSL_PROVIDER_do_all(NULL, prov_cb, NULL); close_("]");
        kstr("status", prov_count > 0 ? "pass" : "fail");
        kbool("fips_loaded", fips_prov != NULL);
        if (p_OSSL_PROVIDER_available) kbool("fips_available", p_OSSL_PROVIDER_available(NULL, "fips"));
        if (p_EVP_default_properties_is_fips_enabled) kbool("default_properties_fips", p_EVP_default_properties_is_fips_enabled(NULL));
        drain_errors("errors");
    }
    kint("ms", (long long)(now_ms() - t)); close_("}");

    /* FIPS self-test, before any RNG use */
    stage("self-test"); t = now_ms();
    puts_("{"); kstr("name", "self_test");
    if (!fips_prov) kstr("status", "skip");
    else if (!p_OSSL_PROVIDER_self_test) missing("OSSL_PROVIDER_self_test not found");
    else { int r = p_OSSL_PROVIDER_self_test(fips_prov); kint("return", r); kstr("status", r == 1 ? "pass" : "fail"); }
    kint("callback_events", st_events); kint("callback_failures", st_failures); kint("integrity_passes", st_integrity_passes);
    key("failed_tests"); puts_("[");
    for (int k = 0; k < st_failures && k < 16; k++) { jstr(st_fail_text[k]); puts_(","); }
    close_("]");
    drain_errors("errors");
    kint("ms", (long long)(now_ms() - t)); close_("}");

    if (fips_prov) { stage("fips-module-config"); fips_config_report(fips_prov, fips_config_name, strict_conf, conf_file); }

    /* SHA-256 known answer */
    stage("sha256"); t = now_ms();
    puts_("{"); kstr("name", "sha256");
    if (!(p_EVP_MD_fetch || (v1_1 && p_EVP_get_digestbyname)) || !p_EVP_Digest) missing("EVP_MD_fetch/EVP_Digest not found");
    else {
        EVP_MD *fetched; const EVP_MD *md = digest_named("SHA2-256", "SHA256", &fetched);
        unsigned char dg[64]; unsigned int dl = 0; char hex[129] = "";
        int ok = md && p_EVP_Digest("abc", 3, dg, &dl, md, NULL) == 1;
        for (unsigned k = 0; ok && k < dl && k < 64; k++) sprintf(hex + 2 * k, "%02x", dg[k]);
        const char *want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        kbool("fetched", md != NULL);
        if (fetched && p_EVP_MD_get0_provider && p_OSSL_PROVIDER_get0_name) kstr("provider", p_OSSL_PROVIDER_get0_name(p_EVP_MD_get0_provider(fetched)));
        kstr("digest", ok ? hex : NULL);
        kstr("status", ok && !strcmp(hex, want) ? "pass" : "fail");
        drain_errors("errors");
        if (fetched && p_EVP_MD_free) p_EVP_MD_free(fetched);
    }
    kint("ms", (long long)(now_ms() - t)); close_("}");

    /* MD5: must be refused under FIPS (the runner decides whether FIPS is expected) */
    stage("md5"); t = now_ms();
    puts_("{"); kstr("name", "md5");
    if (!(p_EVP_MD_fetch || (v1_1 && p_EVP_get_digestbyname)) || !p_EVP_Digest) missing("EVP_MD_fetch/EVP_Digest not found");
    else {
        EVP_MD *fetched; const EVP_MD *md = digest_named("MD5", "MD5", &fetched);
        unsigned char dg[64]; unsigned int dl = 0;
        int ok = md && p_EVP_Digest("abc", 3, dg, &dl, md, NULL) == 1;
        kbool("allowed", ok);
        if (fetched && p_EVP_MD_get0_provider && p_OSSL_PROVIDER_get0_name) kstr("provider", p_OSSL_PROVIDER_get0_name(p_EVP_MD_get0_provider(fetched)));
        kstr("status", "info");
        drain_errors("errors");
        if (fetched && p_EVP_MD_free) p_EVP_MD_free(fetched);
    }
    kint("ms", (long long)(now_ms() - t)); close_("}");

    /* DRBG */
    stage("drbg"); t = now_ms();
    puts_("{"); kstr("name", "drbg");
    if (!p_RAND_bytes) missing("RAND_bytes not found");
    else {
        unsigned char rb[32]; int r = p_RAND_bytes(rb, sizeof rb);
        kint("rand_bytes", r);
        int state = -1;
        EVP_RAND_CTX *primary = p_RAND_get0_primary ? p_RAND_get0_primary(NULL) : NULL;
        kbool("primary", primary != NULL);
        if (primary && p_EVP_RAND_get_state) { state = p_EVP_RAND_get_state(primary); kint("state", state); }
        if (primary && p_EVP_RAND_CTX_get0_rand) {
            EVP_RAND *rand = p_EVP_RAND_CTX_get0_rand(primary);
            if (rand && p_EVP_RAND_get0_name) kstr("algorithm", p_EVP_RAND_get0_name(rand));
            if (rand && p_EVP_RAND_get0_provider && p_OSSL_PROVIDER_get0_name)
                kstr("provider", p_OSSL_PROVIDER_get0_name(p_EVP_RAND_get0_provider(rand)));
        }
        /* 1.1's DRBG has no EVP_RAND state to read: RAND_bytes is the whole check there. */
        kstr("status", r == 1 && (state == EVP_RAND_STATE_READY || v1_1) ? "pass" : "fail");
        drain_errors("errors");
    }
    kint("ms", (long long)(now_ms() - t)); close_("}");

    if (ops && *ops) operations_run(ops);

    /* trust paths (counted on the trust thread) */
    stage("trust");
    if (trust_thread_ok) pthread_join(trust_thread, NULL); else trust_count_all(NULL);
    puts_("{"); kstr("name", "trust"); kstr("status", "info");
    for (int k = 0; k < trust_count; k++) trust_print(&trust[k]);
    close_("}");

    /* our own mappings: exactly one libcrypto, and where fips.so came from */
    stage("maps");
    puts_("{"); kstr("name", "maps"); kstr("status", "info");
    {
        FILE *m = fopen("/proc/self/maps", "r");
        char line[PATH_MAX + 256], seen[16][PATH_MAX]; int ns = 0;
        key("libcrypto"); puts_("[");
        char fips[PATH_MAX] = "";
        while (m && fgets(line, sizeof line, m)) {
            int field = 0; char *p = line;
            while (field < 5 && *p) { while (*p && *p != ' ') p++; while (*p == ' ') p++; field++; }
            size_t l = strlen(p); if (l && p[l - 1] == '\n') p[--l] = 0;
            if (*p != '/') continue;
            const char *base = strrchr(p, '/') + 1;
            if (!strcmp(base, "fips.so")) { snprintf(fips, sizeof fips, "%s", p); continue; }
            if (strncmp(base, "libcrypto", 9) || !strstr(base, ".so")) continue;
            int dup = 0; for (int k = 0; k < ns; k++) if (!strcmp(seen[k], p)) dup = 1;
            if (!dup && ns < 16) { snprintf(seen[ns++], PATH_MAX, "%s", p); jstr(p); puts_(","); }
        }
        if (m) fclose(m);
        close_("]");
        kstr("fips_module", *fips ? fips : NULL);
        const char *mods = getenv("OPENSSL_MODULES");
        const char *expected = mods ? mods : (p_OpenSSL_version ? bare_path(p_OpenSSL_version(OPENSSL_MODULES_DIR)) : NULL);
        kstr("fips_expected_dir", expected);
        if (expected) {
            char want[PATH_MAX]; struct stat st;
            snprintf(want, sizeof want, "%s/fips.so", expected);
            kbool("fips_expected_exists", stat(want, &st) == 0);
        }
        if (*fips && expected) {
            char a[PATH_MAX], b[PATH_MAX]; char *slash = strrchr(fips, '/');
            *slash = 0; int same = realpath(fips, a) && realpath(expected, b) && !strcmp(a, b); *slash = '/';
            kbool("fips_from_expected_dir", same);
        }
    }
    close_("}");
    close_("]");
    kint("elapsed_ms", (long long)(now_ms() - t0));
    close_("}");
    out_buf[out_len - 1] = '\n';
    stage("done");
    fwrite(out_buf, 1, out_len, stdout);
    fflush(stdout);
    _exit(0);   /* no atexit/OpenSSL cleanup: a broken provider must not turn a result into a crash */
}
