#!/bin/bash
# make setup: installs those of the named Debian packages that are not installed yet, and starts or
# enables no service they bring (nginx-light's postinst would start nginx and enable it at boot; the
# bench starts its own). While apt runs, a policy-rc.d refuses every start (invoke-rc.d and
# deb-systemd-invoke ask it) and a systemd preset disables every unit (deb-systemd-helper enables a
# newly installed unit with `systemctl preset`); both are removed afterwards. An administrator's own
# policy-rc.d is left as it is.
# usage: scripts/setup-packages.sh PACKAGE... (root, or sudo)
set -euo pipefail
POLICY_RC_D=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
PRESET=${PRESET:-/etc/systemd/system-preset/00-crypto-sentinel-setup.preset}

missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
echo "installing: ${missing[*]}"

sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
placed=()
trap '[ ${#placed[@]} -eq 0 ] || $sudo rm -f "${placed[@]}"' EXIT
if [ ! -e "$POLICY_RC_D" ]; then
  placed+=("$POLICY_RC_D")
  printf '#!/bin/sh\n# crypto-sentinel make setup: no service starts while it installs packages.\nexit 101\n' \
    | $sudo tee "$POLICY_RC_D" >/dev/null
  $sudo chmod 0755 "$POLICY_RC_D"
fi
placed+=("$PRESET")
$sudo mkdir -p "$(dirname "$PRESET")"
printf '# crypto-sentinel make setup: units of the packages it installs are not enabled.\ndisable *\n' \
  | $sudo tee "$PRESET" >/dev/null

# APT_UPDATED=1: the caller has just run apt-get update (.ci/run), once is enough.
[ "${APT_UPDATED:-}" = 1 ] || $sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
