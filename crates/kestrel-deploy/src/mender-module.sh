#!/bin/sh
# Kestrel's Mender update module (payload type `kestrel`): installs a Kestrel release bundle with
# the same board-side steps as `kestrel deploy` (the script embedded below), so a board can be
# updated by either. Installed once per board as /usr/share/mender/modules/v3/kestrel; its
# settings are `kestrel.conf` in Mender's data directory (`kestrel mender-setup` writes both).
# Called by the Mender client as `kestrel STATE FILES` (Update Module protocol v3).
set -eu
STATE=$1 FILES=$2

# FILES is DATADIR/modules/v3/payloads/NNNN/tree: the settings live beside Mender's own.
CONF=${FILES%/modules/v3/payloads/*}/kestrel.conf
setting() {
    v=$(sed -n "s/^$1=//p" "$CONF" 2>/dev/null | tail -n 1)
    [ -n "$v" ] || [ "$2" = optional ] || { echo "kestrel module: $1 is not set in $CONF" >&2; exit 1; }
    echo "$v"
}
board() { sh -c "$REMOTE" kestrel-remote "$ROOT" "$LAUNCHER" "$SERVICE" "$@"; }
release_id() { cat "$FILES/header/artifact_name"; }
payload() {
    set -- "$FILES"/files/*.tar.gz
    [ $# = 1 ] && [ -f "$1" ] || { echo "kestrel module: expected one .tar.gz bundle in the payload" >&2; exit 1; }
    echo "$1"
}

REMOTE=$(cat <<'KESTREL_REMOTE_SH'
@REMOTE_SH@
KESTREL_REMOTE_SH
)

case $STATE in
SupportsRollback) echo Yes; exit 0 ;;
NeedsArtifactReboot) echo No; exit 0 ;;
Download | ArtifactReboot | ArtifactVerifyReboot | ArtifactVerifyRollbackReboot | ArtifactRollbackReboot) exit 0 ;;
esac

ROOT=$(setting root required)
LAUNCHER=$(setting launcher optional)
SERVICE=$(setting service required)
KEEP=$(setting keep required)
HEALTH_BUDGET_S=$(setting health_budget_s required)
# The service loads its models and repeats the health check before it reports ready.
READY_TIMEOUT_S=$((HEALTH_BUDGET_S + 30))

case $STATE in
ArtifactInstall) # unpack into releases/.ID.partial, check the manifest, rename to releases/ID,
    # then the release checks itself on this board: all before anything the service uses changes
    id=$(release_id) bundle=$(payload)
    board prepare >/dev/null
    board receive "$id" <"$bundle"
    board install "$id" "$(sha256sum "$bundle" | cut -d' ' -f1)"
    board health "$id" "$HEALTH_BUDGET_S"
    ;;
ArtifactCommit) # switch, restart, wait until the service reports ready (its own health check)
    id=$(release_id)
    board activate "$id" >/dev/null
    board restart
    board ready "$id" "$READY_TIMEOUT_S"
    board prune "$KEEP" >/dev/null || echo "kestrel module: pruning old releases failed (the next update retries)" >&2
    ;;
ArtifactRollback) # wherever install or commit stopped: the release before serves again
    board undo "$(release_id)" "$READY_TIMEOUT_S" >/dev/null
    ;;
ArtifactFailure | Cleanup) # no partial upload, unpack or removal left behind
    board prepare >/dev/null
    ;;
esac
