#!/usr/bin/env bash
# The e-commerce redesign on both data sets, each into its own run directory:
#   simulations/ecommerce/run.sh [OUT]      (default OUT: outputs/ecommerce)
# Each run writes pairings/<name>/, report/ and recommendation.json (see README.md here).
set -euo pipefail
out="${1:-outputs/ecommerce}"
sim="${RECSYS_SIM:-recsys-sim}"
"$sim" experiment=ecommerce hydra.run.dir="$out/synthetic" progress=false
"$sim" experiment=ecommerce data=movielens hydra.run.dir="$out/movielens" progress=false
for d in synthetic movielens; do
  python3 - "$out/$d/recommendation.json" "$d" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
if doc["chosen"] is None or doc["baseline"] is None:
    print(sys.argv[2], "no recommendation:", doc["reasons"][0])
else:
    print(f"{sys.argv[2]}: {doc['chosen']['pairing']}: cost per 1k requests "
          f"-{doc['cost_reduction_pct']:.1f}%, NDCG@10 {doc['ndcg_change_pct']:+.2f}%, "
          f"SLA met: {doc['chosen']['sla_met']}")
PY
done
