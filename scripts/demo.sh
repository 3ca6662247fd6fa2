#!/usr/bin/env bash
# The end-to-end demo on the embedded SQLite default (./cpaas.db).
# Run it with `make demo`, which installs everything first.
set -euo pipefail
cd "$(dirname "$0")/.."
export CPAAS_DATABASE_URL="sqlite:///./cpaas.db"
export CPAAS_ACTOR="demo"

if [ -e cpaas.db ]; then
    backup="cpaas.db.bak.$(date +%Y%m%d%H%M%S)"
    mv cpaas.db "$backup"
    rm -f cpaas.db-wal cpaas.db-shm
    echo "demo: moved the existing ./cpaas.db to ./$backup" >&2
fi

step() { printf '\n== %s\n' "$*" >&2; }

step "database and system owner"
cpaas -q init --owner "Demo Hub" -o json >/dev/null
cpaas -q tenant legal-entity add "Demo Hub SL" --company "Demo Hub" --legal-name "Demo Hub Messaging S.L." \
    --country ES --legal-id B12345678 --vat-id ESB12345678 --billing-address "Paseo de la Castellana 100, Madrid" -o json >/dev/null
cpaas -q tenant bank add "Banco Demo" --country ES --address "Plaza Mayor 1, Madrid" --swift BDEMESMMXXX -o json >/dev/null
cpaas -q tenant bank-account add "Hub EUR" --company "Demo Hub" --bank "Banco Demo" --holder "Demo Hub Messaging S.L." \
    --number ES7620770024003102575766 -o json >/dev/null

step "companies from sample_data/companies.csv (validated first, all or nothing)"
cpaas tenant import sample_data/companies.csv --dry-run -o json >/dev/null
cpaas -q tenant import sample_data/companies.csv -o json >/dev/null

step "agreements and versions"
cpaas -q agreement create IC-2026 --company "Iberia Connect" --currency EUR --from 2026-01-01 --tz Europe/Madrid \
    --own-bank-account "Hub EUR" --credit-limit 5000 --billing-period monthly --billing-day 1 --days-for-payment 30 \
    --email invoice=billing@iberia-connect.example -o json >/dev/null
cpaas -q agreement version add IC-2026 --from 2026-07-01 --tz Europe/Madrid --credit-limit 10000 -o json >/dev/null
cpaas -q agreement create NT-2026 --company "Nordic Texts" --currency EUR --from 2026-03-01 --tz Europe/Stockholm \
    --billing-period quarterly --billing-day 1 -o json >/dev/null
cpaas -q agreement create FS-001 --company "Farmacia Sol" --currency EUR --from 2026-02-01 --tz Europe/Madrid \
    --credit-limit 300 --billing-period weekly --billing-day 1 --split-by-month -o json >/dev/null
cpaas -q agreement create LT-001 --company "Lisboa Taxis" --currency EUR --from 2026-02-01 --tz Europe/Lisbon -o json >/dev/null
cpaas -q agreement create FF-001 --company "Fjord Fisk" --currency NOK --from 2026-04-01 --tz Europe/Oslo \
    --credit-limit 2500 -o json >/dev/null
cpaas -q agreement create AR-001 --company "Acme Retail" --currency GBP --from 2026-01-15 --tz Europe/London \
    --billing-period daily -o json >/dev/null

step "summary"
cpaas tenant list --tree
cpaas agreement list
cpaas agreement show IC-2026 --at 2026-08-01 -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("IC-2026 credit limit on 2026-08-01:", d["version"]["credit_limit"], d["currency"])'
echo "audit rows: $(cpaas audit list -o jsonl | wc -l)"
echo
echo "Demo database: ./cpaas.db  (try: .venv/bin/cpaas tenant list --tree, .venv/bin/cpaas agreement show FS-001)"
