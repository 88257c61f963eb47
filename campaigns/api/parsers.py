"""A CSV file as the whole body (``Content-Type: text/csv``), for POST /contacts/import."""
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser


class CSVTextParser(BaseParser):
    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None) -> str:
        try:
            return stream.read().decode("utf-8-sig") if stream is not None else ""
        except UnicodeDecodeError:
            raise ParseError("The body is not UTF-8 text.")
