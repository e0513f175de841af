# Builds kube-apiserver from Debian's `kubernetes` source package into the
# cache, once (sourced by scripts/setup; needs env.sh). No registry packages
# a kube-apiserver binary; Debian's source (1.20) builds with Debian's Go
# once two vendored libraries that crash under Go >= 1.18 are swapped for
# Debian's own packaged versions.

build_kube_apiserver() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    local src_list=/etc/apt/sources.list.d/openbao-backup-deb-src.sources
    if [ ! -f "$src_list" ]; then
        # The same archives as the machine's binary sources, for `apt-get source`.
        sed -n '/^Types:/,$p' /etc/apt/sources.list.d/debian.sources \
            | sed 's/^Types: deb$/Types: deb-src/' | $sudo tee "$src_list" >/dev/null
    fi
    echo "setup: building kube-apiserver into $KUBE_APISERVER_BIN (once, ~5-10 minutes)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        dpkg-dev golang-go rsync \
        golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >/dev/null

    local work="$OPENBAO_BACKUP_CACHE/kube-build"
    rm -rf "$work" && mkdir -p "$work"
    (
        cd "$work"
        apt-get source --download-only kubernetes >/dev/null 2>&1 || apt-get source --download-only kubernetes
        dpkg-source --no-check -x ./kubernetes_*.dsc src >/dev/null
        cd src
        local gocode=/usr/share/gocode/src/github.com
        for lib in modern-go/reflect2 json-iterator/go; do
            rm -rf "vendor/github.com/$lib"
            mkdir -p "vendor/github.com/$lib"
            rsync -a --exclude '*_test.go' "$gocode/$lib/" "vendor/github.com/$lib/"
        done
        GOFLAGS=-mod=vendor make WHAT=cmd/kube-apiserver >build.log 2>&1 || {
            tail -40 build.log
            exit 1
        }
        mkdir -p "$(dirname "$KUBE_APISERVER_BIN")"
        cp _output/bin/kube-apiserver "$KUBE_APISERVER_BIN"
    )
    rm -rf "$work"
}
