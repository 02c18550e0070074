# The board side of `kestrel deploy` and of the Mender update module (one implementation of the
# steps for both), run as `sh -c SCRIPT kestrel-remote ROOT LAUNCHER SERVICE CMD ARGS...`.
# POSIX sh + coreutils (sha256sum, timeout, mv -T) + tar + flock: what JetPack's Ubuntu has.
# Layout under ROOT: releases/<id>/  current -> releases/<id>  previous -> releases/<id>
#                    incoming/ (uploads)  state/ (service status, log, inbox)  run/ (pid file)
# Every step may be killed at any point (power, a dropped connection): each leaves either the old
# state or a hidden leftover (incoming/*.part, releases/.<id>.partial, releases/.<id>.removing,
# *.new links) that no other step reads and the next deploy's `prepare` removes.
set -eu
ROOT=$1 LAUNCHER=$2 SERVICE=$3 CMD=$4
shift 4
UNIT=kestrel.service

die() { echo "kestrel-remote: $*" >&2; exit 1; }
cd "$ROOT" 2>/dev/null || die "install root $ROOT does not exist (create it and give the deploy user write access)"
mkdir -p releases incoming state state/inbox run

lock() {
    exec 9>"$ROOT/.deploy.lock"
    flock -n 9 || die "another deploy is running on this board"
}
unlock() { exec 9>&-; }
release_of() { [ -L "$1" ] && basename "$(readlink "$1")" || true; }
valid_id() { case $1 in *[!A-Za-z0-9T._-]* | '' | .*) die "bad release id '$1'" ;; esac; }
point() { # point LINK ID: atomically (rename(2)) make LINK -> releases/ID
    ln -sfn "releases/$2" "$1.new"
    mv -T "$1.new" "$1"
}
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
service_pid() { [ -f run/kestrel.pid ] && kill -0 "$(cat run/kestrel.pid)" 2>/dev/null && cat run/kestrel.pid || true; }
status_field() { [ -f state/status ] && sed -n "s/^$1=//p" state/status || true; }
serving() { # serving ID: the service runs ID and reported it healthy
    [ "$(status_field release)" = "$1" ] && [ "$(status_field state)" = ready ] || return 1
    if [ "$SERVICE" = systemd ]; then systemctl is-active --quiet $UNIT; else [ -n "$(service_pid)" ]; fi
}
remove_release() { # hidden first (one rename), so a half-deleted release is never listed
    mv -T "releases/$1" "releases/.$1.removing"
    rm -rf "releases/.$1.removing"
}
forget() { # forget ID: a release that is not current, removed if installed
    [ "$(release_of previous)" != "$1" ] || rm -f previous
    [ ! -d "releases/$1" ] || remove_release "$1"
}
previous_before() { # previous_before ID EXCLUDED: previous -> the newest release older than ID
    older=$(ls releases | grep -v -e '^\.' -e "^$2\$" | sort | awk -v p="$1" '$0 < p' | tail -n 1)
    if [ -n "$older" ]; then point previous "$older"; else rm -f previous; fi
}
back() { # current -> previous; previous -> the newest release older than that; sets from, to
    from=$(release_of current) to=$(release_of previous)
    [ -n "$to" ] && [ -d "releases/$to" ] || die "no previous release to roll back to"
    point current "$to"
    previous_before "$to" "$from"
}

restart() { # stop the running service (if any) and start the one `current` points to
    # A stale status must not pass for the new service's report.
    rm -f state/status
    if [ "$SERVICE" = systemd ]; then
        # Exactly these command lines, so sudoers can allow just them (README: Deploy to a Jetson).
        if ! cmp -s "$ROOT/current/$UNIT" /etc/systemd/system/$UNIT; then
            sudo_ install -m 644 "$ROOT/current/$UNIT" /etc/systemd/system/$UNIT
            sudo_ systemctl daemon-reload
            sudo_ systemctl enable $UNIT
        fi
        sudo_ systemctl restart $UNIT
    else
        pid=$(service_pid)
        if [ -n "$pid" ]; then
            kill "$pid" 2>/dev/null || true
            n=0
            while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.2; n=$((n + 1)); done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f run/kestrel.pid
        setsid $LAUNCHER "$ROOT/current/bin/kestrel" serve "$ROOT/current" --state "$ROOT/state" \
            </dev/null >>state/service.log 2>&1 &
        echo $! >run/kestrel.pid
    fi
}
ready() { # ready ID TIMEOUT_S: wait until the service reports ID healthy
    valid_id "$1"
    n=0
    while [ $n -lt $(($2 * 5)) ]; do
        if [ "$(status_field release)" = "$1" ]; then
            case $(status_field state) in
            ready) return 0 ;;
            failed) die "service failed its health check: $(status_field detail)" ;;
            esac
        fi
        if [ "$SERVICE" = pidfile ] && [ -z "$(service_pid)" ]; then
            die "service exited: $(tail -n 3 state/service.log | tr '\n' ' ')"
        fi
        sleep 0.2
        n=$((n + 1))
    done
    die "service did not report ready within $2 s"
}

case $CMD in
prepare)
    lock
    # Leftovers of an interrupted deploy: partial uploads, unpacked-but-unverified releases,
    # half-removed ones, links never renamed into place.
    rm -f incoming/*.part incoming/*.tar.gz current.new previous.new
    rm -rf releases/.*.partial releases/.*.removing
    echo "current=$(release_of current)"
    ;;
receive) # receive ID: the bundle arrives on stdin
    valid_id "$1"
    cat >"incoming/$1.tar.gz.part"
    ;;
install) # install ID SHA256: check the upload, unpack, check the manifest, publish releases/ID
    lock
    id=$1 want=$2
    valid_id "$id"
    part="incoming/$id.tar.gz.part" tmp="releases/.$id.partial"
    [ -f "$part" ] || die "upload of $id not found"
    got=$(sha256sum "$part" | cut -d' ' -f1)
    [ "$got" = "$want" ] || die "bundle checksum mismatch after upload: got $got, expected $want"
    # Only a verified release is ever renamed into releases/: installing it again is a no-op.
    [ ! -d "releases/$id" ] || { rm -f "$part"; exit 0; }
    rm -rf "$tmp"
    mkdir "$tmp"
    tar -xzf "$part" -C "$tmp" --no-same-owner || { rm -rf "$tmp"; die "cannot unpack the bundle"; }
    rm -f "$part"
    if ! check=$(cd "$tmp" && sha256sum -c --strict --quiet MANIFEST.sha256 2>&1); then
        rm -rf "$tmp"
        die "manifest check failed, release refused: $(echo "$check" | grep -v WARNING | head -n 3 | tr '\n' ' ')"
    fi
    listed=$(cut -d' ' -f3 "$tmp/MANIFEST.sha256" | sort)
    present=$(cd "$tmp" && find . ! -type d ! -name MANIFEST.sha256 | sed 's|^\./||' | sort)
    [ "$listed" = "$present" ] || { rm -rf "$tmp"; die "the bundle holds files its manifest does not list"; }
    mv "$tmp" "releases/$id"
    ;;
health) # health ID BUDGET_S: the new release's binary checks itself, before anything switches
    valid_id "$1"
    cd "releases/$1"
    rc=0
    timeout -k 5 "$2" $LAUNCHER ./bin/kestrel health . || rc=$?
    [ "$rc" != 124 ] && [ "$rc" != 137 ] || die "health check took longer than its budget of $2 s"
    exit "$rc"
    ;;
activate) # activate ID: previous -> the old current, then current -> ID; prints the old current
    lock
    valid_id "$1"
    [ -d "releases/$1" ] || die "release $1 is not installed"
    old=$(release_of current)
    # previous first: killed in between, both name the old release, which is still serving.
    [ -z "$old" ] || [ "$old" = "$1" ] || point previous "$old"
    point current "$1"
    echo "previous=$old"
    ;;
rollback) # current -> previous; previous -> the newest release older than that
    lock
    back
    echo "from=$from"
    echo "to=$to"
    ;;
undo) # undo ID TIMEOUT_S: undo an installation or activation of ID, wherever it stopped: the
    # release current before serves again (restarted if it is not serving), ID is removed
    lock
    valid_id "$1"
    cur=$(release_of current)
    if [ "$cur" = "$1" ]; then
        back
    else # stopped before the switch; if between the two links, previous names current: mend it
        [ -z "$cur" ] || [ "$(release_of previous)" != "$cur" ] || previous_before "$cur" "$1"
        to=$cur
    fi
    unlock # the service must not inherit the lock
    if [ -n "$to" ] && ! serving "$to"; then
        restart
        ready "$to" "$2"
    fi
    lock
    forget "$1"
    echo "to=$to"
    ;;
discard) # discard ID: remove a release that failed its checks (never the current one)
    lock
    valid_id "$1"
    [ "$(release_of current)" != "$1" ] || die "refusing to discard the current release"
    forget "$1"
    ;;
restart) restart ;;
ready) ready "$@" ;;
prune) # prune KEEP: keep current and the KEEP newest other releases (and always previous)
    lock
    cur=$(release_of current) prev=$(release_of previous)
    ls releases | grep -v -e '^\.' -e "^$cur\$" | sort -r | tail -n +$(($1 + 1)) | while read -r old; do
        [ "$old" = "$prev" ] && continue
        remove_release "$old"
        echo "removed=$old"
    done
    ;;
status)
    echo "current=$(release_of current)"
    echo "previous=$(release_of previous)"
    echo "releases=$(ls releases | grep -v '^\.' | tr '\n' ' ')"
    if [ "$SERVICE" = systemd ]; then
        echo "service=$(systemctl is-active $UNIT 2>/dev/null || true)"
    else
        pid=$(service_pid)
        if [ -n "$pid" ]; then echo "service=running (pid $pid)"; else echo "service=stopped"; fi
    fi
    [ ! -f state/status ] || sed 's/^/service./' state/status
    ;;
*) die "unknown command $CMD" ;;
esac
