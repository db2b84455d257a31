#!/bin/sh
# Logical backups of the shop's PostgreSQL databases, and their restore.
# The Store's backup CronJob runs `backup`; the restore runbook in
# docs/operator.md runs `list` and `restore` from the same image and volume.
#
#   backup.sh backup           dump every database into
#                              $BACKUP_DIR/<UTC stamp>/<database>.dump
#                              (pg_dump --format=custom), then delete all but
#                              the newest $BACKUP_RETAIN backups
#   backup.sh list             the complete backups, oldest first
#   backup.sh restore [STAMP]  recreate every database from backup STAMP
#                              (default: the newest complete one)
#
# Environment: BACKUP_DIR, BACKUP_DATABASES (names separated by spaces),
# BACKUP_RETAIN (default 7), and libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD
# for a superuser (the dumps keep owners and grants, the restore recreates
# them). A backup is written to <stamp>.partial and renamed when every
# database is in it, so a failed run never counts as a backup.
set -eu

: "${BACKUP_DIR:?names the directory the backups live in}"
: "${BACKUP_DATABASES:?lists the databases to back up or restore}"
retain="${BACKUP_RETAIN:-7}"

log() {
  printf '%s backup.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

# The complete backups' stamps, oldest first (stamps sort by time).
complete_backups() {
  for path in "$BACKUP_DIR"/*; do
    [ -d "$path" ] || continue
    case "$path" in
      *.partial) ;;
      *) printf '%s\n' "${path##*/}" ;;
    esac
  done | sort
}

backup() {
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  if [ -e "$BACKUP_DIR/$stamp" ]; then
    log "a backup named $stamp exists already"
    exit 1
  fi
  # Runs never overlap (the CronJob forbids it): a partial one is a failed run.
  rm -rf "$BACKUP_DIR"/*.partial
  work="$BACKUP_DIR/$stamp.partial"
  mkdir -p "$work"
  for db in $BACKUP_DATABASES; do
    log "dumping $db"
    pg_dump --format=custom --dbname="$db" --file="$work/$db.dump"
  done
  mv "$work" "$BACKUP_DIR/$stamp"
  log "backup $stamp complete"
  excess=$(($(complete_backups | wc -l) - retain))
  if [ "$excess" -gt 0 ]; then
    complete_backups | head -n "$excess" | while read -r old; do
      log "deleting backup $old (keeping the newest $retain)"
      rm -rf "${BACKUP_DIR:?}/$old"
    done
  fi
}

restore() {
  stamp="${1:-$(complete_backups | tail -n 1)}"
  if [ -z "$stamp" ] || [ ! -d "$BACKUP_DIR/$stamp" ]; then
    log "no complete backup ${stamp:+named $stamp }in $BACKUP_DIR"
    exit 1
  fi
  for db in $BACKUP_DATABASES; do
    if [ ! -f "$BACKUP_DIR/$stamp/$db.dump" ]; then
      log "backup $stamp has no dump of $db"
      exit 1
    fi
  done
  for db in $BACKUP_DATABASES; do
    log "restoring $db from backup $stamp"
    # --create with --clean drops the database and creates it again as it
    # was dumped (owner, grants, settings): nothing made since survives.
    pg_restore --clean --if-exists --create --exit-on-error \
      --dbname=postgres "$BACKUP_DIR/$stamp/$db.dump"
  done
  log "restored $stamp"
}

case "${1:-}" in
  backup) backup ;;
  list) complete_backups ;;
  restore) restore "${2:-}" ;;
  *)
    echo "usage: backup.sh backup | list | restore [STAMP]" >&2
    exit 2
    ;;
esac
