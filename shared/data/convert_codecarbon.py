#!/usr/bin/env python3
"""Convert CodeCarbon's reference data into ecobench's embedded tables.

Usage: python3 shared/data/convert_codecarbon.py [CODECARBON_DIR]
(default CODECARBON_DIR: /work/shared/data/codecarbon), run from the workspace root.

Writes:
  shared/data/carbon_intensity.csv  iso3,country_name,g_per_kwh,year
  worker/data/cpu_tdp.csv           name,tdp_w
Standard library only; the output is deterministic (sorted).
"""

import csv
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def convert_intensity(src_dir):
    with open(os.path.join(src_dir, "global_energy_mix.json"), encoding="utf-8") as f:
        mix = json.load(f)
    rows = []
    for iso3, entry in mix.items():
        g_per_kwh = entry.get("carbon_intensity")
        if g_per_kwh is None or len(iso3) != 3:
            continue
        # Commas would need quoting; the Rust reader splits on commas only.
        name = entry.get("country_name", iso3).replace(",", "")
        rows.append((iso3.upper(), name, round(float(g_per_kwh), 3), int(entry.get("year", 0))))
    rows.sort()
    out = os.path.join(ROOT, "shared", "data", "carbon_intensity.csv")
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write("iso3,country_name,g_per_kwh,year\n")
        for iso3, name, g_per_kwh, year in rows:
            f.write(f"{iso3},{name},{g_per_kwh:g},{year}\n")
    return out, len(rows)


def convert_tdp(src_dir):
    rows = {}
    with open(os.path.join(src_dir, "cpu_power.csv"), encoding="utf-8", newline="") as f:
        for record in csv.DictReader(f):
            name = " ".join(record["Name"].replace(",", " ").split())
            try:
                tdp_w = float(record["TDP"])
            except (TypeError, ValueError):
                continue
            if name and tdp_w > 0:
                rows.setdefault(name, tdp_w)
    out = os.path.join(ROOT, "worker", "data", "cpu_tdp.csv")
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write("name,tdp_w\n")
        for name in sorted(rows):
            f.write(f"{name},{rows[name]:g}\n")
    return out, len(rows)


def main():
    src_dir = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/codecarbon"
    for out, n in (convert_intensity(src_dir), convert_tdp(src_dir)):
        print(f"wrote {n} rows to {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
