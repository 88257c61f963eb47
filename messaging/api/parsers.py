"""The API's JSON parser: DRF's, with the one input it lets through as a server error."""
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class JSONBodyParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # JSON nested deeper than Python's decoder recurses (~1,000 levels): no message looks like that.
            raise ParseError("JSON parse error - nested too deeply.")
