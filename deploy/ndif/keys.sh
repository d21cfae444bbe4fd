#!/usr/bin/env bash
# The API-key database of the self-hosted NDIF: a Postgres cluster of our own (loopback only: it listens on
# 127.0.0.1 and a unix socket under $NDIF_STATE_DIR, inside the stack's network namespace when start.sh runs it)
# holding the tables NDIF's API reads to verify a key (ndif.services.api.auth: users, user_tags, keys,
# key_user_tag_assignments). The API connects as the read-only role `ndifapi`; keys are UUIDs.
#
# Usage (root):
#   deploy/ndif/keys.sh init            create the cluster, the database `ndif`, its tables and roles (idempotent)
#   deploy/ndif/keys.sh run             run postgres in the foreground (start.sh runs this in the namespace)
#   deploy/ndif/keys.sh add EMAIL [--trusted]   add a user + key; prints the key (give it as NDIF_API_KEY)
#   deploy/ndif/keys.sh url             the NDIF_POSTGRES_URL the API uses (read-only role)
# With NDIF_KEYS=1, start.sh runs `init`, starts the database before the API and points the API at it: every
# request then needs a key (missing -> 401, malformed -> 400, unknown -> 403). Keys tagged `trusted` skip
# NDIF's sandbox; the others run sandboxed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/ndif/env.sh
source "$HERE/env.sh"

DB_DIR="$NDIF_STATE_DIR/keys-db"
DATA="$DB_DIR/data"
PORT="${NDIF_KEYS_PORT:-5433}"
PGBIN="${NDIF_PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
PW_FILE="$DB_DIR/ndifapi.password"
log() { echo "[ndif-keys] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root"
[ -x "$PGBIN/postgres" ] || die "postgres missing: apt-get install postgresql (deploy/ndif/install.sh --with-keys)"
as_pg() { runuser -u postgres -- "$@"; }
psql_admin() { as_pg "$PGBIN/psql" -h "$DB_DIR" -p "$PORT" -v ON_ERROR_STOP=1 -qAt "$@"; }

schema() {
  cat <<'SQL'
CREATE TABLE IF NOT EXISTS users (
  user_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  email VARCHAR(255) UNIQUE NOT NULL,
  created_at TIMESTAMPTZ DEFAULT now()
);
CREATE TABLE IF NOT EXISTS user_tags (
  user_tag_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name VARCHAR(50) UNIQUE NOT NULL,
  description TEXT
);
CREATE TABLE IF NOT EXISTS keys (
  key_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  created_at TIMESTAMPTZ DEFAULT now()
);
CREATE TABLE IF NOT EXISTS key_user_tag_assignments (
  key_id UUID NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
  user_tag_id UUID NOT NULL REFERENCES user_tags(user_tag_id) ON DELETE RESTRICT,
  PRIMARY KEY (key_id, user_tag_id)
);
INSERT INTO user_tags (name, description) VALUES ('trusted', 'runs without the sandbox')
  ON CONFLICT (name) DO NOTHING;
SQL
}

start_tmp() { # a short-lived server for init / add when start.sh is not running one
  if as_pg "$PGBIN/pg_isready" -q -h "$DB_DIR" -p "$PORT"; then return 1; fi
  as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DB_DIR/init.log" -w -o "-p $PORT -k $DB_DIR -c listen_addresses=127.0.0.1" start >/dev/null
  return 0
}
stop_tmp() { as_pg "$PGBIN/pg_ctl" -D "$DATA" -w stop -m fast >/dev/null; }

cmd_init() {
  mkdir -p "$DB_DIR"
  chown postgres: "$DB_DIR"
  chmod 700 "$DB_DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initdb $DATA (loopback only)"
    as_pg "$PGBIN/initdb" -D "$DATA" --auth-local=peer --auth-host=scram-sha-256 --username=postgres >/dev/null
    # local socket for the admin (peer), TCP on 127.0.0.1 only, with passwords
    printf 'local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$DATA/pg_hba.conf"
    chown postgres: "$DATA/pg_hba.conf"
  fi
  [ -f "$PW_FILE" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$PW_FILE"; chmod 600 "$PW_FILE"; }
  local started=0
  if start_tmp; then started=1; fi
  psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'ndif'" | grep -q 1 \
    || psql_admin -d postgres -c "CREATE DATABASE ndif"
  schema | psql_admin -d ndif
  local pw
  pw=$(cat "$PW_FILE")
  psql_admin -d ndif <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ndifapi') THEN CREATE ROLE ndifapi LOGIN; END IF;
END \$\$;
ALTER ROLE ndifapi PASSWORD '$pw';
GRANT CONNECT ON DATABASE ndif TO ndifapi;
GRANT USAGE ON SCHEMA public TO ndifapi;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO ndifapi;
SQL
  if [ "$started" = 1 ]; then stop_tmp; fi
  log "key database ready ($DATA, 127.0.0.1:$PORT)"
}

cmd_add() {
  local email=${1:?usage: keys.sh add EMAIL [--trusted]} trusted=${2:-}
  local started=0
  if start_tmp; then started=1; fi
  local key
  key=$(psql_admin -d ndif -v email="$email" <<'SQL'
INSERT INTO users (email) VALUES (:'email') ON CONFLICT (email) DO NOTHING;
INSERT INTO keys (user_id) SELECT user_id FROM users WHERE email = :'email' RETURNING key_id;
SQL
  )
  if [ "$trusted" = --trusted ]; then
    psql_admin -d ndif -c "INSERT INTO key_user_tag_assignments SELECT '$key', user_tag_id FROM user_tags WHERE name = 'trusted'"
  fi
  if [ "$started" = 1 ]; then stop_tmp; fi
  echo "$key"
}

case "${1:-}" in
  init) cmd_init ;;
  run) exec runuser -u postgres -- "$PGBIN/postgres" -D "$DATA" -p "$PORT" -k "$DB_DIR" -c listen_addresses=127.0.0.1 ;;
  add) shift; cmd_add "$@" ;;
  url) echo "postgresql://ndifapi:$(cat "$PW_FILE")@127.0.0.1:$PORT/ndif" ;;
  *) die "usage: keys.sh init | run | add EMAIL [--trusted] | url" ;;
esac
