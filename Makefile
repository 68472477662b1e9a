# crypto-sentinel — build, demo, test, bench. Everything a fresh Debian 12 machine needs is installed here.
SHELL := /bin/bash
FIXTURES ?= /tmp/crypto-sentinel-fixtures
FIPS_CACHE ?= /var/tmp/crypto-sentinel-fips
SYSTEMD_ROOT_CACHE ?= /var/tmp/crypto-sentinel-systemd
PREFIX ?= /usr/local
APT_PACKAGES := libelf-dev libsystemd-dev libssl-dev libyaml-dev zlib1g-dev libdeflate-dev patchelf gcc make python3 python3-venv \
                python3-pip python3-dev python3-cryptography pax-utils libtree elfutils hyperfine time util-linux ca-certificates \
                openssl procps binutils systemd nginx-light curl libcap2-bin prometheus \
                prometheus-node-exporter systemd-journal-remote debootstrap systemd-container
SWIFT_BUILD_FLAGS ?=
# systemd's search path for locally installed units (beside /etc/systemd/system, which is the admin's).
UNITDIR ?= $(PREFIX)/lib/systemd/system
# Everything stays under PREFIX unless named: configuration in $(PREFIX)/etc (GNU's sysconfdir), except
# for PREFIX=/usr, a distribution package, whose configuration belongs in /etc (FHS, Debian policy). The
# installed unit points the daemon at $(CONFDIR)/config.yaml (CRYPTO_SENTINEL_CONFIG).
CONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)/crypto-sentinel
# journalctl --update-catalog reads /usr/lib/systemd/catalog and /usr/local/lib/systemd/catalog; another
# PREFIX (/opt/…) needs CATALOGDIR=/usr/local/lib/systemd/catalog for journalctl -x to explain alerts.
CATALOGDIR ?= $(PREFIX)/lib/systemd/catalog
DOCDIR ?= $(PREFIX)/share/doc/crypto-sentinel
LIBEXECDIR ?= $(PREFIX)/libexec/crypto-sentinel
MANDIR ?= $(PREFIX)/share/man
# Where bash-completion, zsh and fish look for a vendor's completions under a prefix.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
# The binary install-generated runs to produce the completions and the man page.
BIN ?= .build/release/crypto-sentinel
# SwiftPM gives every executable RUNPATH $$ORIGIN: ld.so would look for libc beside the binary and the
# probe, and the probe's dlopen("libcrypto.so.3") would search its own folder before the service's
# LD_LIBRARY_PATH-then-cache order. Without it a soname resolves exactly as in the service.
LOCAL_FLAGS := --disable-local-rpath

.PHONY: setup build release fixtures demo demo-scan test fuzz sanitize bench install install-files install-generated clean

## setup: install those of the Debian packages the build, the tests and the demo need that are missing
## (root, or sudo), starting and enabling none of their services (nginx: see scripts/setup-packages.sh).
setup:
	@scripts/setup-packages.sh $(APT_PACKAGES)

build:
	swift build $(LOCAL_FLAGS) $(SWIFT_BUILD_FLAGS)

## release: the Swift runtime linked in (--static-swift-stdlib: only the pages touched are resident), lld
## with packed relative relocations (DT_RELR, glibc >= 2.36), no --export-dynamic (nothing dlopens into us).
RELEASE_FLAGS := --static-swift-stdlib -Xswiftc -use-ld=lld \
                 -Xlinker --no-export-dynamic -Xlinker -z -Xlinker pack-relative-relocs
release:
	swift build -c release $(LOCAL_FLAGS) $(RELEASE_FLAGS) $(SWIFT_BUILD_FLAGS)

## fixtures: gcc-built ELF trees, real cx_Freeze, PyInstaller and venv bundles (PyPI; Nuitka with NUITKA=1),
## fake libcrypto for the POST's failure paths, wheels holding BoringSSL, AWS-LC and OpenSSL 1.1 (PyPI) with
## a static-OpenSSL program, Debian 13's openssl-provider-fips (private apt sources list; cached under
## $(FIPS_CACHE)) and a Debian 12 root with systemd to boot (debootstrap; cached under $(SYSTEMD_ROOT_CACHE)).
fixtures:
	scripts/fixtures/elf-trees.sh $(FIXTURES)/elf
	scripts/fixtures/cxfreeze-bundles.sh $(FIXTURES)/cxfreeze
	scripts/fixtures/freezer-bundles.sh $(FIXTURES)/freezers
	scripts/fixtures/processes.sh $(FIXTURES)/proc
	scripts/fixtures/post-libs.sh $(FIXTURES)/post
	scripts/fixtures/crypto-libs.sh $(FIXTURES)/cryptolibs
	scripts/fixtures/fips-provider.sh $(FIPS_CACHE) >/dev/null
	scripts/fixtures/systemd-root.sh $(SYSTEMD_ROOT_CACHE)

## demo: the daemon on its embedded default next to a demo service (the real split cx_Freeze bundle,
## frozen on the spot with Debian's python3-cryptography): `crypto-sentinel status`, the socket and the
## journal alert, then everything it started is stopped (KEEP=1 leaves the daemon and service running).
demo: setup release
	scripts/fixtures/cxfreeze-bundles.sh $(FIXTURES)/cxfreeze
	scripts/demo-daemon.sh $(FIXTURES) .build/release

## demo-scan: the release gate alone: scan the real split bundle, then the repair plan for it.
demo-scan: setup release
	scripts/fixtures/cxfreeze-bundles.sh $(FIXTURES)/cxfreeze
	@echo; echo "\$$ crypto-sentinel scan $(FIXTURES)/cxfreeze/debian"; \
	.build/release/crypto-sentinel scan $(FIXTURES)/cxfreeze/debian; \
	echo "(exit status $$? — 1 means findings at or above --fail-on error)"; \
	echo; echo "\$$ crypto-sentinel repair $(FIXTURES)/cxfreeze/debian --dry-run"; \
	.build/release/crypto-sentinel repair $(FIXTURES)/cxfreeze/debian --dry-run

## test: the whole suite (what .ci/run runs). The booted-systemd tests install the release build
## (make -o release install DESTDIR=…), so it is built here, before swift test, not from inside a test.
test: setup fixtures release
	SENTINEL_FIXTURES=$(FIXTURES) SENTINEL_SYSTEMD_CACHE=$(SYSTEMD_ROOT_CACHE) swift test $(LOCAL_FLAGS) $(SWIFT_BUILD_FLAGS)

## sanitize: the whole suite under AddressSanitizer (+ LeakSanitizer) and ThreadSanitizer (SANITIZERS=address
## or thread for one); non-zero on a failed test or any sanitizer report. Slow (about 10 min): not in .ci/run.
SANITIZERS ?= all
sanitize: setup fixtures
	SENTINEL_FIXTURES=$(FIXTURES) scripts/sanitize.sh $(SANITIZERS)

## fuzz: libFuzzer + ASan on the six input parsers, FUZZ_SECONDS each (default 60); non-zero on a crash.
FUZZ_SECONDS ?= 60
fuzz: setup fixtures
	SENTINEL_FIXTURES=$(FIXTURES) scripts/fuzz.sh $(FUZZ_SECONDS)

## bench: figures next to scanelf, libtree, grep over /proc/*/maps and nginx (the daemon API), in the same run.
bench: setup release fixtures
	scripts/bench.sh

## install: crypto-sentinel and the native POST probe side by side in $(PREFIX)/libexec/crypto-sentinel
## (the binary finds the probe beside /proc/self/exe), stripped, `crypto-sentinel` in $(PREFIX)/bin as a
## link, then everything install-files and install-generated place.
install: release install-files
	install -d -m 0755 $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(PREFIX)/bin
	install -s -m 0755 .build/release/crypto-sentinel .build/release/sentinel-probe $(DESTDIR)$(LIBEXECDIR)/
	ln -sfn $(LIBEXECDIR)/crypto-sentinel $(DESTDIR)$(PREFIX)/bin/crypto-sentinel
	$(MAKE) --no-print-directory install-generated BIN=.build/release/crypto-sentinel

## install-generated: the bash, zsh and fish completions and the man page crypto-sentinel(1), which $(BIN)
## generates from its own parser (so they need a build: install runs this, install-files cannot).
install-generated:
	install -d -m 0755 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(MANDIR)/man1
	$(BIN) --generate-completion-script bash > $(DESTDIR)$(BASHCOMPDIR)/crypto-sentinel
	$(BIN) --generate-completion-script zsh > $(DESTDIR)$(ZSHCOMPDIR)/_crypto-sentinel
	$(BIN) --generate-completion-script fish > $(DESTDIR)$(FISHCOMPDIR)/crypto-sentinel.fish
	set -o pipefail; $(BIN) --experimental-dump-help | scripts/man-page.py "$$($(BIN) --version)" > $(DESTDIR)$(MANDIR)/man1/crypto-sentinel.1
	chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/crypto-sentinel $(DESTDIR)$(ZSHCOMPDIR)/_crypto-sentinel \
	  $(DESTDIR)$(FISHCOMPDIR)/crypto-sentinel.fish $(DESTDIR)$(MANDIR)/man1/crypto-sentinel.1

## install-files: what needs no build — the systemd units (paths rewritten for PREFIX), the journal
## catalog, the example config (never over a real config.yaml), the docs the catalog points at, and the
## FIPS validation data as shipped (copy it beside config.yaml as fips-validations.json to edit it).
## The catalog database of the root installed into is rebuilt, so journalctl -x explains alerts: the host's
## with no DESTDIR, $(DESTDIR)'s when it is a system (it has systemd: an image, a container); a bare
## staging folder (packaging) is left without one.
install-files:
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CATALOGDIR) $(DESTDIR)$(CONFDIR) $(DESTDIR)$(DOCDIR)
	for f in crypto-sentinel.service crypto-sentinel.socket; do \
	  sed -e 's|/usr/local/|$(PREFIX)/|g' -e 's|/etc/crypto-sentinel/|$(CONFDIR)/|g' systemd/$$f > $(DESTDIR)$(UNITDIR)/$$f \
	    && chmod 0644 $(DESTDIR)$(UNITDIR)/$$f || exit 1; \
	done
	sed -e 's|/usr/local/|$(PREFIX)/|g' systemd/crypto-sentinel.catalog > $(DESTDIR)$(CATALOGDIR)/crypto-sentinel.catalog
	chmod 0644 $(DESTDIR)$(CATALOGDIR)/crypto-sentinel.catalog
	install -m 0644 config/crypto-sentinel.example.yaml $(DESTDIR)$(CONFDIR)/config.example.yaml
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 systemd/README.md $(DESTDIR)$(DOCDIR)/systemd.md
	install -m 0644 data/fips-validations.json $(DESTDIR)$(DOCDIR)/fips-validations.json
	@case "$(CATALOGDIR)" in /usr/lib/systemd/catalog|/usr/local/lib/systemd/catalog) ;; \
	  *) echo "note: journalctl reads no catalog from $(CATALOGDIR): pass CATALOGDIR=/usr/local/lib/systemd/catalog";; esac
	@if [ -z "$(DESTDIR)" ]; then \
	  journalctl --update-catalog && echo "journal catalog updated"; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	elif [ -x "$(DESTDIR)/usr/lib/systemd/systemd" ] || [ -x "$(DESTDIR)/lib/systemd/systemd" ]; then \
	  journalctl --root="$(DESTDIR)" --update-catalog && echo "journal catalog of $(DESTDIR) updated"; \
	fi

clean:
	rm -rf .build $(FIXTURES)
