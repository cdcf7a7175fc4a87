"""Reading export files in chunks: CSV (plain or gzipped) and Parquet, with the encoding detected.

``read_source`` yields the rows a chunk at a time, CSV as text (empty = ""), in one pass over the
file (``open_source``). A CSV is read by pyarrow when it can; from the first block pyarrow would
read differently from pandas (a row with a missing or extra field), the rest is read row by row
(Python's ``csv``, which keeps every row), after the rows already given. A row with more fields
than the header is kept as a *malformed* row (its position in ``frame.attrs[MALFORMED]`` with its
field count), so ingest rejects it with its row number and stores the others.

Problems with the file as a whole (empty, not in the encoding given, no header) raise
``SourceError`` with one line saying what to set.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ledger.mapping import SourceOptions

log = logging.getLogger(__name__)

CHUNK_ROWS = 250_000
"""Source rows read at a time."""
SNIFF_BYTES = 1 << 20
"""Bytes read from the start of a CSV to detect its encoding and separator."""
MALFORMED = "malformed_rows"
"""``frame.attrs`` key: {row position in the chunk: number of fields} of rows longer than the header."""
FALLBACK_ENCODINGS = ("cp1252", "latin-1")
"""Tried in order when a CSV without a declared encoding is not UTF-8 (latin-1 reads any byte)."""


class SourceError(ValueError):
    """The file cannot be read at all (empty, undecodable, no header): one line saying what to set."""


class CsvLayoutError(Exception):
    """The fast CSV reader cannot read this file the way pandas does (ragged rows, odd header)."""


def open_source(path: Path, kind: str) -> Any:
    """Open a source file for one pass over its rows; every pass starts here (a seam tests count).

    ``kind``: ``arrow`` (pyarrow's input stream, decompressed), ``parquet`` (a seekable pyarrow
    file), or an encoding (text, decompressed, for Python's ``csv``).
    """
    import pyarrow as pa

    gz = path.suffix.lower() == ".gz"
    if kind == "arrow":
        return pa.input_stream(str(path), compression="gzip" if gz else None)
    if kind == "parquet":
        return pa.OSFile(str(path))
    return (gzip.open if gz else open)(path, "rt", encoding=kind, newline="")


def format_of(path: Path, opts: SourceOptions) -> str:
    """``csv`` or ``parquet``: as declared, else from the file's suffixes."""
    if opts.format:
        return opts.format
    suffixes = [s.lower() for s in path.suffixes]
    return "parquet" if ".parquet" in suffixes or ".pq" in suffixes else "csv"


def _head(path: Path) -> bytes:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read(SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise SourceError(f"{path.name} cannot be read: {exc}.") from None


def file_hash(path: Path) -> str:
    """A digest naming a file by its size and its first and last ``SNIFF_BYTES`` (as stored, not
    decompressed): the same file sent again is recognised without reading all of it."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(SNIFF_BYTES))
        if size > SNIFF_BYTES:
            f.seek(max(SNIFF_BYTES, size - SNIFF_BYTES))
            h.update(f.read(SNIFF_BYTES))
    return h.hexdigest()


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(data, final=False)  # a cut character at the end is fine
    except (UnicodeDecodeError, LookupError):
        return False
    return True


_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _utf8_with_stray_bytes(data: bytes) -> tuple[int, bytes] | None:
    """(line, byte) of the first byte that is not UTF-8 in ``data``, if the rest holds UTF-8 letters
    (multi-byte sequences, which a Windows export almost never holds by chance); else None."""
    if not _UTF8_MULTIBYTE.search(data):
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError as exc:
        return data[:exc.start].count(b"\n") + 1, data[exc.start:exc.start + 1]
    return None


def resolve_options(path: Path, opts: SourceOptions, encoding: str | None = None,
                    delimiter: str | None = None) -> SourceOptions:
    """``opts`` with the encoding to read ``path`` with, checked against the file's start.

    ``delimiter`` (``--delimiter``), when given, replaces the mapping's.

    An explicit ``encoding`` (``--encoding``) wins, then the mapping's ``source.encoding``; a CSV
    with neither is read as UTF-8 when its start decodes as UTF-8, else as cp1252 (Windows
    exports), else latin-1, with a warning naming the option to set.

    Raises:
        SourceError: the file is empty, or does not decode with the encoding given.
    """
    if delimiter is not None:
        if not delimiter:
            raise SourceError("--delimiter needs a character, e.g. --delimiter ';'.")
        opts = opts.model_copy(update={"delimiter": delimiter})
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise SourceError(f"Unknown encoding {encoding!r}: use e.g. utf-8, cp1252 or latin-1.") from None
        opts = opts.model_copy(update={"encoding": encoding})
    if format_of(path, opts) != "csv":
        return opts
    head = _head(path)
    if not head.strip():
        raise SourceError(f"{path.name} is empty: a CSV needs a header line and rows. Nothing was stored.")
    declared = encoding is not None or "encoding" in opts.model_fields_set
    if _decodes(head, opts.encoding):
        return opts
    if declared:
        raise SourceError(f"{path.name} is not {opts.encoding}: set the file's encoding with --encoding "
                          "(or `encoding` under `source` in the mapping), e.g. --encoding cp1252.")
    bad = _utf8_with_stray_bytes(head)
    if bad is not None:
        line, byte = bad
        raise SourceError(f"{path.name} is UTF-8 but for byte {byte!r} on line {line} (counting the header as 1): "
                          "fix that line at the source, or, if the file is not UTF-8, say its encoding with "
                          "--encoding (e.g. cp1252). Read as cp1252, every accented letter of it would be garbled. "
                          "Nothing was stored.")
    for enc in FALLBACK_ENCODINGS:
        if _decodes(head, enc):
            log.warning("%s is not UTF-8: reading it as %s (set --encoding to choose another)", path.name, enc)
            return opts.model_copy(update={"encoding": enc})
    raise SourceError(f"{path.name}: cannot tell its encoding; set it with --encoding.")  # latin-1 reads any byte


def _header(path: Path, opts: SourceOptions) -> list[str]:
    try:
        header = pd.read_csv(path, sep=opts.delimiter, encoding=opts.encoding, nrows=0,
                             skiprows=opts.skip_rows or None, compression="infer")
    except pd.errors.EmptyDataError:
        raise SourceError(f"{path.name} has no header line: a CSV needs one, naming its columns.") from None
    except UnicodeDecodeError as exc:
        raise _undecodable(path, opts, exc) from None
    return [str(c) for c in header.columns]


def _undecodable(path: Path, opts: SourceOptions, exc: UnicodeDecodeError) -> SourceError:
    return SourceError(f"{path.name} is not {opts.encoding} (byte {exc.object[exc.start:exc.start + 1]!r} at "
                       f"position {exc.start} of a block): set the file's encoding with --encoding (or `encoding` "
                       "under `source` in the mapping), e.g. --encoding cp1252.")


def _read_csv_arrow(path: Path, opts: SourceOptions, chunk_rows: int, names: list[str]) -> Iterator[pd.DataFrame]:
    """CSV chunks read by pyarrow's multi-threaded reader, every column as text.

    Gives the same frames as pandas' reader (``dtype=str``, empty = ""), several times faster;
    raises ``CsvLayoutError`` where the two would differ (a row with a missing or extra field,
    duplicate or unnamed header columns), after the chunks read before it, so the caller can go on
    row by row.
    """
    import pyarrow as pa
    import pyarrow.csv as pv

    stream = None
    try:
        stream = open_source(path, "arrow")
        reader = pv.open_csv(
            stream,
            read_options=pv.ReadOptions(skip_rows=opts.skip_rows, encoding=opts.encoding, block_size=8 << 20),
            parse_options=pv.ParseOptions(delimiter=opts.delimiter, newlines_in_values=True),
            convert_options=pv.ConvertOptions(column_types={n: pa.string() for n in names},
                                              strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
        if reader.schema.names != names:
            raise CsvLayoutError(f"header read as {reader.schema.names}, not {names}")
        pending: list[Any] = []
        n_pending = 0
        for batch in reader:
            pending.append(batch)
            n_pending += batch.num_rows
            while n_pending >= chunk_rows:
                whole = pa.Table.from_batches(pending)
                yield whole.slice(0, chunk_rows).to_pandas()
                rest = whole.slice(chunk_rows)
                pending, n_pending = rest.to_batches(), rest.num_rows
        if n_pending:
            yield pa.Table.from_batches(pending).to_pandas()
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise CsvLayoutError(str(exc)) from exc
    finally:
        if stream is not None:
            stream.close()


def _read_csv_rows(path: Path, opts: SourceOptions, chunk_rows: int, names: list[str],
                   after: int = 0) -> Iterator[pd.DataFrame]:
    """CSV chunks read row by row (Python's ``csv``), every row kept, the first ``after`` rows passed
    over (the fast reader gave them).

    A row shorter than the header is padded with empty values (as pandas reads it); a row longer
    than the header is cut to its width and listed in ``frame.attrs[MALFORMED]`` as
    {position in the chunk: (fields, line number)}, so ingest rejects it and stores the others.
    """
    import csv

    width = len(names)
    try:
        with open_source(path, opts.encoding) as f:
            for _ in range(opts.skip_rows + 1):  # the skipped lines and the header
                f.readline()
            reader = csv.reader(f, delimiter=opts.delimiter)
            rows: list[list[str]] = []
            long: dict[int, tuple[int, int]] = {}
            for fields in reader:
                if not fields:
                    continue  # a blank line, as pandas skips it
                if after:
                    after -= 1
                    continue
                if len(fields) > width:
                    long[len(rows)] = (len(fields), reader.line_num + opts.skip_rows + 1)
                    fields = fields[:width]
                elif len(fields) < width:
                    fields = fields + [""] * (width - len(fields))
                rows.append(fields)
                if len(rows) == chunk_rows:
                    yield _chunk(rows, names, long)
                    rows, long = [], {}
            if rows:
                yield _chunk(rows, names, long)
    except UnicodeDecodeError as exc:
        raise _undecodable(path, opts, exc) from None
    except csv.Error as exc:
        raise SourceError(f"{path.name} cannot be read as CSV: {exc}.") from None


def _chunk(rows: list[list[str]], names: list[str], long: dict[int, tuple[int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    if long:
        frame.attrs[MALFORMED] = dict(long)
    return frame


def read_source(path: Path, opts: SourceOptions, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Yield the file's rows in chunks, in one pass: CSV as text (empty = ""), Parquet with its own types.

    A CSV is read by pyarrow; from the first block pyarrow reads differently from pandas
    (``CsvLayoutError``), the rows after those already yielded are read row by row.

    Raises:
        SourceError: the file cannot be read (no header, not in its encoding).
    """
    if format_of(path, opts) == "parquet":
        import pyarrow.parquet as pq

        with open_source(path, "parquet") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        return
    if len(opts.delimiter) == 1:
        names = _header(path, opts)
        done = 0
        try:
            for frame in _read_csv_arrow(path, opts, chunk_rows, names):
                done += len(frame)
                yield frame
            return
        except CsvLayoutError as exc:
            log.info("reading %s row by row after its first %d rows: %s", path.name, done, exc)
        yield from _read_csv_rows(path, opts, chunk_rows, names, after=done)
        return
    reader = pd.read_csv(
        path, sep=opts.delimiter, encoding=opts.encoding, dtype=str, keep_default_na=False,
        na_filter=False, skiprows=opts.skip_rows or None, chunksize=chunk_rows, compression="infer",
    )
    with reader:
        try:
            yield from reader
        except UnicodeDecodeError as exc:
            raise _undecodable(path, opts, exc) from None
