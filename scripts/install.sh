#!/usr/bin/env bash
# Installs ociregistry as a systemd service: the binary in PREFIX/bin, the unit
# (deploy/systemd/ociregistry.service), /etc/ociregistry and /etc/default/ociregistry (kept when it
# exists); then enables and (re)starts the service when systemd runs this machine.
#
#   scripts/install.sh [--binary PATH] [--prefix DIR] [--destdir DIR]
#
# --binary defaults to dist/ociregistry (`bun run build`), --prefix to /usr/local. With
# --destdir (or DESTDIR=...) everything goes under that staging root and nothing is started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=dist/ociregistry
PREFIX=/usr/local
DESTDIR=${DESTDIR:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BIN=$2; shift 2 ;;
    --prefix) PREFIX=$2; shift 2 ;;
    --destdir) DESTDIR=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$PREFIX" in /*) ;; *) echo "install: --prefix must be an absolute path, got $PREFIX" >&2; exit 2 ;; esac
[ -x "$BIN" ] || { echo "install: $BIN is not an executable; run \`bun run build\` or pass --binary PATH" >&2; exit 1; }
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
  echo "install: run as root (or pass --destdir DIR to stage the files)" >&2
  exit 1
fi

bin="$PREFIX/bin/ociregistry"
unit=/etc/systemd/system/ociregistry.service
defaults=/etc/default/ociregistry
install -D -m 0755 "$BIN" "$DESTDIR$bin"
install -d -m 0755 "$DESTDIR/etc/systemd/system" "$DESTDIR/etc/ociregistry"
# The unit names /usr/local/bin/ociregistry; point it at the installed binary.
sed "s#/usr/local/bin/ociregistry#$bin#g" deploy/systemd/ociregistry.service >"$DESTDIR$unit.tmp"
chmod 0644 "$DESTDIR$unit.tmp"
mv "$DESTDIR$unit.tmp" "$DESTDIR$unit"
# Mode 0600: it may hold upstream passwords. An existing one is the admin's: never overwrite it.
if [ ! -e "$DESTDIR$defaults" ]; then
  install -D -m 0600 deploy/systemd/ociregistry.default "$DESTDIR$defaults"
fi
echo "install: $DESTDIR$bin, $DESTDIR$unit, $DESTDIR/etc/ociregistry/, $DESTDIR$defaults"

if [ -n "$DESTDIR" ]; then
  echo "install: staged under $DESTDIR; on the target run: systemctl daemon-reload && systemctl enable --now ociregistry"
elif [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable ociregistry
  # restart, not start: a reinstall must run the new binary.
  systemctl restart ociregistry
  echo "install: ociregistry is running (systemctl status ociregistry; journalctl -u ociregistry)"
else
  echo "install: systemd is not running on this machine; start the cache yourself:"
  echo "  $bin --image-path /var/lib/ociregistry serve    # add --config-file /etc/ociregistry/config.yaml"
fi
