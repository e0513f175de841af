# Starts the local stand-ins the demo and the benchmark run against (sourced,
# not run): the test kit's fake OpenBao and a Garage S3 server with one
# bucket, both stopped and cleaned up when the calling script exits.
#
#   start_local_servers STATE_MIB [fake-openbao options...]
#
# Sets: work (scratch directory: s3/ credentials, token), bin, openbao_url,
# fake_pid, and the S3_* / AWS_* variables of dev-s3's env file.

start_local_servers() {
    local state_mib="$1"
    shift
    bin="$CARGO_TARGET_DIR/release"
    work="$(mktemp -d)"
    trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
    "$bin/dev-s3" --dir "$work/s3" &
    "$bin/fake-openbao" --listen 127.0.0.1:0 --state-mib "$state_mib" "$@" \
        --token-file "$work/token" --url-file "$work/openbao-url" &
    fake_pid=$!
    for _ in $(seq 600); do
        [ -f "$work/s3/env" ] && [ -f "$work/openbao-url" ] && break
        sleep 0.1
    done
    if ! [ -f "$work/s3/env" ] || ! [ -f "$work/openbao-url" ]; then
        echo "the local Garage or fake OpenBao did not start within 60 s" >&2
        exit 1
    fi
    source "$work/s3/env"
    openbao_url="$(cat "$work/openbao-url")"
}
