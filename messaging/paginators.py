"""A paginator for tables of millions of rows: exact counts when they are small, the planner's estimate when not.

Django's admin counts the (filtered) changelist on every page; on PostgreSQL a COUNT(*) over a million rows
costs more than the rest of the page. This counts at most ``exact_up_to`` + 1 rows (a LIMITed subquery the
indexes answer quickly) and, past that, reads the planner's row estimate from EXPLAIN.
"""
import json

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property


class EstimatedCountPaginator(Paginator):
    exact_up_to = 1000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list.order_by()
        bounded = queryset[: self.exact_up_to + 1].count()
        self.estimated = bounded > self.exact_up_to
        if not self.estimated:
            return bounded
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            self.estimated = False
            return queryset.count()  # SQLite (embedded mode) holds small tables; count them exactly
        sql, params = queryset.values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return max(int(plan[0]["Plan"]["Plan Rows"]), self.exact_up_to + 1)

    estimated = False
