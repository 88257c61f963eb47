"""Rows read with raw SQL, turned into what the ORM would have made of them.

The hot paths (an API key's lookup, a send's claim) send statements whose text is made once per process, and read
their rows themselves. The ORM applies its backend's and its fields' converters to every value it reads (SQLite
returns datetimes as text; PostgreSQL needs none for plain columns): these two functions do the same, with the
list of converters found once per statement.
"""


def row_converters(connection, columns) -> list[tuple]:
    """``(index, expression, converter)`` for each converter the ORM applies to the value at ``index`` of a row
    whose ``columns`` are ``(field, table)`` pairs, in order."""
    converters = []
    for index, (field, table) in enumerate(columns):
        expression = field.get_col(table)
        for convert in connection.ops.get_db_converters(expression) + expression.get_db_converters(connection):
            converters.append((index, expression, convert))
    return converters


def convert_row(row, converters, connection) -> list:
    """``row``'s values as the ORM would have read them."""
    values = list(row)
    for index, expression, convert in converters:
        values[index] = convert(values[index], expression, connection)
    return values
