#!/usr/bin/env bash
# Reads one value from a YAML manifest without a YAML library on the node
# (control-plane.sh sources it; selftest.sh tests it). It understands the
# two forms the bootstrap is given: a file written by hand (`name: shop`)
# and Terraform's yamlencode (`"name": "shop"`, every key and string
# quoted), both in block style. Flow style (`{name: shop}`) is not read: a
# value written that way is reported missing, so the caller refuses the
# manifest rather than guessing.

# manifest_value FILE KEY.PATH: prints the scalar at KEY.PATH (e.g.
# spec.ingress.tls.secretName) of the first object in FILE, unquoted;
# prints nothing when it is absent.
manifest_value() {
  awk -v path="$2" '
    function unquote(s) {
      if (s ~ /^".*"$/ || s ~ /^\047.*\047$/) { return substr(s, 2, length(s) - 2) }
      return s
    }
    BEGIN { wanted = split(path, want, "."); depth = 0; child[0] = 0; seen = 0 }
    /^---/ { if (seen) exit; next }
    /^[[:space:]]*(#.*)?$/ { next }
    {
      match($0, /^ */); indent = RLENGTH
      line = substr($0, indent + 1)
      if (!match(line, /^("[^"]*"|\047[^\047]*\047|[^-"\047 :#][^:]*):([[:space:]]|$)/)) { next }
      seen = 1
      key = substr(line, 1, RLENGTH); sub(/:[[:space:]]*$/, "", key); key = unquote(key)
      value = substr(line, RLENGTH + 1)
      if (value !~ /^["\047]/) { sub(/[[:space:]]+#.*$/, "", value) }
      sub(/^[[:space:]]+/, "", value); sub(/[[:space:]]+$/, "", value)
      # Leave the mappings this line is not inside any more.
      while (depth > 0 && indent <= level[depth]) { depth-- }
      # Only direct children count: the first line under a key sets their indent.
      if (child[depth] < 0) { child[depth] = indent }
      if (indent != child[depth] || key != want[depth + 1]) { next }
      if (depth + 1 == wanted) { print unquote(value); exit }
      depth++; level[depth] = indent; child[depth] = -1
    }' "$1"
}
