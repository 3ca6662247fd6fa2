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

step "an SMS service: tree skeleton + rates imported from sample_data/rates_sms.csv"
cpaas -q service create "SMS Standard" --type payg --currency EUR -o json >/dev/null
cpaas -q service scope add "SMS Standard" --from 2026-01-01 -o json >/dev/null
cpaas -q service tree apply "SMS Standard" sample_data/sms_tree.yaml >/dev/null
cpaas -q rates import sample_data/rates_sms.csv --service "SMS Standard" --node sms/sms_message/mt \
    --map country=Country --map price=Price -o json >/dev/null

step "reselling: Iberia Connect buys SMS Standard on IC-2026 and sells its own plan to Farmacia Sol"
# the owner sells its plan to the reseller and attaches the purchase agreement to the reseller's legal entity
cpaas -q agreement enable "SMS Standard" --agreement IC-2026 --from 2026-01-01 -o json >/dev/null
cpaas -q agreement reselling add "Iberia Connect SL" IC-2026 --from 2026-01-01 --tz Europe/Madrid -o json >/dev/null
# the reseller exports what it pays, sets its own prices (sample_data/rates_iberia.csv) in a plan it owns
cpaas rates export --agreement IC-2026 -o csv | python3 -c '
import csv, sys
got = {r["country"]: r["price"] for r in csv.DictReader(sys.stdin) if r.get("price") and r.get("country") in ("ES", "PT", "FR")}
print("Iberia Connect buys at (rates export of IC-2026):", ", ".join(c + " " + p for c, p in sorted(got.items())))'
cpaas -q service create "Iberia SMS" --type payg --currency EUR --company "Iberia Connect" -o json >/dev/null
cpaas -q service scope add "Iberia SMS" --from 2026-01-01 -o json >/dev/null
cpaas -q service tree apply "Iberia SMS" sample_data/sms_tree.yaml >/dev/null
cpaas -q rates import sample_data/rates_iberia.csv --service "Iberia SMS" --node sms/sms_message/mt \
    --map country=Country --map price=Price -o json >/dev/null
cpaas -q agreement enable "Iberia SMS" --agreement FS-001 --from 2026-02-01 -o json >/dev/null
cpaas rates compare "SMS Standard" "Iberia SMS" -o json | python3 -c '
import json, sys
rows = {r["country"]: r for r in json.load(sys.stdin) if r.get("country") in ("ES", "PT", "FR")}
print("Iberia sells at (owner price -> Iberia price):",
      ", ".join(c + " " + r["price_a"] + " -> " + r["price_b"] for c, r in sorted(rows.items())))'

step "a new reseller in one step: tenant reseller create from sample_data/reseller_demo.yaml (dry run first)"
cpaas -q tenant reseller create "Nordic Reach" --from-file sample_data/reseller_demo.yaml --dry-run -o json >/dev/null
cpaas tenant reseller create "Nordic Reach" --from-file sample_data/reseller_demo.yaml -o json | python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin) if r["step"] != "activation_token"]
print("created:", "; ".join(str(r["object"]) + " " + str(r["name"]) for r in rows))'

step "what the SMSC charges us: a vendor price plan from sample_data/vendor_rates_demo_smsc.csv"
cpaas -q service create "Demo SMSC costs" --type vendor --currency EUR -o json >/dev/null
cpaas -q service scope add "Demo SMSC costs" --from 2026-01-01 -o json >/dev/null
cpaas -q service tree apply "Demo SMSC costs" sample_data/sms_tree.yaml >/dev/null
cpaas -q rates import sample_data/vendor_rates_demo_smsc.csv --service "Demo SMSC costs" --node sms/sms_message/mt \
    --map country=Country --map price=Price -o json >/dev/null

step "top-ups: the owner is paid 100.00 EUR on Iberia Connect's IC-2026, Iberia 25.00 EUR on Farmacia Sol's FS-001"
cpaas -q payment add --agreement IC-2026 --reference DEMO-IBERIA-1 --amount 100 --confirmed \
    --date "$(date -u +%Y-%m-%d)" -o json >/dev/null
cpaas -q payment add --agreement FS-001 --reference DEMO-TOPUP-1 --amount 25 --confirmed \
    --date "$(date -u +%Y-%m-%d)" -o json >/dev/null

step "contacts from sample_data/contacts_farmacia.csv into the group Patients"
cpaas -q contacts import sample_data/contacts_farmacia.csv -c "Farmacia Sol" -g Patients --create-group \
    -m phone=Mobile -m first_name=Name -m last_name=Surname --default-country ES -o json >/dev/null

step "the local SMSC (cpaas dev smsc, stopped on exit) and a vendor connection to it"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -f demo-smsc-texts.txt
cpaas dev smsc --port "$port" --stat-mix DELIVRD=9,UNDELIV=1 --receipt-delay 0.2 --lifetime 600 \
    --record demo-smsc-texts.txt --record-text 2>demo-smsc.log &
smsc_pid=$!
trap 'kill "$smsc_pid" 2>/dev/null || true; wait "$smsc_pid" 2>/dev/null || true' EXIT
export DEMO_SMPP_PW=demo
cpaas -q connection add-smpp demo-smsc --host 127.0.0.1 --port "$port" --system-id demo \
    --password-env DEMO_SMPP_PW --window 50 --message-id-format hex --vendor-plan "Demo SMSC costs" -o json >/dev/null
# SID-15: the owner delegates FSOL to Iberia Connect, which gives it to its client Farmacia Sol
cpaas -q sender delegate FSOL --reseller "Iberia Connect" --agreement IC-2026 --active -o json >/dev/null
cpaas -q sender add FSOL --company "Farmacia Sol" --agreement FS-001 --active --connection demo-smsc -o json >/dev/null
for _ in $(seq 50); do
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)))" && break
    sleep 0.1
done

step "the HTTP API: cpaas serve --http (API only), one message sent with curl"
CPAAS_SECRET_KEY=$(python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
export CPAAS_SECRET_KEY
echo "Api-shop-pass1" | cpaas -q user create apidemo --company "Farmacia Sol" --first-name Api --last-name Demo \
    --department Admin --role Admin --password-stdin -o json >/dev/null
api_key=$(cpaas apikey create --user apidemo --name demo -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
# the key's callbacks go to a local receiver (cpaas dev callback-sink), which checks each signature
# with the key's signing secret (shown once, kept in this shell's environment only)
cb_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DEMO_CB_SECRET=$(cpaas apikey update demo --user apidemo --callback-url "http://127.0.0.1:$cb_port/callbacks" -o json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["callback_secret"])')
export DEMO_CB_SECRET
cpaas dev callback-sink --port "$cb_port" --secret-env DEMO_CB_SECRET --lifetime 600 >demo-callbacks.jsonl 2>demo-sink.log &
sink_pid=$!
http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cpaas -q serve --http "127.0.0.1:$http_port" --no-workers -o json >/dev/null 2>demo-http.log &
http_pid=$!
trap 'kill "$smsc_pid" "$http_pid" "$sink_pid" 2>/dev/null || true; wait "$smsc_pid" "$http_pid" "$sink_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $cb_port)))" && break
    sleep 0.1
done
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null && break
    sleep 0.1
done
curl -s -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' \
    "http://127.0.0.1:$http_port/v1/messages" \
    -d '{"from": "FSOL", "to": "34612345678", "text": "Su pedido esta listo en Farmacia Sol", "label": "orders"}' |
    python3 -c 'import json,sys; d=json.load(sys.stdin); m=d["messages"][0]; print("API: message", m["id"], "to", m["to"], m["status"], "label", m["label"])'
kill "$http_pid" 2>/dev/null || true
wait "$http_pid" 2>/dev/null || true

step "a 2FA code (cpaas otp): an integration, a code sent through serve --http with its workers, then verified"
otp_key=$(cpaas otp integration create -c "Farmacia Sol" --name Login -s FSOL \
    --text 'Farmacia Sol: su codigo es {{code}}' --digits 6 -o json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
cpaas -q serve --http "127.0.0.1:$http_port" -o json >/dev/null 2>demo-http.log &
http_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null && break
    sleep 0.1
done
# the answer comes once the SMSC took the message; the code is read where the user reads it
rid=$(curl -s -u "$otp_key" -d number=34699000111 "http://127.0.0.1:$http_port/api/v1/2fa/verify/sms" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["requestId"])')
code=$(python3 -c 'import re,sys; print(re.findall(r"34699000111 .*codigo es (\w+)", open("demo-smsc-texts.txt").read())[-1])')
echo "2FA: request $rid sent; the SMSC got the text with code $code"
curl -s -u "$otp_key" -d requestId="$rid" -d code="$code" "http://127.0.0.1:$http_port/api/v1/2fa/verify" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("2FA: verified", d["number"], "at", d["verifiedAt"])'
curl -s -u "$otp_key" "http://127.0.0.1:$http_port/api/v1/2fa/requests/$rid" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("2FA: request", d["status"], "rate", d["rate"], "billable", d["billable"], "verification", d["verification"])'
kill "$http_pid" 2>/dev/null || true
wait "$http_pid" 2>/dev/null || true

step "a personalised campaign to the group, sent now"
cid=$(cpaas campaign create --company "Farmacia Sol" --sender FSOL --group Patients --name "Flu shots" \
    --text 'Hola {{ first_name }}, ya puede vacunarse de la gripe en Farmacia Sol. Responda STOP para no recibir mas avisos.' \
    -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
cpaas -q campaign send "$cid" -o json >/dev/null

step "cpaas serve --once: submit through the SMSC, wait for the receipts, rate, complete"
cpaas -q serve --once --receipt-timeout 10 -o json > demo-serve.json
python3 - demo-serve.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"serve: {d['submitted']} submitted, {d['receipts']} receipts {d['receipt_statuses']}, "
      f"{d['completed_campaigns']} campaign(s) completed in {d['seconds']}s")
PY
cpaas campaign show "$cid" -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("campaign:", d["name"], d["state"], "queue", d["queue"], "cost", d["cost"], d["currency"])'
cpaas edr list --agreement FS-001 --limit 100000 -o jsonl | python3 -c '
import json, sys, collections
rows = [json.loads(l) for l in sys.stdin if l.strip()]
print("EDRs:", len(rows), dict(collections.Counter(r["status"] for r in rows)),
      "rated:", sum(r["rating_state"] == "rated" for r in rows))'
cpaas balance show FS-001 -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("FS-001 balance:", d["balance"], "charges", d["charges"], d.get("currency", ""))'

step "charges at both levels: Farmacia Sol pays Iberia's prices, Iberia pays the owner's (balance tree)"
cpaas balance tree "Iberia Connect"
cpaas balance show IC-2026 -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("IC-2026 (Iberia pays the owner): charges", d["charges"], d.get("currency", ""))'

step "margin: what Farmacia Sol paid per country (revenue), what Iberia paid the owner (owner_revenue), the SMSC's cost"
cpaas report margin --from 2026-01-01 --till "$(date -u -d tomorrow +%Y-%m-%d)" --by country --company "Farmacia Sol"

step "the API message's callbacks, as the local receiver got them (posted by serve, signed)"
python3 - demo-callbacks.jsonl <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
for r in rows:
    print(f"callback {r['status']:<11} transaction {r['transactionID']} to {r['dnis']} at {r['eventTime']} "
          f"({r['channel']}), signature {r['signature']}")
final = {"DELIVERED", "UNDELIVERED", "FAILED"}
if not rows or rows[-1]["status"] not in final or any(r["signature"] != "valid" for r in rows):
    sys.exit("demo: the callbacks did not all arrive signed (see demo-sink.log)")
PY

step "2FA statistics of the integration"
cpaas otp stats Login --from 2026-01-01 -o json | python3 -c '
import json, sys
rows = json.load(sys.stdin)
rows = rows if isinstance(rows, list) else [rows]
for r in rows:
    print("2FA stats:", {k: r.get(k) for k in ("requests", "sent", "delivered", "verified", "conversion_pct", "avg_delivery_s", "cost", "currency")})'

step "summary"
cpaas tenant list --tree
cpaas agreement list
cpaas agreement show IC-2026 --at 2026-08-01 -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("IC-2026 credit limit on 2026-08-01:", d["version"]["credit_limit"], d["currency"])'
echo "audit rows: $(cpaas audit list -o jsonl | wc -l)"
echo
echo "Demo database: ./cpaas.db  (try: .venv/bin/cpaas tenant list --tree, .venv/bin/cpaas agreement show FS-001)"
