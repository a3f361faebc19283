#!/usr/bin/env bash
# Run the whole test suite (tests/unit and tests/functional).
#
#   tools/run-tests.sh [PYTEST ARGS...]
#
# On a Debian/Ubuntu machine it first makes sure of what the functional
# tests need, installing and starting only what is missing:
#   - RabbitMQ listening on 127.0.0.1:5672, and a working rabbitmqctl (the
#     tests create a vhost of their own with it: run as root);
#   - PostgreSQL listening on 127.0.0.1:5432 with a role osprof (password
#     osprof, LOGIN CREATEDB) that can log in over TCP with its password;
#   - MariaDB listening on 127.0.0.1:3306 with a user osprof (password
#     osprof) that may create osprof_test_* databases;
#   - Debian's chromium, which renders the HTML report in its tests, and
#     its chromium-driver, through which the web UI's tests drive it;
#   - systemd-analyze, which checks the systemd unit;
#   - Debian's prometheus, which scrapes osprof-api's /metrics in a test;
#   - a virtualenv with the project and test-requirements.txt installed.
# Then it runs "python -m pytest ARGS" (ARGS default to "tests": the whole
# suite) and exits with pytest's status.
#
# Environment:
#   OSPROF_COLLECTOR_VENV       virtualenv to use (default: <repo>/.venv)
#   PYTHON                      interpreter that creates it (default: python3)
#   OSPROF_COLLECTOR_WAIT       seconds to wait for a service (default: 120)
#   OSPROF_COLLECTOR_TEST_POSTGRES_DSN (and _URL, see tests/conftest.py)
#                               use that PostgreSQL: the local one is then
#                               neither installed nor set up
#   OSPROF_COLLECTOR_TEST_MONGODB_URL
#                               also run the storage suite on that MongoDB
#
# tools/quickstart.sh sources this file for its helper functions; the
# tests run only when it is executed.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${OSPROF_COLLECTOR_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
WAIT=${OSPROF_COLLECTOR_WAIT:-120}
PG_ROLE=osprof
PG_PASSWORD=osprof
# The ports the tests use (tests/conftest.py, tests/functional/conftest.py).
PG_PORT=5432
RABBIT_PORT=5672
# Debian keeps the daemons' tools in sbin, which a non-root PATH may lack;
# the tests call rabbitmqctl from PATH too.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

PROG=${PROG:-$(basename "$0")}
say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
is_root() { [[ $(id -u) -eq 0 ]]; }

# True if something accepts TCP connections on 127.0.0.1:$1.
listening() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

APT_UPDATED=
# apt_install WHY PACKAGE...: install with apt-get (root), else say how.
apt_install() {
    local why=$1
    shift
    if ! is_root; then
        die "$why is missing; install it with: sudo apt-get install -y $*"
    fi
    command -v apt-get >/dev/null ||
        die "$why is missing and this is not a Debian/Ubuntu system: install $*"
    if [[ -z $APT_UPDATED ]]; then
        say "apt-get update"
        apt-get update -qq </dev/null >/dev/null
        APT_UPDATED=1
    fi
    say "installing $*"
    # A package whose service cannot start here (no init system) makes
    # apt-get fail although its programs are installed: the callers check
    # for what they need afterwards.
    apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null ||
        say "warning: apt-get install $* failed; checking what is there"
}

# -- Python and the virtualenv ----------------------------------------------

ensure_python() {
    if ! command -v "$PYTHON" >/dev/null; then
        [[ $PYTHON == python3 ]] || die "PYTHON=$PYTHON not found"
        apt_install "python3" python3 python3-venv
        command -v python3 >/dev/null || die "python3 did not install"
    fi
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$("$PYTHON" -V 2>&1) is too old: Python >= 3.11 is needed" \
            "(set PYTHON=/path/to/python3.11 or newer)"
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        local version
        version=$("$PYTHON" -c \
            'import sys; print("%d.%d" % sys.version_info[:2])')
        apt_install "venv support for $PYTHON" "python$version-venv"
        "$PYTHON" -c 'import ensurepip, venv' ||
            die "$PYTHON cannot create virtualenvs (python$version-venv)"
    fi
}

# ensure_venv STAMP PIP-ARGS...: create $VENV if needed and pip install
# PIP-ARGS unless STAMP shows the same install was already done.
ensure_venv() {
    local stamp_name=$1
    shift
    ensure_python
    # pbr takes the version from git; without a usable repository (a
    # tarball, or git refusing a clone owned by another user) it needs this.
    if ! git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        export PBR_VERSION=${PBR_VERSION:-0.0.0}
    fi
    if [[ -x $VENV/bin/python ]] &&
        ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            2>/dev/null; then
        say "virtualenv $VENV is broken or too old; recreating it"
        rm -rf "$VENV"
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        say "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp=$VENV/.osprof-$stamp_name.stamp want
    want=$(cd "$ROOT" && cat setup.py setup.cfg requirements.txt \
        test-requirements.txt | sha256sum | cut -d' ' -f1)
    want="$want $*"
    if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
        say "virtualenv $VENV is up to date"
        return
    fi
    say "installing into $VENV: $*"
    rm -f "$stamp"
    (cd "$ROOT" && "$VENV/bin/python" -m pip install -q "$@") </dev/null
    printf '%s\n' "$want" >"$stamp"
}

# -- RabbitMQ -------------------------------------------------------------

ensure_rabbitmq() {
    if ! command -v rabbitmqctl >/dev/null ||
        ! command -v rabbitmq-server >/dev/null; then
        apt_install "RabbitMQ" rabbitmq-server
        command -v rabbitmqctl >/dev/null || die "rabbitmq-server did not install"
    fi
    if ! listening "$RABBIT_PORT"; then
        is_root || die "RabbitMQ is not running on 127.0.0.1:$RABBIT_PORT;" \
            "start it (as root: rabbitmq-server -detached)"
        say "starting RabbitMQ"
        rabbitmq-server -detached </dev/null >/dev/null 2>&1 || true
    fi
    # Waits for a starting node; answers at once for a running one, and
    # proves that this user may run rabbitmqctl (the tests need it).
    local deadline=$((SECONDS + WAIT))
    until rabbitmqctl -q await_startup --timeout 10 </dev/null \
        >/dev/null 2>&1 && listening "$RABBIT_PORT"; do
        if ((SECONDS >= deadline)); then
            if listening "$RABBIT_PORT"; then
                die "RabbitMQ listens on 127.0.0.1:$RABBIT_PORT but" \
                    "'rabbitmqctl await_startup' fails for user $(id -un):" \
                    "run as root (or as a user with RabbitMQ's Erlang cookie)"
            fi
            die "RabbitMQ did not start within ${WAIT}s; see" \
                "/var/log/rabbitmq/ (startup_err and the node's log)"
        fi
        sleep 1
    done
    say "RabbitMQ is ready on 127.0.0.1:$RABBIT_PORT"
}

# -- PostgreSQL -----------------------------------------------------------

as_postgres_psql() {
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 \
        -p "$PG_PORT" -d postgres "$@")
}

# Can the test role log in over TCP with its password, and create databases?
pg_role_ok() {
    [[ $(PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 psql -X -A -t -q \
        -h 127.0.0.1 -p "$PG_PORT" -U "$PG_ROLE" -d postgres \
        -c 'SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user' \
        </dev/null 2>/dev/null) == t ]]
}

start_postgresql() {
    is_root || die "PostgreSQL is not running on 127.0.0.1:$PG_PORT; start it" \
        "(as root: pg_ctlcluster --skip-systemctl-redirect VERSION main start)"
    local version name status line
    # The cluster on $PG_PORT, or a new "main" one of the newest version.
    line=$(pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port {print; exit}')
    if [[ -z $line ]]; then
        # shellcheck disable=SC2012
        version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
        [[ -n $version ]] || die "no PostgreSQL server found in /usr/lib/postgresql"
        say "creating PostgreSQL cluster $version/main on port $PG_PORT"
        pg_createcluster -p "$PG_PORT" "$version" main </dev/null >/dev/null
        line=$(pg_lsclusters -h | awk -v port="$PG_PORT" '$3 == port {print; exit}')
    fi
    read -r version name _ status _ <<<"$line"
    if [[ $status != online* ]]; then
        say "starting PostgreSQL $version/$name"
        pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start \
            </dev/null
    fi
}

ensure_postgresql() {
    if [[ -n ${OSPROF_COLLECTOR_TEST_POSTGRES_DSN:-} ]]; then
        say "using PostgreSQL from OSPROF_COLLECTOR_TEST_POSTGRES_DSN"
        return
    fi
    if ! command -v pg_lsclusters >/dev/null || ! command -v psql >/dev/null ||
        ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
        apt_install "PostgreSQL" postgresql
        if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null ||
            ! command -v psql >/dev/null; then
            die "postgresql did not install"
        fi
    fi
    listening "$PG_PORT" || start_postgresql
    local deadline=$((SECONDS + WAIT))
    until pg_isready -q -h 127.0.0.1 -p "$PG_PORT" </dev/null; do
        ((SECONDS < deadline)) || die "PostgreSQL is not ready on" \
            "127.0.0.1:$PG_PORT after ${WAIT}s; see /var/log/postgresql/"
        sleep 1
    done
    if pg_role_ok; then
        say "PostgreSQL is ready; role $PG_ROLE can log in"
        return
    fi
    is_root || die "PostgreSQL role $PG_ROLE cannot log in on 127.0.0.1" \
        "with password $PG_PASSWORD; create it with: sudo -u postgres psql" \
        "-c \"CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD'\""
    say "creating PostgreSQL role $PG_ROLE (LOGIN CREATEDB)"
    as_postgres_psql <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END
\$\$;
SQL
    if pg_role_ok; then
        say "PostgreSQL is ready; role $PG_ROLE can log in"
        return
    fi
    # No pg_hba.conf line lets it in with a password over TCP: add one.
    local hba method
    hba=$(as_postgres_psql -A -t -c 'SHOW hba_file' </dev/null)
    method=$(as_postgres_psql -A -t -c 'SHOW password_encryption' </dev/null)
    [[ $method == scram-sha-256 ]] || method=md5
    say "allowing $PG_ROLE to log in from 127.0.0.1 with a password ($hba)"
    sed -i "1i host all $PG_ROLE 127.0.0.1/32 $method" "$hba"
    as_postgres_psql -c 'SELECT pg_reload_conf()' </dev/null >/dev/null
    sleep 1
    pg_role_ok || die "role $PG_ROLE still cannot log in on 127.0.0.1:$PG_PORT;" \
        "check $hba"
    say "PostgreSQL is ready; role $PG_ROLE can log in"
}

# -- MariaDB (the storage contract suite runs on MySQL too) -----------------

mariadb_user_ok() {
    mysql -h 127.0.0.1 -P 3306 -u osprof -posprof -e 'SELECT 1' \
        </dev/null >/dev/null 2>&1
}

ensure_mariadb() {
    if ! command -v mysql >/dev/null || [[ ! -x /usr/sbin/mariadbd ]]; then
        apt_install "MariaDB" mariadb-server mariadb-client
        [[ -x /usr/sbin/mariadbd ]] || die "mariadb-server did not install"
    fi
    if ! listening 3306; then
        is_root || die "MariaDB is not running on 127.0.0.1:3306; start" \
            "it (as root: start-stop-daemon --start --background --exec" \
            "/usr/sbin/mariadbd)"
        say "starting MariaDB"
        install -d -o mysql -g mysql /run/mysqld
        start-stop-daemon --start --oknodo --background \
            --exec /usr/sbin/mariadbd </dev/null
    fi
    local deadline=$((SECONDS + WAIT))
    until mysqladmin ping -h 127.0.0.1 -P 3306 --silent </dev/null \
        >/dev/null 2>&1 || mariadb_user_ok; do
        ((SECONDS < deadline)) || die "MariaDB is not ready on" \
            "127.0.0.1:3306 after ${WAIT}s; see /var/log/mysql/"
        sleep 1
    done
    if mariadb_user_ok; then
        say "MariaDB is ready; user osprof can log in"
        return
    fi
    is_root || die "MariaDB user osprof cannot log in on 127.0.0.1; create" \
        "it as in ensure_mariadb of $0"
    say "creating MariaDB user osprof (databases osprof_test_*)"
    # As root over the socket (unix_socket authentication on Debian).
    mysql -u root </dev/null <<'SQL'
CREATE USER IF NOT EXISTS 'osprof'@'127.0.0.1' IDENTIFIED BY 'osprof';
GRANT ALL PRIVILEGES ON `osprof\_test\_%`.* TO 'osprof'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
    mariadb_user_ok || die "MariaDB user osprof still cannot log in"
    say "MariaDB is ready; user osprof can log in"
}

# -- Chromium (the HTML report is tested in a real browser) ----------------

ensure_chromium() {
    if command -v chromium >/dev/null || command -v chromium-browser >/dev/null
    then
        return
    fi
    apt_install "Chromium (for the HTML report tests)" chromium
    command -v chromium >/dev/null || die "chromium did not install"
}

ensure_chromedriver() {
    command -v chromedriver >/dev/null && return
    apt_install "chromedriver (for the web UI tests)" chromium-driver
    command -v chromedriver >/dev/null || die "chromium-driver did not install"
}

# -- systemd-analyze (the systemd unit is checked with it) -----------------

ensure_systemd_analyze() {
    command -v systemd-analyze >/dev/null && return
    apt_install "systemd-analyze (for the systemd unit tests)" systemd
    command -v systemd-analyze >/dev/null || die "systemd did not install"
}

# -- Prometheus (it scrapes osprof-api's /metrics in a test) ---------------

ensure_prometheus() {
    command -v prometheus >/dev/null && return
    apt_install "Prometheus (for the /metrics test)" prometheus
    command -v prometheus >/dev/null || die "prometheus did not install"
}

# -- main -----------------------------------------------------------------

main() {
    cd "$ROOT"
    ensure_rabbitmq
    ensure_postgresql
    ensure_mariadb
    ensure_chromium
    ensure_chromedriver
    ensure_systemd_analyze
    ensure_prometheus
    ensure_venv tests -e . -r test-requirements.txt
    (($#)) || set -- tests
    say "running: python -m pytest $*"
    local status=0
    "$VENV/bin/python" -m pytest "$@" </dev/null || status=$?
    case $status in
        0) say "tests passed" ;;
        5) say "no tests ran (pytest status 5): counted as a failure" ;;
        *) say "tests failed (pytest status $status)" ;;
    esac
    exit "$status"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
