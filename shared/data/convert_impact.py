#!/usr/bin/env python3
"""Convert CodeCarbon's cloud-region table (impact.csv) into ecobench's embedded one.

Usage: python3 shared/data/convert_impact.py [IMPACT_CSV ...]
(default: /work/shared/data/codecarbon/impact.csv), run from the workspace root.
When several files are given, the first one holding a (provider, region) wins.

Writes shared/data/cloud_regions.csv:
  provider,region,region_name,iso3,city,g_per_kwh,source
Standard library only; the output is deterministic (sorted by provider, then region).

Fixes applied (each is counted in the output):
- the ISO-3166 alpha-3 code is taken from the row's country name when that name is in
  shared/data/carbon_intensity.csv under another code (CodeCarbon's AWS Asia-Pacific
  rows say "USA" next to "India", "Japan", ...);
- the GCP region spelt "me-cenrtal1" upstream is "me-central1";
- commas inside text fields are removed so that the file splits on commas.
"""

import csv
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = "/work/shared/data/codecarbon/impact.csv"
RENAMED_REGIONS = {("gcp", "me-cenrtal1"): "me-central1"}


def country_codes():
    """ISO3 -> name and name -> ISO3, from the embedded country table."""
    by_code, by_name = {}, {}
    with open(os.path.join(HERE, "carbon_intensity.csv"), encoding="utf-8") as f:
        for record in csv.DictReader(f):
            by_code[record["iso3"]] = record["country_name"]
            by_name[record["country_name"]] = record["iso3"]
    return by_code, by_name


def clean(text):
    return " ".join((text or "").replace(",", " ").split())


def main():
    sources = sys.argv[1:] or [DEFAULT_SOURCE]
    by_code, by_name = country_codes()
    rows, fixed_codes, renamed = {}, 0, 0
    for path in sources:
        # utf-8-sig: CodeCarbon's file starts with a byte-order mark.
        with open(path, encoding="utf-8-sig", newline="") as f:
            for record in csv.DictReader(f):
                provider = record["provider"].strip().lower()
                region = record["region"].strip().lower()
                if (provider, region) in RENAMED_REGIONS:
                    region = RENAMED_REGIONS[(provider, region)]
                    renamed += 1
                if (provider, region) in rows:
                    continue
                try:
                    g_per_kwh = float(record["impact"])
                except (TypeError, ValueError):
                    continue
                iso3 = record["countryIsoCode"].strip().upper()
                name = record.get("country_name") or record.get("countryName") or ""
                named = by_name.get(name.strip())
                if named and named != iso3 and by_code.get(iso3) != name.strip():
                    iso3 = named
                    fixed_codes += 1
                rows[(provider, region)] = (
                    provider,
                    region,
                    clean(record["regionName"]),
                    iso3,
                    clean(record["city"]),
                    g_per_kwh,
                    clean(record["source"]),
                )
    out = os.path.join(HERE, "cloud_regions.csv")
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write("provider,region,region_name,iso3,city,g_per_kwh,source\n")
        for key in sorted(rows):
            provider, region, region_name, iso3, city, g_per_kwh, source = rows[key]
            f.write(f"{provider},{region},{region_name},{iso3},{city},{g_per_kwh:g},{source}\n")
    print(
        f"wrote {len(rows)} regions to {os.path.relpath(out)} "
        f"({fixed_codes} country codes taken from the country name, {renamed} regions renamed)"
    )


if __name__ == "__main__":
    main()
