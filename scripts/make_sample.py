"""Rebuild data/sample/ from the full UCI Online Retail file (CC BY 4.0).

Keeps every row of ~30% of customers (chosen by a stable hash of CustomerID) and ~30% of
the invoices without a customer, so the sample keeps the real dirt (missing customers,
cancellations, non-product codes, duplicates) and whole purchase histories.

    python scripts/make_sample.py ../shared/datasets/online_retail/online_retail.csv.gz
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "sample" / "online_retail_sample.csv.gz"
SHARE = 30  # percent


def keep(row: dict[str, str]) -> bool:
    key = row["CustomerID"] or "invoice:" + row["InvoiceNo"]
    return zlib.crc32(key.encode()) % 100 < SHARE


def main(source: str) -> None:
    kept = 0
    with (
        gzip.open(source, "rt", newline="", encoding="utf-8") as src,
        open(OUT, "wb") as out_file,
        # mtime=0: the same input gives a byte-identical file.
        gzip.GzipFile(fileobj=out_file, mode="wb", mtime=0) as gz,
        io.TextIOWrapper(gz, encoding="utf-8", newline="") as text,
    ):
        reader = csv.DictReader(src)
        writer = csv.DictWriter(text, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        for row in reader:
            if keep(row):
                writer.writerow(row)
                kept += 1
    print(f"wrote {kept} rows to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
