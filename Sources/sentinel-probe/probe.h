/* What probe.c shares with operations.c and fips_config.c: the JSON writer and the error drain. */
#ifndef SENTINEL_PROBE_H
#define SENTINEL_PROBE_H
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <stddef.h>
#include <openssl/conf.h>
#include <openssl/provider.h>

void put(const char *s, size_t n);
void puts_(const char *s);
void putf(const char *fmt, ...);
void jstr(const char *s);
void key(const char *k);
void kstr(const char *k, const char *v);
void kint(const char *k, long long v);
void kbool(const char *k, int v);
/* Closes an object or array, dropping a trailing comma. */
void close_(const char *c);
/* Every queued OpenSSL error under key k, the queue emptied; returns how many. */
int drain_errors(const char *k);
void stage(const char *name);
double now_ms(void);

/* operations.c: the named operations of `post --require/--forbid`, run in the default library
 * context with known-answer data; `list` is comma-separated. */
void operations_resolve(void *lib);
void operations_run(const char *list);

/* fips_config.c: the module section the fips provider was activated from (conf: the config as
 * loaded strictly, NULL when it was not), and the provider's own check parameters. */
void fips_config_resolve(void *lib);
void fips_config_report(OSSL_PROVIDER *fips, const char *config_name, CONF *conf, const char *conf_file);
#endif
