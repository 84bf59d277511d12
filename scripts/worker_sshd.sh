#!/bin/sh
# sshd for a multi-host training worker, run as the image's non-root user (the image installs this
# as /usr/local/bin/gauntlet-sshd): the launcher's horovodrun starts this host's ranks over ssh.
#
# Nothing secret is in the image. The run's public key arrives at start, as a mounted file
# (GAUNTLET_SSH_AUTHORIZED_KEYS, e.g. a Secret mount) or in the environment (GAUNTLET_SSH_PUBLIC_KEY);
# the host key is generated here, at every start. A non-root sshd cannot bind port 22: it listens on
# GAUNTLET_HOROVOD_SSH_PORT (default 2222), the port the launcher's horovodrun is given too.
set -eu
port=${GAUNTLET_HOROVOD_SSH_PORT:-2222}
conf=${GAUNTLET_SSHD_DIR:-$HOME/.sshd}
mkdir -p "$conf"
chmod 700 "$conf"
keys=${GAUNTLET_SSH_AUTHORIZED_KEYS:-$conf/authorized_keys}
if [ -n "${GAUNTLET_SSH_PUBLIC_KEY:-}" ]; then
    keys=$conf/authorized_keys
    printf '%s\n' "$GAUNTLET_SSH_PUBLIC_KEY" > "$keys"
fi
[ -r "$keys" ] || { echo "gauntlet-sshd: no public key: mount one at GAUNTLET_SSH_AUTHORIZED_KEYS or set GAUNTLET_SSH_PUBLIC_KEY" >&2; exit 2; }
rm -f "$conf/host_key" "$conf/host_key.pub"
ssh-keygen -q -t ed25519 -N '' -f "$conf/host_key"
# StrictModes off: a mounted key file belongs to whoever mounted it, not to this user.
cat > "$conf/sshd_config" <<CONFIG
Port $port
HostKey $conf/host_key
PidFile $conf/sshd.pid
AuthorizedKeysFile $keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin no
X11Forwarding no
PrintMotd no
CONFIG
echo "gauntlet-sshd: $(id -un) on $(hostname):$port"
exec /usr/sbin/sshd -D -e -f "$conf/sshd_config"
