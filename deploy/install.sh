#!/usr/bin/env bash
# Installs everything Prescient runs on a Debian 12 machine: nats-server, ffmpeg, openssl (the
# cluster's certificates), consul (from the bullseye suite, pinned low), a Java runtime + maven for
# the QuestDB jar, the node dependencies and the build. Idempotent: each step checks first, so a second run only prints versions.
#
#   bash deploy/install.sh            everything: the stack, a node agent, and what the tests use
#   bash deploy/install.sh --agent    a node agent only (burst nodes, encoding hosts): ffmpeg,
#                                     iproute2, util-linux, curl, openssl, Node.js >= 20, the build
#   bash deploy/install.sh --agent --join NATS_URL --token TOKEN [--node-id ID] [--cores LIST] [--memory-gb GB]
#                                     that, then enrols this host with a join token from
#                                     `prescient certs join-token` (its key made here, its node
#                                     certificate signed by the leader), writes /etc/prescient/agent.yaml,
#                                     installs the prescient-agent unit and enables and starts it.
#                                     The token may come as PRESCIENT_JOIN_TOKEN instead (kept out of ps).
#
#   PRESCIENT_QUESTDB_JAR      where the QuestDB jar goes   (default /opt/prescient/questdb/questdb.jar)
#   PRESCIENT_QUESTDB_VERSION  QuestDB release to fetch     (default 9.3.4)
#   PRESCIENT_DEBIAN_MIRROR    mirror for the bullseye suite (default: the one this machine uses for bookworm)
#   PRESCIENT_MOTO_VENV        virtualenv for moto's server (default /opt/prescient/moto)
#   PRESCIENT_MOTO_VERSION     moto release to install there (default 5.2.1)
#   PRESCIENT_CLOUD_INIT_DIR   where Debian's cloud-init is unpacked, not installed, for the tests'
#                              schema check of burst user data (default /opt/prescient/cloud-init)
#   PRESCIENT_FFMPEG_USER      the unprivileged user ffmpeg runs as when the agent is root (default prescient)
#   PRESCIENT_SKIP_NPM=1       no npm install and no build (a --join still enrols, with the existing build)
#   PRESCIENT_STATE_DIR        the agent's state (certificates, spool, output) for --join (default /var/lib/prescient)
#   PRESCIENT_ETC_DIR          where --join writes agent.yaml (default /etc/prescient)
set -euo pipefail

ROLE=full
JOIN=; TOKEN=${PRESCIENT_JOIN_TOKEN:-}; JOIN_ARGS=()
usage() { echo "usage: bash deploy/install.sh [--agent [--join NATS_URL --token TOKEN [--node-id ID] [--cores LIST] [--memory-gb GB]]]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) ROLE=agent ;;
    --join) [ $# -ge 2 ] || usage; JOIN=$2; shift ;;
    --token) [ $# -ge 2 ] || usage; TOKEN=$2; shift ;;
    --node-id|--cores|--memory-gb) [ $# -ge 2 ] || usage; JOIN_ARGS+=("$1" "$2"); shift ;;
    *) usage ;;
  esac
  shift
done
if [ -n "$JOIN" ] || [ ${#JOIN_ARGS[@]} -gt 0 ]; then
  [ "$ROLE" = agent ] || { echo "install.sh: --join goes with --agent" >&2; usage; }
  [ -n "$JOIN" ] && [ -n "$TOKEN" ] || { echo "install.sh: --join needs the cluster's NATS URL and --token (or PRESCIENT_JOIN_TOKEN)" >&2; usage; }
fi

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUESTDB_VERSION=${PRESCIENT_QUESTDB_VERSION:-9.3.4}
QUESTDB_JAR=${PRESCIENT_QUESTDB_JAR:-/opt/prescient/questdb/questdb.jar}
MOTO_VENV=${PRESCIENT_MOTO_VENV:-/opt/prescient/moto}
MOTO_VERSION=${PRESCIENT_MOTO_VERSION:-5.2.1}
CLOUD_INIT_DIR=${PRESCIENT_CLOUD_INIT_DIR:-/opt/prescient/cloud-init}
PROMETHEUS_DIR=${PRESCIENT_PROMETHEUS_DIR:-/opt/prescient/prometheus}
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" # nats-server installs to /usr/sbin
FAILED=()

say() { printf '%-12s %s\n' "$1" "$2"; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

APT_UPDATED=0
apt_install() { # apt-get update at most once per run, and only when something is missing
  if [ "$APT_UPDATED" = 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Writes $2 to file $1 only when it differs; returns 0 when it changed.
put_file() {
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then return 1; fi
  printf '%s\n' "$2" | $SUDO tee "$1" >/dev/null
}

# The mirror already configured for bookworm (deb822 or one-line format), so no host is hard-coded.
debian_mirror() {
  if [ -n "${PRESCIENT_DEBIAN_MIRROR:-}" ]; then echo "$PRESCIENT_DEBIAN_MIRROR"; return; fi
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = "" }
      /(^|\n)Suites:[^\n]*[ \t]bookworm([ \t]|\n|$)/ {
        if (match($0, /(^|\n)URIs:[ \t]*[^ \t\n]+/)) { u = substr($0, RSTART, RLENGTH); sub(/^\n?URIs:[ \t]*/, "", u); print u; exit }
      }' "$f"
  done | head -n1 | grep . && return
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" { for (i = 2; i < NF; i++) if ($i ~ /^[a-z+]+:\/\// && $(i + 1) == "bookworm") { print $i; exit } }' | head -n1
}

if [ "$ROLE" = full ]; then
# --- bullseye suite, pinned at 100: only packages asked for with -t bullseye (consul) come from it
PIN='Package: *
Pin: release n=bullseye
Pin-Priority: 100'
if put_file /etc/apt/preferences.d/bullseye-low "$PIN"; then say apt "pinned bullseye at priority 100"; fi
MIRROR=$(debian_mirror || true)
if [ -n "$MIRROR" ]; then
  SRC="Types: deb
URIs: $MIRROR
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  if put_file /etc/apt/sources.list.d/bullseye.sources "$SRC"; then say apt "added bullseye suite from $MIRROR"; APT_UPDATED=0; fi
elif [ ! -f /etc/apt/sources.list.d/bullseye.sources ]; then
  echo "cannot find this machine's bookworm mirror; set PRESCIENT_DEBIAN_MIRROR" >&2; exit 1
fi

# --- Debian packages: one install call for whatever is missing
missing=()
# chromium: the tests open `prescient plan`'s HTML report in a real browser (playwright-core drives it).
# libjemalloc2: the CLI's shebang preloads it, so a leader hands back what a burst of large messages took (coordinator/cli/allocator.ts).
for p in nats-server ffmpeg iproute2 util-linux curl debian-archive-keyring openssl systemd chromium libjemalloc2; do pkg_installed "$p" || missing+=("$p"); done
java_major() { command -v java >/dev/null || { echo 0; return; }; java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1") ? v[2] : v[1]; exit }'; }
[ "$(java_major)" -ge 17 ] 2>/dev/null || missing+=(openjdk-17-jre-headless) # QuestDB 9 needs class version 61
command -v mvn >/dev/null || missing+=(maven)
if [ ${#missing[@]} -gt 0 ]; then say apt "installing ${missing[*]}"; apt_install "${missing[@]}"; fi
pkg_installed consul || { say apt "installing consul from bullseye"; apt_install -t bullseye consul; }

say nats-server "$(nats-server --version | sed 's/.*v//')"
say ffmpeg "$(ffmpeg -hide_banner -version | awk 'NR == 1 { print $3 }')"
say consul "$(consul version | awk 'NR == 1 { sub(/^v/, "", $2); print $2 }')"
say java "$(java -version 2>&1 | head -n1)"
say maven "$(mvn -B -v 2>/dev/null | awk 'NR == 1 { print $3 }')"
say iproute2 "$(ip -V | sed 's/.*iproute2-\([^ ,]*\).*/\1/')"
say util-linux "$(taskset --version | awk '{ print $NF }') (taskset, prlimit)"
say curl "$(curl --version | awk 'NR == 1 { print $2 }')"

# --- QuestDB jar: fetched into the maven repo, copied to a stable path with a version stamp
if [ "$(cat "$QUESTDB_JAR.version" 2>/dev/null)" != "$QUESTDB_VERSION" ] || [ ! -f "$QUESTDB_JAR" ]; then
  M2_JAR="$HOME/.m2/repository/org/questdb/questdb/$QUESTDB_VERSION/questdb-$QUESTDB_VERSION.jar"
  [ -f "$M2_JAR" ] || mvn -q -B dependency:get -Dartifact="org.questdb:questdb:$QUESTDB_VERSION" -Dtransitive=false
  [ -f "$M2_JAR" ] || { echo "mvn did not produce $M2_JAR" >&2; exit 1; }
  $SUDO install -D -m 0644 "$M2_JAR" "$QUESTDB_JAR"
  echo "$QUESTDB_VERSION" | $SUDO tee "$QUESTDB_JAR.version" >/dev/null
fi
say questdb "$QUESTDB_VERSION ($QUESTDB_JAR)"

# --- moto's server (PyPI moto[ec2,server]): the local EC2-compatible endpoint the AWS burst tests
# run against (test/helpers/moto.ts). Kept if it is already there, in the venv or on PATH;
# otherwise installed into its own virtualenv, so Debian's python (PEP 668) is left alone.
moto_in() { "$1" -c 'import moto, moto.server; print(moto.__version__)' 2>/dev/null; }
if MV=$(moto_in "$MOTO_VENV/bin/python"); then
  say moto "$MV ($MOTO_VENV/bin/moto_server)"
elif command -v moto_server >/dev/null && moto_server --help >/dev/null 2>&1; then
  say moto "$(moto_in python3 || echo '?') ($(command -v moto_server))"
else
  python3 -c 'import ensurepip, venv' 2>/dev/null || { say apt "installing python3 python3-venv"; apt_install python3 python3-venv; }
  say moto "installing moto[ec2,server]==$MOTO_VERSION into $MOTO_VENV"
  $SUDO python3 -m venv "$MOTO_VENV"
  if $SUDO "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[ec2,server]==$MOTO_VERSION" >/tmp/prescient-pip.$$.log 2>&1 &&
    MV=$(moto_in "$MOTO_VENV/bin/python"); then
    say moto "$MV ($MOTO_VENV/bin/moto_server)"
  else
    cat /tmp/prescient-pip.$$.log >&2; say moto "FAILED (pip output above)"; FAILED+=(moto)
  fi
  rm -f /tmp/prescient-pip.$$.log
fi

# --- cloud-init, unpacked from Debian's package (never installed: it would run at this machine's
# next boot): the tests check burst nodes' user data with its own schema validator.
CI_VERSION=$(apt-cache policy cloud-init 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [ -n "$CI_VERSION" ] && [ "$(cat "$CLOUD_INIT_DIR/.version" 2>/dev/null)" != "$CI_VERSION" ]; then
  ci_missing=()
  for p in python3-yaml python3-jsonschema python3-jinja2 python3-configobj python3-jsonpatch python3-netifaces python3-oauthlib python3-requests; do pkg_installed "$p" || ci_missing+=("$p"); done
  if [ ${#ci_missing[@]} -gt 0 ]; then say apt "installing ${ci_missing[*]} (for cloud-init's schema check)"; apt_install "${ci_missing[@]}"; fi
  ci_tmp=$(mktemp -d)
  if (cd "$ci_tmp" && apt-get download -qq cloud-init >/dev/null 2>&1) && $SUDO rm -rf "$CLOUD_INIT_DIR" && $SUDO mkdir -p "$CLOUD_INIT_DIR" &&
    $SUDO dpkg-deb -x "$ci_tmp"/cloud-init_*.deb "$CLOUD_INIT_DIR"; then
    echo "$CI_VERSION" | $SUDO tee "$CLOUD_INIT_DIR/.version" >/dev/null
  else
    say cloud-init "FAILED to download and unpack Debian's cloud-init"; FAILED+=(cloud-init)
  fi
  rm -rf "$ci_tmp"
fi
[ -f "$CLOUD_INIT_DIR/.version" ] && say cloud-init "$(cat "$CLOUD_INIT_DIR/.version") (unpacked in $CLOUD_INIT_DIR, schema check only)"

# --- Prometheus, unpacked from Debian's package (never installed: its unit would start a
# system-wide server): the metrics test scrapes the coordinator and agents with it and runs every
# query of deploy/grafana's dashboard. Operators run their own (deploy/grafana/README.md).
PROM_VERSION=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [ -n "$PROM_VERSION" ] && [ "$(cat "$PROMETHEUS_DIR/.version" 2>/dev/null)" != "$PROM_VERSION" ]; then
  prom_tmp=$(mktemp -d)
  if (cd "$prom_tmp" && apt-get download -qq prometheus >/dev/null 2>&1) && $SUDO rm -rf "$PROMETHEUS_DIR" && $SUDO mkdir -p "$PROMETHEUS_DIR" &&
    $SUDO dpkg-deb -x "$prom_tmp"/prometheus_*.deb "$PROMETHEUS_DIR"; then
    echo "$PROM_VERSION" | $SUDO tee "$PROMETHEUS_DIR/.version" >/dev/null
  else
    say prometheus "FAILED to download and unpack Debian's prometheus"; FAILED+=(prometheus)
  fi
  rm -rf "$prom_tmp"
fi
[ -f "$PROMETHEUS_DIR/.version" ] && say prometheus "$(cat "$PROMETHEUS_DIR/.version") (unpacked in $PROMETHEUS_DIR, for the metrics test)"

else # --agent: what a node agent runs, nothing of the stack
  missing=()
  for p in ffmpeg iproute2 util-linux curl ca-certificates openssl libjemalloc2; do pkg_installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then say apt "installing ${missing[*]}"; apt_install "${missing[@]}"; fi
  say ffmpeg "$(ffmpeg -hide_banner -version | awk 'NR == 1 { print $3 }')"
  say iproute2 "$(ip -V | sed 's/.*iproute2-\([^ ,]*\).*/\1/')"
  say curl "$(curl --version | awk 'NR == 1 { print $2 }')"
  node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
  # A distribution's own Node.js where it is new enough (Debian 13, Ubuntu 24.10 on); else the image must bring it.
  if [ "$(node_major)" -lt 20 ]; then say apt "installing nodejs npm"; apt_install nodejs npm || true; fi
fi

# --- The user ffmpeg and ffprobe run as when the agent is root (node-agent/README.md, "What ffmpeg
# may touch"): a system account with no home and no login. An agent running as root refuses to
# run ffmpeg without it rather than run it as root.
FFMPEG_USER=${PRESCIENT_FFMPEG_USER:-prescient}
if ! getent passwd "$FFMPEG_USER" >/dev/null; then
  $SUDO useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$FFMPEG_USER"
fi
say ffmpeg-user "$FFMPEG_USER ($(id "$FFMPEG_USER"))"

# --- Node dependencies and build
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$NODE_MAJOR" -lt 20 ]; then echo "Node >= 20 is required (found: $(node -v 2>/dev/null || echo none)); install it, or use an image that has it" >&2; exit 1; fi
say node "$(node -v), npm $(npm -v 2>/dev/null)"
cd "$REPO_ROOT"
if [ "${PRESCIENT_SKIP_NPM:-0}" != 1 ]; then
# npm keeps node_modules/.package-lock.json in step with what it installed: newer than both manifests means current.
HIDDEN=node_modules/.package-lock.json
if [ -f "$HIDDEN" ] && [ ! package.json -nt "$HIDDEN" ] && { [ ! -f package-lock.json ] || [ ! package-lock.json -nt "$HIDDEN" ]; }; then
  say npm-deps "up to date"
elif { if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi; } >/tmp/prescient-npm.$$.log 2>&1; then
  say npm-deps "installed"
else
  cat /tmp/prescient-npm.$$.log >&2; say npm-deps "FAILED (output above)"; FAILED+=(npm-deps)
fi
rm -f /tmp/prescient-npm.$$.log

# Rebuild only when a file outside node_modules/dist/.git changed since the last good build.
STAMP=dist/.install-build-stamp
if [ -f "$STAMP" ] && [ -z "$(find . \( -path ./node_modules -o -path ./dist -o -path ./.git \) -prune -o -type f -newer "$STAMP" -print -quit)" ]; then
  say build "up to date"
elif npm run build --silent; then
  touch "$STAMP"; say build "ok"
else
  say build "FAILED (tsc output above)"; FAILED+=(build)
fi
fi

# The `prescient` command on PATH, pointing at this checkout's build.
CLI="$REPO_ROOT/dist/coordinator/cli/main.js"
if [ -f "$CLI" ]; then
  chmod +x "$CLI"
  if [ "$(readlink /usr/local/bin/prescient 2>/dev/null)" != "$CLI" ]; then $SUDO ln -sf "$CLI" /usr/local/bin/prescient; fi
  say prescient "/usr/local/bin/prescient -> $CLI"
fi

if [ ${#FAILED[@]} -gt 0 ]; then echo "install.sh: failed steps: ${FAILED[*]}" >&2; exit 1; fi

# --- Joining a cluster: enrol, write the agent's config, run it under systemd
if [ -n "$JOIN" ]; then
  STATE=${PRESCIENT_STATE_DIR:-/var/lib/prescient}
  ETC=${PRESCIENT_ETC_DIR:-/etc/prescient}
  $SUDO mkdir -p "$STATE" "$ETC"
  # The token goes through the environment, not argv, so no other user sees it in ps.
  if ! $SUDO env PRESCIENT_JOIN_TOKEN="$TOKEN" node "$CLI" --state-dir "$STATE" join --join "$JOIN" --write-config "$ETC/agent.yaml" "${JOIN_ARGS[@]}"; then
    say join "FAILED (the reason is above; nothing was enabled)"; exit 1
  fi
  say join "enrolled; settings in $ETC/agent.yaml"
  UNIT=/etc/systemd/system/prescient-agent.service
  if [ -d /run/systemd/system ]; then
    if put_file "$UNIT" "$(cat "$REPO_ROOT/deploy/systemd/prescient-agent.service")"; then $SUDO systemctl daemon-reload; fi
    $SUDO systemctl enable --now prescient-agent >/dev/null
    say agent "prescient-agent enabled and started (journalctl -u prescient-agent)"
  else
    say agent "systemd is not running here: start it with  prescient --state-dir $STATE agent --config $ETC/agent.yaml"
  fi
fi
