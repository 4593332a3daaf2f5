#!/usr/bin/env bash
# provider-acceptance.sh PROVIDER_DIR SELECTION LOG [PARALLEL]
#
# Runs terraform-provider-outscale's own acceptance tests (the package
# internal/services/oapi of PROVIDER_DIR, a checkout of the provider at
# v1.8.0, for example from the search tool's fetch) against a fresh
# `omi serve --vm-driver sim` built from this repository, and prints how many
# passed, failed and were skipped. docs/provider-qa.md records the results.
#
# SELECTION is a -test.run regular expression, or one of:
#   issue-11  the resources of issue 11: every test but the _Migration ones
#             (they download older providers from the registry) and those of
#             load balancers, server certificates, VPN, virtual gateways, Net
#             access points, client gateways, flexible GPUs, EIM users and
#             policies, API access rules, CAs and accounts
#   lbu       load balancers, server certificates, virtual gateways and Net
#             access points (no _Migration tests)
#
# Needs go and terraform (the tests drive terraform with the provider built
# in). OMI_ACC_PORT (default 39223) and the two ports after it are used.
set -euo pipefail

if [ $# -lt 3 ]; then
	sed -n '2,20p' "$0" >&2
	exit 2
fi
provider=$(cd "$1" && pwd)
selection=$2
log=$(realpath -m "$3")
parallel=${4:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
port=${OMI_ACC_PORT:-39223}

work=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/omi" ./cmd/omi)
(cd "$provider" && go test -c -o "$work/oapi.test" ./internal/services/oapi)

"$work/omi" serve --data "$work/data" --vm-driver sim --listen "127.0.0.1:$port" \
	--oos-listen "127.0.0.1:$((port + 1))" --nbd-listen "127.0.0.1:$((port + 2))" >"$work/omi.out" 2>"$work/omi.err" &
pid=$!
# The first start publishes the official OMIs before it serves.
for _ in $(seq 1 600); do
	[ -s "$work/data/default-account.env" ] && curl -s -o /dev/null "http://127.0.0.1:$port/" && break
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$work/omi.err" >&2
		exit 1
	fi
	sleep 0.1
done
set -a
# shellcheck disable=SC1091
. "$work/data/default-account.env"
set +a

call() {
	curl -sf --aws-sigv4 osc --user "$OSC_ACCESS_KEY:$OSC_SECRET_KEY" -H 'Content-Type: application/json' \
		-X POST "$OSC_ENDPOINT_API/$1" -d "${2:-{\}}"
}
json() { python3 -c "import json,sys; print($1)"; }

# What the provider's test environment expects: an OMI, the account, the
# region, and a keypair named terraform-basic.
OUTSCALE_IMAGEID=""
for _ in $(seq 1 120); do
	OUTSCALE_IMAGEID=$(call ReadImages '{"Filters":{"AccountAliases":["Outscale"],"ImageNames":["Ubuntu*"],"States":["available"]}}' |
		json "' '.join(i['ImageId'] for i in json.load(sys.stdin)['Images'][:1])")
	[ -n "$OUTSCALE_IMAGEID" ] && break
	sleep 0.5
done
[ -n "$OUTSCALE_IMAGEID" ] || { echo "no official Ubuntu OMI published" >&2; exit 1; }
OUTSCALE_ACCOUNT=$(call ReadAccounts | json "json.load(sys.stdin)['Accounts'][0]['AccountId']")
export OUTSCALE_IMAGEID OUTSCALE_ACCOUNT OUTSCALE_REGION=eu-west-2
call CreateKeypair '{"KeypairName":"terraform-basic"}' >/dev/null
unset TF_CLI_CONFIG_FILE
export TF_ACC=1 TF_ACC_TERRAFORM_PATH="$(command -v terraform)" CHECKPOINT_DISABLE=1

cd "$provider/internal/services/oapi"
others='LBU|LoadBalancer|Lbu|ServerCertificate|VPN|Vpn|VirtualGateway|VirtualRoutePropagation|AccessPoint|ClientGateway|GatewayDatasource|FlexibleGpu|Polic|polic|User|user|_Ca_|DataOutscaleCa|ApiAccess|AccessRule|entities_linked|DataSourceAccount|PublicCatalog'
case "$selection" in
issue-11)
	names=$("$work/oapi.test" -test.list '.*' | grep -v Migration | grep -v -E "$others")
	regex="^($(echo "$names" | paste -sd'|'))\$"
	;;
lbu)
	names=$("$work/oapi.test" -test.list '.*' | grep -v Migration | grep -E 'LBU|LoadBalancer|Lbu|ServerCertificate|VirtualGateway|VirtualRoutePropagation|AccessPoint')
	regex="^($(echo "$names" | paste -sd'|'))\$"
	;;
*)
	regex=$selection
	;;
esac
"$work/oapi.test" -test.run "$regex" -test.v -test.parallel "$parallel" -test.timeout 100m >"$log" 2>&1 || true
grep -E '^--- (PASS|FAIL|SKIP)' "$log" | awk '{print $2}' | sort | uniq -c
grep -E '^--- FAIL' "$log" || true
