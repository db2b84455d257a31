#!/usr/bin/env bash
# A shopper's whole journey through the edge (the Gateway's listener, not a
# port forward), as the kind job runs it: register, log in, add the
# cheapest product to the cart, save the test card 4242 4242 4242 4242,
# place the order and wait until it is PAID; then log in on the storefront
# (a cookie jar, the form's CSRF token) and find the order PAID on its page.
#
# Usage: checkout.sh BASE_URL HOST   e.g. checkout.sh http://127.0.0.1 shop.example.com
# Needs curl, jq and openssl. The catalog must have a product in stock.
set -euo pipefail

base=${1:?usage: checkout.sh BASE_URL HOST}
host=${2:?usage: checkout.sh BASE_URL HOST}
email="kind-$(openssl rand -hex 6)@shop.test"
password=$(openssl rand -hex 16)
token=""
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT

say() { printf 'checkout: %s\n' "$*" >&2; }

# api METHOD PATH [JSON [HEADER]]: one JSON API call; prints the body, fails
# on an HTTP error with the problem document.
api() {
  local method=$1 path=$2 body=${3:-} header=${4:-} args out status
  args=(--silent --show-error --max-time 20 -X "$method" -H "Host: ${host}" -H "Accept: application/json")
  if [[ -n $token ]]; then args+=(-H "Authorization: Bearer ${token}"); fi
  if [[ -n $header ]]; then args+=(-H "$header"); fi
  if [[ -n $body ]]; then args+=(-H "Content-Type: application/json" --data "$body"); fi
  out=$(mktemp)
  status=$(curl "${args[@]}" -o "$out" -w '%{http_code}' "${base}${path}")
  if [[ $status != 2?? ]]; then
    say "${method} ${path}: HTTP ${status}: $(cat "$out")"
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}

say "register ${email}"
api POST /api/users "$(jq -nc --arg e "$email" --arg p "$password" '{email: $e, password: $p, name: "Kind Shopper"}')" >/dev/null
say "log in"
token=$(api POST /api/users/login "$(jq -nc --arg e "$email" --arg p "$password" '{email: $e, password: $p}')" | jq -r .access_token)
[[ -n $token && $token != null ]] || { say "no access token"; exit 1; }

product=$(api GET '/api/products?sort=price_asc&per_page=1' | jq -r '.items[0].id // empty')
[[ -n $product ]] || { say "the catalog is empty"; exit 1; }
say "add product ${product} to the cart"
api POST /api/cart/items "$(jq -nc --arg p "$product" '{product_id: $p, quantity: 1}')" >/dev/null

say "save the test card"
card=$(api POST /api/payments/methods \
  "$(jq -nc --argjson y "$(($(date +%Y) + 2))" '{card_number: "4242424242424242", exp_month: 12, exp_year: $y, cvc: "123"}')" |
  jq -r .id)

say "place the order"
order=$(api POST /api/orders \
  "$(jq -nc --arg c "$card" --arg e "$email" '{payment_method_id: $c, email: $e,
    shipping_address: {name: "Kind Shopper", line1: "1 Edge Street", city: "Gateway", postal_code: "30080", country: "NL"}}')" \
  "Idempotency-Key: $(openssl rand -hex 16)" | jq -r .id)
say "order ${order} placed; waiting for PAID"
status=""
for _ in $(seq 60); do
  status=$(api GET "/api/orders/${order}" | jq -r .status)
  case $status in
    PAID) break ;;
    CANCELLED | REFUNDED) say "order ${order} ended ${status}"; exit 1 ;;
  esac
  sleep 2
done
[[ $status == PAID ]] || { say "order ${order} is ${status} after 120 s, not PAID"; exit 1; }
say "order ${order} is PAID"

# The storefront: its login form (CSRF token from the page, session in the
# cookie jar), then the order's page.
web() { curl --silent --show-error --fail --max-time 20 -H "Host: ${host}" -b "$jar" -c "$jar" "$@"; }
csrf=$(web "${base}/login" | sed -n 's/.*name="_csrf" value="\([^"]*\)".*/\1/p' | head -n 1)
[[ -n $csrf ]] || { say "no CSRF token on the storefront's login page"; exit 1; }
web -o /dev/null --data-urlencode "_csrf=${csrf}" --data-urlencode "email=${email}" \
  --data-urlencode "password=${password}" --data-urlencode "next=/orders/${order}" "${base}/login"
if ! web "${base}/orders/${order}" | grep -q 'data-status-code="PAID"'; then
  say "the storefront's page of order ${order} does not say it is paid"
  exit 1
fi
say "the storefront shows order ${order} paid"
