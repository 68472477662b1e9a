/*
 * The fips provider's module section, as an auditor reads it: which section the provider was
 * activated from, every option in it with the file and line that set it (OpenSSL's own parser gives
 * the values; a plain scan of the same files, following .include, gives where), and the check
 * parameters the loaded module reports about itself (3.1+: security-checks, tls1-prf-ems-check, …;
 * 3.4+: every *-check). The files are read as the service's user in its mount namespace, like the
 * rest of the POST.
 */
#define _GNU_SOURCE
#include "probe.h"
#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/safestack.h>

#define CONFIG_FUNCTIONS(X) X(NCONF_get_string) X(NCONF_get_section) X(OPENSSL_sk_num) X(OPENSSL_sk_value) \
    X(OSSL_PROVIDER_get_params) X(ERR_clear_error)
#define CFN(name) static __typeof__(name) *c_##name;
CONFIG_FUNCTIONS(CFN)

void fips_config_resolve(void *lib) {
#define CSYM(name) c_##name = (__typeof__(c_##name))dlsym(lib, #name);
    CONFIG_FUNCTIONS(CSYM)
}

/* The module options that only ever weaken the module when 0 (OpenSSL 3.5's "pedantic" fipsmodule.cnf
 * sets every one to 1), queried from the provider; one it does not know stays unreported. */
static const char *const check_params[] = {
    "security-checks", "tls1-prf-ems-check", "no-short-mac", "drbg-no-trunc-md", "signature-digest-check",
    "dsa-sign-disabled", "hkdf-digest-check", "tls13-kdf-digest-check", "tls1-prf-digest-check",
    "sshkdf-digest-check", "sskdf-digest-check", "x963kdf-digest-check", "tdes-encrypt-disabled",
    "rsa-pkcs15-pad-disabled", "rsa-pss-saltlen-check", "rsa-sign-x931-pad-disabled", "hkdf-key-check",
    "kbkdf-key-check", "tls13-kdf-key-check", "tls1-prf-key-check", "sshkdf-key-check", "sskdf-key-check",
    "x963kdf-key-check", "x942kdf-key-check", "pbkdf2-lower-bound-check", "ecdh-cofactor-check",
    "hmac-key-check", "kmac-key-check",
};
#define CHECK_COUNT (sizeof check_params / sizeof check_params[0])

/* ---------- where each option was set ---------- */
struct place { char name[64]; char file[PATH_MAX]; int line; };
static struct place places[64]; static int place_count;

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}
static void scan_path(const char *path, const char *section, int depth);
static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }
/* An included folder: its *.cnf and *.conf files, in name order, as OpenSSL reads them. */
static void scan_dir(const char *dir, const char *section, int depth) {
    struct dirent **list; int n = scandir(dir, &list, NULL, by_name);
    for (int k = 0; k < n; k++) {
        const char *d = strrchr(list[k]->d_name, '.');
        if (d && (!strcmp(d, ".cnf") || !strcmp(d, ".conf"))) {
            char p[PATH_MAX]; snprintf(p, sizeof p, "%s/%s", dir, list[k]->d_name);
            scan_path(p, section, depth + 1);
        }
        free(list[k]);
    }
    if (n >= 0) free(list);
}
/* The last assignment of each option of `section` wins, as in OpenSSL's parser. */
static void scan_path(const char *path, const char *section, int depth) {
    struct stat st;
    if (depth > 8 || stat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) { scan_dir(path, section, depth); return; }
    FILE *f = fopen(path, "r"); if (!f) return;
    char raw[4096], current[128] = "default"; int line = 0;
    while (fgets(raw, sizeof raw, f)) {
        line++;
        char *hash = strchr(raw, '#'); if (hash) *hash = 0;
        char *s = trim(raw);
        if (!*s) continue;
        if (!strncmp(s, ".include", 8)) {
            char *p = trim(s + 8); if (*p == '=') p = trim(p + 1);
            char inc[PATH_MAX]; const char *base = getenv("OPENSSL_CONF_INCLUDE");
            if (*p != '/' && base) snprintf(inc, sizeof inc, "%s/%s", base, p); else snprintf(inc, sizeof inc, "%s", p);
            scan_path(inc, section, depth + 1);
            continue;
        }
        if (*s == '[') {
            char *e = strchr(s, ']'); if (!e) continue; *e = 0;
            snprintf(current, sizeof current, "%s", trim(s + 1));
            continue;
        }
        char *eq = strchr(s, '='); if (!eq || strcmp(current, section)) continue;
        *eq = 0; char *name = trim(s);
        struct place *pl = NULL;
        for (int k = 0; k < place_count; k++) if (!strcmp(places[k].name, name)) pl = &places[k];
        if (!pl && place_count < 64) pl = &places[place_count++];
        if (!pl) continue;
        snprintf(pl->name, sizeof pl->name, "%s", name); snprintf(pl->file, sizeof pl->file, "%s", path); pl->line = line;
    }
    fclose(f);
}

/* The section named for the provider in the providers section of the init section. */
static const char *module_section(CONF *conf, const char *config_name) {
    const char *init = c_NCONF_get_string(conf, NULL, "openssl_conf");
    const char *providers = init ? c_NCONF_get_string(conf, init, "providers") : NULL;
    const char *found = providers ? c_NCONF_get_string(conf, providers, config_name) : NULL;
    if (c_ERR_clear_error) c_ERR_clear_error();   /* a missing key queues an error nobody asked for */
    return found;
}

void fips_config_report(OSSL_PROVIDER *fips, const char *config_name, CONF *conf, const char *conf_file) {
    puts_("{"); kstr("name", "fips_module_config"); kstr("status", "info");
    if (c_OSSL_PROVIDER_get_params) {
        int values[CHECK_COUNT]; OSSL_PARAM req[CHECK_COUNT + 1];
        for (size_t k = 0; k < CHECK_COUNT; k++)
            req[k] = (OSSL_PARAM){check_params[k], OSSL_PARAM_INTEGER, &values[k], sizeof values[k], OSSL_PARAM_UNMODIFIED};
        req[CHECK_COUNT] = (OSSL_PARAM)OSSL_PARAM_END;
        key("provider_params"); puts_("{");
        if (c_OSSL_PROVIDER_get_params(fips, req))
            for (size_t k = 0; k < CHECK_COUNT; k++) if (req[k].return_size != OSSL_PARAM_UNMODIFIED) kint(check_params[k], values[k]);
        close_("}");
    }
    const char *section = conf && c_NCONF_get_string && c_NCONF_get_section && c_OPENSSL_sk_num && c_OPENSSL_sk_value
                        ? module_section(conf, config_name) : NULL;
    kstr("section", section);
    if (section) {
        place_count = 0;
        if (conf_file) scan_path(conf_file, section, 0);
        STACK_OF(CONF_VALUE) *values = c_NCONF_get_section(conf, section);
        key("options"); puts_("[");
        int n = values ? c_OPENSSL_sk_num((const OPENSSL_STACK *)values) : 0;
        for (int k = 0; k < n; k++) {
            const CONF_VALUE *v = c_OPENSSL_sk_value((const OPENSSL_STACK *)values, k);
            if (!v || !v->name) continue;
            puts_("{"); kstr("name", v->name);
            /* The MACs prove nothing by their value here; the self-test verified the module against them. */
            kstr("value", !strcmp(v->name, "module-mac") || !strcmp(v->name, "install-mac") ? "(present)" : v->value);
            for (int p = 0; p < place_count; p++)
                if (!strcmp(places[p].name, v->name)) { kstr("file", places[p].file); kint("line", places[p].line); }
            close_("}");
        }
        close_("]");
    }
    close_("}");
}
