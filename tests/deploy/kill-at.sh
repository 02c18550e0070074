#!/bin/sh
# Fault injection for tests/deploy.rs, not shipped: the test board's sshd puts a folder of links
# to this script first on PATH (sshd_config `SetEnv`), one per tool the board script uses. While
# the file $KESTREL_FAULT holds "COMMAND TOOL WHEN ARGS-PATTERN", the first call of TOOL by the
# board script's COMMAND whose arguments match kills the board script's whole process group with
# SIGKILL (the script, the tool, everything it started but a setsid service) — `before` running
# the tool, `after` it, or `during` it (0.3 s in) — and empties the file. Every other call runs
# the real tool.
tool=$(/usr/bin/basename "$0")
real=/usr/bin/$tool
[ -x "$real" ] || real=/bin/$tool
if [ -s "$KESTREL_FAULT" ]; then
    read -r command want when pattern <"$KESTREL_FAULT"
    # The board script runs as `sh -c SCRIPT kestrel-remote ROOT LAUNCHER SERVICE COMMAND ...`.
    caller=$(/bin/sed -z -n 8p "/proc/$PPID/cmdline" | /usr/bin/tr -d '\0')
    # shellcheck disable=SC2254 # the pattern is a glob on purpose
    if [ "$caller" = "$command" ] && [ "$tool" = "$want" ]; then
        case "$*" in
        $pattern)
            : >"$KESTREL_FAULT"
            case $when in
            before) kill -KILL 0 ;;
            after) "$real" "$@"; kill -KILL 0 ;;
            during) # a background job's stdin is /dev/null unless redirected
                exec 3<&0
                "$real" "$@" <&3 &
                /bin/sleep 0.3
                kill -KILL 0 ;;
            esac ;;
        esac
    fi
fi
exec "$real" "$@"
